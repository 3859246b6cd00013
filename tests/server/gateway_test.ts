import assert from "node:assert/strict";
import { GatewayError } from "../../lib/pipeline/errors.ts";
import type { Middleware } from "../../lib/pipeline/types.ts";
import {
  closedPort,
  latch,
  metricValue,
  singleRoute,
  startTestGateway,
  startUpstream,
  type TestServer,
  withGateway,
  within,
} from "../helpers.ts";

/** An upstream that records every path it is asked for. */
function recordingUpstream(): TestServer & { paths: string[] } {
  const paths: string[] = [];
  const server = startUpstream((request) => {
    const url = request.url;
    paths.push(url.slice(url.indexOf("/", 8)));
    return new Response("upstream");
  });
  return Object.assign(server, { paths });
}

async function errorBody(response: Response) {
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.deepEqual(Object.keys(body).sort(), ["error", "message", "request_id"]);
  assert.doesNotMatch(JSON.stringify(body), /\bat .*\.ts:\d+/, "a stack trace leaked");
  return body;
}

/** Sends a request whose target is written as is (fetch would normalize it). */
async function rawTarget(base: string, target: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${target} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buffer = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return { status: Number(text.slice(9, 12)), text };
  } finally {
    conn.close();
  }
}

Deno.test("the router matches the longest prefix on segment boundaries, else 404", async () => {
  const users = recordingUpstream();
  const admin = recordingUpstream();
  const gw = await startTestGateway(`
services:
  users: { urls: [${users.url}] }
  admin: { urls: [${admin.url}] }
routes:
  - { id: users, path_prefix: /users, service_name: users }
  - { id: users-admin, path_prefix: /users/admin, service_name: admin }
`);
  try {
    for (const path of ["/users", "/users/", "/users/1", "/users/administrator"]) {
      assert.equal(await fetch(gw.url + path).then((r) => r.text()), "upstream", path);
    }
    for (const path of ["/users/admin", "/users/admin/x"]) {
      assert.equal((await fetch(gw.url + path)).status, 200);
    }
    assert.deepEqual(admin.paths, ["/users/admin", "/users/admin/x"]);
    assert.deepEqual(users.paths, ["/users", "/users/", "/users/1", "/users/administrator"]);
    for (const path of ["/usersX", "/user", "/", "/other/users"]) {
      const response = await fetch(gw.url + path);
      assert.equal(response.status, 404, path);
      assert.equal((await errorBody(response)).error, "route_not_found");
    }
  } finally {
    await gw.close();
    await users.close();
    await admin.close();
  }
});

