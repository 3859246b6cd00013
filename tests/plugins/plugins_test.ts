import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/auth/api_keys.ts";
import { formatProblem, loadConfigFile } from "../../lib/config/load.ts";
import {
  expectStreamed,
  startTestGateway,
  startUpstream,
  type TestServer,
  twoChunkUpstream,
  withGateway,
} from "../helpers.ts";

/** An upstream that answers with the headers it received, after `delayMs`. */
function headerEcho(delayMs = 0): TestServer & { hits: number } {
  let hits = 0;
  const server = startUpstream(async (request) => {
    hits++;
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return Response.json(Object.fromEntries(request.headers), {
      headers: { "x-upstream-internal": "secret", "cache-control": "no-cache" },
    });
  });
  return Object.defineProperty(server, "hits", { get: () => hits }) as TestServer & {
    hits: number;
  };
}

const KEY = "vg_plugin-test-key-0123456789abcdef";

function config(upstream: TestServer, routes: string, top = ""): string {
  return `
${top}
auth:
  api_key:
    keys:
      - { id: mobile-app, sha256: "${sha256Hex(KEY)}" }
services:
  app: { urls: [${upstream.url}] }
routes:
${routes}`;
}

Deno.test("cors: preflights are answered at the gateway, before auth, per route", async (t) => {
  const upstream = headerEcho();
  const yaml = config(
    upstream,
    `  - id: api
    path_prefix: /api
    service_name: app
    auth_required: true
    middleware:
      - name: cors
        options:
          allow_origins: [https://app.example]
          expose_headers: [X-Request-Id]
  - id: other
    path_prefix: /other
    service_name: app
    middleware:
      - { name: cors, options: { allow_origins: [https://other.example] } }`,
  );
  await withGateway(upstream, yaml, async (gw) => {
    await t.step(
      "an allowed preflight gets 204 with the CORS headers, no credentials needed",
      async () => {
        const response = await fetch(`${gw.url}/api/items`, {
          method: "OPTIONS",
          headers: {
            origin: "https://app.example",
            "access-control-request-method": "PUT",
            "access-control-request-headers": "content-type, api-key",
          },
        });
        await response.body?.cancel();
        assert.equal(response.status, 204);
        assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example");
        assert.match(response.headers.get("access-control-allow-methods")!, /PUT/);
        assert.equal(response.headers.get("access-control-allow-headers"), "content-type, api-key");
        assert.equal(upstream.hits, 0);
      },
    );
    await t.step("another origin is refused; each route has its own origins", async () => {
      const refused = await fetch(`${gw.url}/api/items`, {
        method: "OPTIONS",
        headers: { origin: "https://other.example", "access-control-request-method": "GET" },
      });
      assert.equal(refused.status, 403);
      assert.equal((await refused.json()).error, "cors_origin_not_allowed");
      const other = await fetch(`${gw.url}/other`, {
        method: "OPTIONS",
        headers: { origin: "https://other.example", "access-control-request-method": "GET" },
      });
      await other.body?.cancel();
      assert.equal(other.status, 204);
    });
    await t.step("actual requests still need auth, and get the CORS headers", async () => {
      const denied = await fetch(`${gw.url}/api/items`, {
        headers: { origin: "https://app.example" },
      });
      await denied.body?.cancel();
      assert.equal(denied.status, 401);
      assert.equal(denied.headers.get("access-control-allow-origin"), "https://app.example");
      const ok = await fetch(`${gw.url}/api/items`, {
        headers: { origin: "https://app.example", "api-key": KEY },
      });
      await ok.body?.cancel();
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(ok.headers.get("access-control-expose-headers"), "X-Request-Id");
      assert.match(ok.headers.get("vary")!, /Origin/);
    });
  });
});

Deno.test("request_headers and response_headers set, add and remove", async () => {
  const upstream = headerEcho();
  const yaml = config(
    upstream,
    `  - id: r
    path_prefix: /
    service_name: app
    middleware:
      - name: request_headers
        options:
          set: { X-Env: production }
          add: { X-Tags: gateway }
          remove: [X-Debug]
      - name: response_headers
        options:
          set: { Strict-Transport-Security: max-age=31536000 }
          add: { Cache-Control: private }
          remove: [X-Upstream-Internal]`,
  );
  await withGateway(upstream, yaml, async (gw) => {
    const response = await fetch(`${gw.url}/x`, {
      headers: { "x-debug": "1", "x-tags": "client", "x-env": "dev" },
    });
    const seen = await response.json();
    assert.equal(seen["x-env"], "production");
    assert.equal(seen["x-tags"], "client, gateway");
    assert.equal(seen["x-debug"], undefined);
    assert.equal(response.headers.get("strict-transport-security"), "max-age=31536000");
    assert.equal(response.headers.get("cache-control"), "no-cache, private");
    assert.equal(response.headers.get("x-upstream-internal"), null);
  });
});

Deno.test("ip_filter refuses by client address, honouring trusted proxies", async () => {
  const upstream = headerEcho();
  const yaml = config(
    upstream,
    `  - id: denied
    path_prefix: /denied
    service_name: app
    middleware: [{ name: ip_filter, options: { deny: [127.0.0.0/8] } }]
  - id: internal
    path_prefix: /internal
    service_name: app
    middleware: [{ name: ip_filter, options: { allow: [10.0.0.0/8] } }]`,
    "server:\n  trusted_proxies: [127.0.0.1]",
  );
  await withGateway(upstream, yaml, async (gw) => {
    const status = async (path: string, headers: Record<string, string> = {}) => {
      const response = await fetch(gw.url + path, { headers });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await status("/denied"), 403);
    assert.equal(await status("/internal"), 403);
    assert.equal(await status("/internal", { "x-forwarded-for": "10.1.2.3" }), 200);
    assert.equal(await status("/internal", { "x-forwarded-for": "192.0.2.1" }), 403);
    assert.equal(upstream.hits, 1);
  });
});

