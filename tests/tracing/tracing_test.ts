import assert from "node:assert/strict";
import { closedPort, singleRoute, startUpstream, withGateway, within } from "../helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

Deno.test("traceparent and tracestate reach the upstream unchanged when Vanguard does not trace", async () => {
  const upstream = startUpstream((request) =>
    Response.json({
      traceparent: request.headers.get("traceparent"),
      tracestate: request.headers.get("tracestate"),
    })
  );
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const seen = await (await fetch(`${gw.url}/x`, {
      headers: { traceparent: CLIENT_PARENT, tracestate: "vendor=abc,other=1" },
    })).json();
    assert.deepEqual(seen, { traceparent: CLIENT_PARENT, tracestate: "vendor=abc,other=1" });
  });
});

Deno.test("with OTEL_DENO=true: the upstream call is a child span of the client's trace, and spans carry the route id", async () => {
  const exported: string[] = [];
  const collector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      exported.push(await request.text());
      return Response.json({});
    },
  );
  const upstream = startUpstream((request) =>
    Response.json({
      traceparent: request.headers.get("traceparent"),
      tracestate: request.headers.get("tracestate"),
    })
  );
  const port = closedPort();
  await Deno.mkdir(`${ROOT}tests/.tmp`, { recursive: true });
  await Deno.writeTextFile(
    `${ROOT}tests/.tmp/tracing.yaml`,
    `server: { host: 127.0.0.1, port: ${port}, admin_host: 127.0.0.1, admin_port: ${closedPort()} }
discovery: { kubernetes: { enabled: false } }
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: traced-route, path_prefix: /traced, service_name: app }]
`,
  );
  const child = new Deno.Command("deno", {
    args: ["task", "-q", "start", "--config", "tests/.tmp/tracing.yaml"],
    cwd: ROOT,
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_DENO_CONSOLE: "ignore",
      OTEL_SERVICE_NAME: "vanguard-test",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const seen = await within(
      20000,
      "the gateway",
      (async () => {
        for (;;) {
          try {
            const response = await fetch(`http://127.0.0.1:${port}/traced/x`, {
              headers: { traceparent: CLIENT_PARENT, tracestate: "vendor=abc" },
            });
            return await response.json();
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      })(),
    );
    const [version, traceId, parent, flags] = seen.traceparent.split("-");
    assert.equal(version, "00");
    assert.equal(traceId, TRACE_ID, "same trace");
    assert.notEqual(parent, "b7ad6b7169203331", "a new parent: the gateway's client span");
    assert.equal(flags, "01");
    assert.equal(seen.tracestate, "vendor=abc");
    child.kill("SIGTERM"); // the exporter flushes on exit
    assert.equal((await child.status).code, 0);
    await new Response(child.stderr).text();
    const spans = exported.join("\n");
    assert.match(spans, new RegExp(`"traceId":\\s*"${TRACE_ID}"`));
    assert.match(spans, /"vanguard\.route_id",\s*"value":\s*\{\s*"stringValue":\s*"traced-route"/);
    assert.match(spans, /"name":\s*"GET \/traced"/);
    assert.match(spans, /"name":\s*"proxy traced-route"/);
    assert.match(
      spans,
      new RegExp(`"spanId":\\s*"${parent}"`),
      "the upstream's parent was exported",
    );
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await collector.shutdown();
    await upstream.close();
  }
});