Deno.test("no spelling of a protected path reaches the upstream without auth", async (t) => {
  const upstream = recordingUpstream();
  const gw = await startTestGateway(`
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: public, path_prefix: /, service_name: app }
  - { id: admin, path_prefix: /admin, service_name: app, auth_required: true }
`);
  try {
    const attacks = [
      "/admin",
      "/admin/",
      "/admin/users",
      "//admin",
      "///admin/users",
      "/public/../admin",
      "/public/%2e%2e/admin",
      "/public/%2E%2E/admin",
      "/public/.%2e/admin",
      "/./admin",
      "/%2e/admin",
      "/%61dmin",
      "/%61%64%6d%69%6e/users",
      "/admin%2Fusers",
      "/public%2F..%2Fadmin",
      "/public%5C..%5Cadmin",
      "/public\\..\\admin",
      "/admin%00",
      "/%00/admin",
      "/admin;/users",
      "/admin;jsessionid=1",
      "/admin%3B/users",
      "/admin/%2e%2e/admin",
      "http://evil.example/admin",
      "http://evil.example/public/../admin",
    ];
    for (const target of attacks) {
      await t.step(target, async () => {
        const { status } = await rawTarget(gw.url, target);
        assert.ok(status === 400 || status === 401, `${target} answered ${status}`);
      });
    }
    // Whatever was forwarded, the upstream (decoding once) never saw /admin.
    for (const path of upstream.paths) {
      const decoded = path.split("?")[0].split("/").map((s) => decodeURIComponent(s)).join("/");
      assert.doesNotMatch(decoded.replace(/\/+/g, "/"), /^\/admin(\/|$)/, path);
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("an escaped but harmless path is forwarded in the canonical spelling the router matched", async () => {
  const upstream = recordingUpstream();
  const gw = await startTestGateway(`
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: users, path_prefix: /users, service_name: app }
`);
  try {
    for (const target of ["/%75sers/a%20b", "//users//a%20b", "/users/%41"]) {
      const { status } = await rawTarget(gw.url, target);
      assert.equal(status, 200, target);
    }
    assert.deepEqual(upstream.paths, ["/users/a%20b", "/users/a%20b", "/users/A"]);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("each error in the contract's table gets its status and a JSON body", async (t) => {
  const slow = startUpstream(async (request) => {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    return new Response(request.body);
  });
  const echo = startUpstream((request) => new Response(request.body));
  const dead = `http://127.0.0.1:${closedPort()}`;
  const gw = await startTestGateway(`
server:
  max_body_bytes: 1000
  upstream_timeout_ms: 200
services:
  slow: { urls: [${slow.url}] }
  echo: { urls: [${echo.url}] }
  dead: { urls: [${dead}] }
  empty: { urls: [] }
routes:
  - { id: slow, path_prefix: /slow, service_name: slow }
  - { id: echo, path_prefix: /echo, service_name: echo }
  - { id: dead, path_prefix: /dead, service_name: dead }
  - { id: empty, path_prefix: /empty, service_name: empty }
  - { id: unknown, path_prefix: /unknown, service_name: not-defined }
  - { id: private, path_prefix: /private, service_name: echo, auth_required: true }
`);
  const cases: [string, () => Promise<Response>, number, string][] = [
    ["no route", () => fetch(`${gw.url}/nothing`), 404, "route_not_found"],
    ["auth missing", () => fetch(`${gw.url}/private`), 401, "unauthorized"],
    ["no endpoints", () => fetch(`${gw.url}/empty`), 503, "no_healthy_upstream"],
    ["unknown service", () => fetch(`${gw.url}/unknown`), 503, "no_healthy_upstream"],
    ["connection refused", () => fetch(`${gw.url}/dead`), 502, "bad_gateway"],
    ["upstream too slow", () => fetch(`${gw.url}/slow`), 504, "upstream_timeout"],
    [
      "declared body too large",
      () => fetch(`${gw.url}/echo`, { method: "POST", body: new Uint8Array(1001) }),
      413,
      "payload_too_large",
    ],
    [
      "streamed body too large",
      () =>
        fetch(`${gw.url}/echo`, {
          method: "POST",
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(new Uint8Array(600));
              controller.enqueue(new Uint8Array(600));
              controller.close();
            },
          }),
        }),
      413,
      "payload_too_large",
    ],
    ["encoded slash", () => fetch(`${gw.url}/echo/a%2Fb`), 400, "bad_request"],
  ];
  try {
    for (const [name, send, status, code] of cases) {
      await t.step(`${name}: ${status}`, async () => {
        const response = await send();
        assert.equal(response.status, status);
        const body = await errorBody(response);
        assert.equal(body.error, code);
        assert.equal(body.request_id, response.headers.get("x-request-id"));
      });
    }
    await t.step("401 carries WWW-Authenticate", async () => {
      const response = await fetch(`${gw.url}/private`);
      await response.body?.cancel();
      assert.ok(response.headers.get("www-authenticate"));
    });
    await t.step("a body at the limit passes", async () => {
      const response = await fetch(`${gw.url}/echo`, {
        method: "POST",
        body: new Uint8Array(1000),
      });
      assert.equal(response.status, 200);
      assert.equal((await response.arrayBuffer()).byteLength, 1000);
    });
  } finally {
    await gw.close();
    await Promise.all([slow.close(), echo.close()]);
  }
});

Deno.test("an oversized request head is refused and the gateway keeps serving", async () => {
  const upstream = recordingUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const huge = await fetch(`${gw.url}/x`, { headers: { "x-big": "a".repeat(200_000) } });
    await huge.body?.cancel();
    assert.ok(huge.status >= 400 && huge.status < 500, `status ${huge.status}`);
    assert.equal(upstream.paths.length, 0);
    assert.equal((await fetch(`${gw.url}/x`)).status, 200);
  });
});

Deno.test("an unexpected error becomes a generic 500 with no stack, logged with the stack", async () => {
  const upstream = recordingUpstream();
  const broken: Middleware = function broken() {
    throw new TypeError("secret internals");
  };
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await fetch(`${gw.url}/x`);
    assert.equal(response.status, 500);
    const body = await errorBody(response);
    assert.equal(body.error, "internal_error");
    assert.doesNotMatch(JSON.stringify(body), /secret internals/);
    const logged = gw.logs.find((record) => record.event === "internal_error");
    assert.match(JSON.stringify(logged), /secret internals/);
    assert.equal(upstream.paths.length, 0);
  }, { middleware: [broken] });
});

Deno.test("a custom middleware joins the chain without touching the others", async () => {
  const upstream = startUpstream((request) =>
    new Response(request.headers.get("x-tenant") ?? "none")
  );
  const tenant: Middleware = async function tenant(ctx, next) {
    if (ctx.request.headers.get("x-block") === "1") {
      throw new GatewayError(403, "forbidden", "Blocked by policy");
    }
    ctx.upstreamHeaders = { ...ctx.upstreamHeaders, "x-tenant": `route:${ctx.route?.id}` };
    const response = await next();
    response.headers.set("x-custom", "yes");
    return response;
  };
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const ok = await fetch(`${gw.url}/x`);
    assert.equal(await ok.text(), "route:app");
    assert.equal(ok.headers.get("x-custom"), "yes");
    const blocked = await fetch(`${gw.url}/x`, { headers: { "x-block": "1" } });
    assert.equal(blocked.status, 403);
    assert.equal((await errorBody(blocked)).error, "forbidden");
  }, { middleware: [tenant] });
});

