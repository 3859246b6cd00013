/**
 * The shipped config.yaml asks for auth on its routes but configures no
 * auth method: the gateway says so at start, route by route, and its 401s
 * neither invite a Bearer token nor an API key it could not check.
 */
import assert from "node:assert/strict";
import { loadConfigFile } from "../../lib/config/load.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { startGateway } from "../../lib/server/gateway.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("the seed config.yaml: route_cannot_serve per route at start, and 401s that advertise no scheme it cannot check", async () => {
  const loaded = await loadConfigFile(`${ROOT}config.yaml`);
  assert.ok(loaded.ok);
  const logger = memoryLogger();
  const gateway = await startGateway({
    config: loaded.config,
    logger,
    listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
    // No KUBECONFIG from the test's environment: discovery stays off, as for a new user.
    env: () => undefined,
  });
  try {
    const lines = logger.records.filter((r) => r.event === "route_cannot_serve");
    assert.deepEqual(lines.map((r) => [r.level, r.route]), [
      ["warn", "user-service-route"],
      ["warn", "order-service-route"],
    ]);
    assert.equal(
      lines[0].message,
      'route "user-service-route" requires auth but no auth method is configured (auth.api_key or auth.jwt): every request answers 401; it also sends to service "user-service", which is not defined in services and Kubernetes discovery is off: once an auth method is configured, requests would answer 503',
    );

    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer a.b.c" },
      { "API-Key": "some-key" },
    ];
    for (const headers of attempts) {
      const response = await fetch(`http://127.0.0.1:${gateway.proxyAddr.port}/users/1`, {
        headers,
      });
      const body = await response.json();
      assert.equal(response.status, 401);
      const challenge = response.headers.get("www-authenticate") ?? "";
      assert.match(challenge, /^Vanguard realm="vanguard", error="no_auth_method_configured"/);
      assert.doesNotMatch(challenge, /bearer|api-?key/i);
      assert.equal(body.error, "unauthorized");
      assert.match(body.message, /no authentication method is configured/);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminAddr.port}/metrics`))
      .text();
    assert.match(metrics, /reason="unconfigured"/);
  } finally {
    await gateway.shutdown();
  }
});