Deno.test("timeout and max_body_bytes apply per route", async () => {
  const upstream = headerEcho(600);
  const yaml = config(
    upstream,
    `  - id: quick
    path_prefix: /quick
    service_name: app
    middleware:
      - { name: timeout, options: { upstream_timeout_ms: 100 } }
      - { name: max_body_bytes, options: { bytes: 10 } }
  - id: patient
    path_prefix: /patient
    service_name: app`,
  );
  await withGateway(upstream, yaml, async (gw) => {
    const quick = await fetch(`${gw.url}/quick`);
    assert.equal(quick.status, 504);
    await quick.body?.cancel();
    const patient = await fetch(`${gw.url}/patient`);
    assert.equal(patient.status, 200);
    await patient.body?.cancel();
    const big = await fetch(`${gw.url}/quick`, { method: "POST", body: "x".repeat(11) });
    assert.equal(big.status, 413);
    await big.body?.cancel();
  });
});

Deno.test("the example plugin works end to end after auth, with global middleware first", async () => {
  const upstream = headerEcho();
  const yaml = config(
    upstream,
    `  - id: orders
    path_prefix: /orders
    service_name: app
    auth_required: true
    middleware:
      - module: ${Deno.cwd()}/examples/plugins/tenant_header.ts
        options:
          header: X-Tenant
          tenants: { mobile-app: acme }`,
    `middleware:
  - { name: response_headers, options: { set: { X-Served-By: vanguard } } }`,
  );
  const file = `${Deno.cwd()}/tests/.tmp/plugin_config.yaml`;
  await Deno.mkdir("tests/.tmp", { recursive: true });
  await Deno.writeTextFile(file, yaml);
  const loaded = await loadConfigFile(file);
  assert.ok(loaded.ok);
  const gw = await startTestGateway(yaml);
  try {
    const response = await fetch(`${gw.url}/orders/1`, { headers: { "api-key": KEY } });
    const seen = await response.json();
    assert.equal(seen["x-tenant"], "acme");
    assert.equal(response.headers.get("x-tenant"), "acme");
    assert.equal(response.headers.get("x-served-by"), "vanguard");
    const anonymous = await fetch(`${gw.url}/orders/1`);
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 401, "auth runs before the plugin");
    assert.ok(gw.logs.some((r) => r.event === "tenant_header_loaded"));
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("middleware config errors carry the file, line and field", async () => {
  const file = `${Deno.cwd()}/tests/.tmp/plugin_errors.yaml`;
  await Deno.mkdir("tests/.tmp", { recursive: true });
  await Deno.writeTextFile(
    file,
    `middleware:
  - name: corz
routes:
  - id: r
    path_prefix: /
    service_name: app
    middleware:
      - name: cors
        options: { allow_origins: [ftp://nope], max_age_seconds: -1 }
      - module: ../../examples/plugins/tenant_header.ts
        options: { header: "bad header", tenants: { a: "" } }
      - module: ./missing_plugin.ts
      - { name: timeout, module: ./x.ts }
`,
  );
  const result = await loadConfigFile(file);
  assert.equal(result.ok, false);
  const lines = result.ok ? [] : result.problems.map(formatProblem);
  const text = lines.join("\n");
  assert.match(text, /plugin_errors\.yaml:2:11: middleware\[0\]\.name: unknown built-in "corz"/);
  assert.match(
    text,
    /:9:\d+: routes\[0\]\.middleware\[0\]\.options\.allow_origins: "ftp:\/\/nope" must be/,
  );
  assert.match(
    text,
    /routes\[0\]\.middleware\[0\]\.options\.max_age_seconds: must be a whole number/,
  );
  assert.match(text, /:13:\d+: routes\[0\]\.middleware\[3\]: needs exactly one of name/);
  // parse problems stop before modules are loaded; fix them and the module problems show
  await Deno.writeTextFile(
    file,
    `routes:
  - id: r
    path_prefix: /
    service_name: app
    middleware:
      - module: ../../examples/plugins/tenant_header.ts
        options: { header: "bad header", tenants: { a: "" } }
      - module: ./missing_plugin.ts
`,
  );
  const second = await loadConfigFile(file);
  const text2 = second.ok ? "" : second.problems.map(formatProblem).join("\n");
  assert.match(text2, /:6:9: routes\[0\]\.middleware\[0\]\.options\.header: must be a header name/);
  assert.match(text2, /routes\[0\]\.middleware\[0\]\.options\.tenants\.a: must be a tenant name/);
  assert.match(text2, /:8:9: routes\[0\]\.middleware\[1\]\.module: cannot load plugin module/);
});

Deno.test("the proxy still streams with every built-in enabled", async () => {
  const upstream = twoChunkUpstream();
  const yaml = config(
    upstream,
    `  - id: all
    path_prefix: /
    service_name: app
    middleware:
      - { name: cors, options: { allow_origins: ["*"] } }
      - { name: ip_filter, options: { allow: [127.0.0.0/8] } }
      - { name: request_headers, options: { set: { X-A: "1" } } }
      - { name: response_headers, options: { set: { X-B: "2" } } }
      - { name: timeout, options: { upstream_timeout_ms: 5000 } }
      - { name: max_body_bytes, options: { bytes: 1000 } }`,
  );
  await withGateway(upstream, yaml, async (gw) => {
    const response = await fetch(`${gw.url}/stream`, { headers: { origin: "https://x.example" } });
    assert.equal(response.headers.get("x-b"), "2");
    await expectStreamed(response, upstream);
  });
});