Deno.test("admin endpoints report health, readiness, routes and metrics", async (t) => {
  const upstream = recordingUpstream();
  const gw = await startTestGateway(`
services:
  app: { urls: [${upstream.url}] }
  spare: { urls: [] }
routes:
  - { id: app, path_prefix: /app, service_name: app }
  - { id: spare, path_prefix: /spare, service_name: spare }
`);
  try {
    await t.step("/healthz and /readyz", async () => {
      assert.equal(await fetch(`${gw.adminUrl}/healthz`).then((r) => r.status), 200);
      assert.equal(await fetch(`${gw.adminUrl}/readyz`).then((r) => r.status), 200);
    });
    await t.step("/routes lists the live table", async () => {
      const body = await (await fetch(`${gw.adminUrl}/routes`)).json();
      const app = body.routes.find((route: { id: string }) => route.id === "app");
      assert.equal(app.path_prefix, "/app");
      assert.equal(app.service_name, "app");
      assert.equal(app.source, "config");
      assert.deepEqual(app.endpoints, [{ url: upstream.url, ready: true }]);
      const spare = body.routes.find((route: { id: string }) => route.id === "spare");
      assert.deepEqual(spare.endpoints, []);
    });
    await t.step('/metrics counters move, and unmatched paths are labelled route=""', async () => {
      for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/app/x`)).text();
      await (await fetch(`${gw.url}/secret-looking/path?token=abc`)).text();
      await (await fetch(`${gw.url}/spare`)).text();
      // the access-log/metrics update runs when the body has been sent
      await new Promise((resolve) => setTimeout(resolve, 20));
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.equal(metricValue(text, 'vanguard_requests_total{route="app",status="200"}'), 3);
      assert.equal(metricValue(text, 'vanguard_requests_total{route="",status="404"}'), 1);
      assert.equal(metricValue(text, 'vanguard_requests_total{route="spare",status="503"}'), 1);
      assert.equal(
        metricValue(text, 'vanguard_request_duration_seconds_count{route="app",status="200"}'),
        3,
      );
      assert.equal(metricValue(text, 'vanguard_service_endpoints{service="app"}'), 1);
      assert.equal(metricValue(text, 'vanguard_service_endpoints{service="spare"}'), 0);
      assert.doesNotMatch(text, /secret-looking|token=abc/);
    });
    await t.step("unknown admin path is 404 and non-GET is 405", async () => {
      const r404 = await fetch(`${gw.adminUrl}/nope`);
      await r404.body?.cancel();
      assert.equal(r404.status, 404);
      const r405 = await fetch(`${gw.adminUrl}/healthz`, { method: "POST" });
      await r405.body?.cancel();
      assert.equal(r405.status, 405);
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("the access log has one JSON line per request, without the query string", async () => {
  const upstream = recordingUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await fetch(`${gw.url}/p/q?api_key=hunter2`, {
      headers: { "x-request-id": "log-1", authorization: "Bearer hunter3" },
    });
    await response.text();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const lines = gw.logs.filter((record) => record.event === "request");
    assert.equal(lines.length, 1);
    const line = lines[0];
    assert.equal(line.request_id, "log-1");
    assert.equal(line.method, "GET");
    assert.equal(line.path, "/p/q");
    assert.equal(line.route, "app");
    assert.equal(line.status, 200);
    assert.equal(line.upstream, upstream.url);
    assert.equal(line.bytes_out, 8);
    assert.equal(typeof line.duration_ms, "number");
    assert.doesNotMatch(JSON.stringify(gw.logs), /hunter2|hunter3/);
  });
});

Deno.test("graceful shutdown: readiness turns 503 and an in-flight request finishes", async () => {
  const release = latch();
  const arrived = latch();
  const upstream = startUpstream(async () => {
    arrived.resolve();
    await release.promise;
    return new Response("finished");
  });
  const gw = await startTestGateway(`
server:
  shutdown_grace_seconds: 10
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`);
  try {
    const inFlight = fetch(`${gw.url}/slow`);
    await within(5000, "the request to reach the upstream", arrived.promise);
    const stopped = gw.close();
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    await ready.body?.cancel();
    assert.equal(ready.status, 503);
    release.resolve();
    const response = await within(5000, "the in-flight response", inFlight);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "finished");
    await within(5000, "shutdown to complete", stopped);
    await assert.rejects(fetch(`${gw.url}/after`));
  } finally {
    release.resolve();
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a port already in use fails the start with a clear error and leaves nothing running", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const upstream = recordingUpstream();
  try {
    const { startGateway } = await import("../../lib/server/gateway.ts");
    const { memoryLogger } = await import("../../lib/log/logger.ts");
    const { configFrom } = await import("../helpers.ts");
    await assert.rejects(
      startGateway({
        config: configFrom(`
services:
  app: { urls: [${upstream.url}], health_check: { path: /healthz, interval_ms: 50 } }
routes:
  - { id: app, path_prefix: /, service_name: app }
`),
        logger: memoryLogger(),
        listen: { port, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
      }),
      /Cannot listen on 127\.0\.0\.1:\d+ \(server\.port\): address already in use; stop the other process or choose another port/,
    );
  } finally {
    taken.close();
    await upstream.close();
  }
});
