import { formatProblem, parseConfig } from "../config/load.ts";
import type { Logger } from "../log/logger.ts";
import { startGateway } from "../server/gateway.ts";
import { untilSignal } from "../server/signals.ts";

const DEMO_CONFIG = `
server:
  host: 127.0.0.1
  port: 8000
  admin_host: 127.0.0.1
  admin_port: 8001
discovery:
  kubernetes:
    enabled: false
services:
  user-service:
    urls: [http://127.0.0.1:9001]
  order-service:
    urls: [http://127.0.0.1:9002]
routes:
  - id: users
    path_prefix: /users
    service_name: user-service
  - id: orders
    path_prefix: /api/orders
    service_name: order-service
    strip_prefix: true
  - id: admin
    path_prefix: /admin
    service_name: user-service
    auth_required: true
`;

const CURLS = `
Vanguard demo: gateway on http://127.0.0.1:8000, admin on http://127.0.0.1:8001
  user-service  on http://127.0.0.1:9001   (route /users)
  order-service on http://127.0.0.1:9002   (route /api/orders, prefix stripped)

Try:
  curl -i http://127.0.0.1:8000/users/42
  curl -i 'http://127.0.0.1:8000/api/orders/7?expand=items'
  curl -i http://127.0.0.1:8000/admin             # 401: the route requires auth
  curl -i http://127.0.0.1:8000/nowhere           # 404: no route
  curl -i --path-as-is http://127.0.0.1:8000/users/../admin   # 400: dot-segments
  curl -s http://127.0.0.1:8001/routes
  curl -s http://127.0.0.1:8001/metrics | grep vanguard_requests_total

Ctrl-C stops everything.
`;

/** Runs two sample services and the gateway in front of them until Ctrl-C. */
export async function runDemo(logger: Logger): Promise<number> {
  const result = parseConfig(DEMO_CONFIG, { displayPath: "demo", absolutePath: "/demo.yaml" });
  if (!result.ok) {
    for (const problem of result.problems) console.error(formatProblem(problem));
    return 1;
  }
  let users: Deno.HttpServer;
  let orders: Deno.HttpServer;
  try {
    users = sampleService("user-service", 9001);
    orders = sampleService("order-service", 9002);
  } catch (error) {
    console.error(`Cannot start the demo services: ${(error as Error).message}`);
    return 1;
  }
  const gateway = await startGateway({ config: result.config, logger });
  console.error(CURLS);
  await untilSignal(logger);
  await gateway.shutdown();
  await Promise.all([users.shutdown(), orders.shutdown()]);
  return 0;
}

function sampleService(name: string, port: number): Deno.HttpServer {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
    const url = new URL(request.url);
    const body = {
      service: name,
      method: request.method,
      path: url.pathname,
      query: url.search,
      forwarded_for: request.headers.get("x-forwarded-for"),
      request_id: request.headers.get("x-request-id"),
    };
    return Response.json(body);
  });
}
