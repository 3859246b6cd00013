/**
 * GET /dashboard/data from a running gateway (real upstreams, real Redis, real reloads): what
 * the dashboard page draws. The page itself is tested in Chromium (dashboard_browser_test.ts).
 */
import assert from "node:assert/strict";
import { startConfigReloader } from "../../lib/server/reloader.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import {
  eventually,
  startRedis,
  startTestGateway,
  startUpstream,
  type TestGateway,
} from "../helpers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function data(gw: TestGateway): Promise<Json> {
  const response = await fetch(`${gw.adminUrl}/dashboard/data`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store");
  return await response.json();
}

async function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(url, { headers });
  await response.body?.cancel();
  return response.status;
}

Deno.test("dashboard data: routes with match, backends, auth and limit; services with endpoint states", async () => {
  let healthy = true;
  const a = startUpstream((request) =>
    new URL(request.url).pathname === "/healthz" && !healthy
      ? new Response("down", { status: 503 })
      : new Response("a")
  );
  const b = startUpstream(() => new Response("b"));
  const gw = await startTestGateway(`
services:
  pair:
    urls: [${a.url}, ${b.url}]
    health_check: { path: /healthz, interval_ms: 50, timeout_ms: 200, unhealthy_threshold: 1 }
routes:
  - id: api
    hosts: [api.example.com]
    path_exact: /v1/items
    methods: [GET]
    headers: [{ name: X-Canary, value: "true" }]
    service_name: pair
    auth_required: true
    rate_limit: { requests_per_period: 10, period_seconds: 60, client_identifier: IP }
  - id: split
    path_prefix: /split
    backends: [{ service_name: pair, weight: 3 }, { service_name: ghost, weight: 1 }]
  - id: moved
    path_prefix: /old
    redirect: { path_prefix: /new, status: 308 }
`);
  try {
    const first = await data(gw);
    assert.deepEqual(first.routes.map((r: Json) => r.id).sort(), ["api", "moved", "split"]);
    const api = first.routes.find((r: Json) => r.id === "api");
    assert.deepEqual(api.match, { kind: "exact", value: "/v1/items" });
    assert.deepEqual(api.hosts, ["api.example.com"]);
    assert.deepEqual(api.methods, ["GET"]);
    assert.equal(api.conditions, 1);
    assert.equal(api.source, "config");
    assert.equal(api.auth_required, true);
    assert.deepEqual(api.rate_limit, {
      requests_per_period: 10,
      period_seconds: 60,
      client_identifier: "IP",
    });
    assert.deepEqual(api.backends, [{ service_name: "pair", weight: 1 }]);
    // One sample: no rate yet, and the page says "measuring".
    assert.equal(first.window_seconds, null);
    assert.equal(api.traffic.requests_per_second, null);
    const split = first.routes.find((r: Json) => r.id === "split");
    assert.deepEqual(split.backends, [
      { service_name: "pair", weight: 3 },
      { service_name: "ghost", weight: 1 },
    ]);
    const moved = first.routes.find((r: Json) => r.id === "moved");
    assert.deepEqual(moved.redirect, { status: 308, to: "/new" });
    assert.deepEqual(moved.backends, []);

    const pair = first.services.find((s: Json) => s.name === "pair");
    assert.deepEqual(pair.endpoints, [
      { url: a.url, state: "ready", serving: true },
      { url: b.url, state: "ready", serving: true },
    ]);
    assert.equal(pair.out_of_rotation, 0);
    const ghost = first.services.find((s: Json) => s.name === "ghost");
    assert.deepEqual(ghost, {
      name: "ghost",
      source: null,
      known: false,
      ready: 0,
      endpoints: [],
      out_of_rotation: 0,
    });

    healthy = false;
    await eventually(2000, "the endpoint unhealthy in the data", async () => {
      const now = await data(gw);
      return now.services.find((s: Json) => s.name === "pair").endpoints[0].state === "unhealthy";
    });
    const later = (await data(gw)).services.find((s: Json) => s.name === "pair");
    assert.deepEqual(later.endpoints, [
      { url: a.url, state: "unhealthy", serving: false },
      { url: b.url, state: "ready", serving: true },
    ]);
    assert.equal(later.out_of_rotation, 1);
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("dashboard data: request rate, 5xx share, p99 and 429s come from the /metrics counters", async () => {
  let status = 200;
  const upstream = startUpstream(() => new Response("x", { status }));
  const gw = await startTestGateway(`
services: { app: { urls: [${upstream.url}] } }
routes:
  - id: app
    path_prefix: /app
    service_name: app
  - id: limited
    path_prefix: /limited
    service_name: app
    rate_limit: { requests_per_period: 2, period_seconds: 60, client_identifier: IP }
`);
  try {
    await data(gw); // the window's first sample
    const started = performance.now();
    for (let i = 0; i < 8; i++) await get(`${gw.url}/app/${i}`);
    status = 502;
    for (let i = 0; i < 2; i++) await get(`${gw.url}/app/x`);
    for (let i = 0; i < 5; i++) await get(`${gw.url}/limited`);
    await get(`${gw.url}/nowhere`);
    // Sampled at most once a second: wait for a second sample.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, 1100 - (performance.now() - started)))
    );
    const now = await data(gw);
    const span = now.window_seconds;
    assert.ok(span >= 1 && span < 5, `window ${span}`);
    const app = now.routes.find((r: Json) => r.id === "app").traffic;
    assert.ok(Math.abs(app.requests_per_second - 10 / span) < 0.01 * (10 / span) + 1e-3);
    assert.equal(app.error_ratio, 0.2);
    assert.ok(app.p99_seconds > 0 && app.p99_seconds < 1, `p99 ${app.p99_seconds}`);
    assert.equal(app.requests_total, 10);
    const limited = now.routes.find((r: Json) => r.id === "limited").traffic;
    assert.ok(Math.abs(limited.rejected_per_second - 3 / span) < 1e-3);
    assert.equal(limited.rejected_total, 3);
    assert.ok(Math.abs(now.traffic.unmatched_per_second - 1 / span) < 1e-3);
    assert.ok(Math.abs(now.traffic.requests_per_second - 16 / span) < 1e-3);

    // The same numbers /metrics shows.
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /vanguard_requests_total\{route="app",status="502"\} 2/);
    assert.match(metrics, /vanguard_ratelimit_rejected_total\{route="limited"\} 3/);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("dashboard data: the config version, and the last reload applied or rejected with its problems", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const dir = "tests/.tmp/dashboard_reload";
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/config.yaml`;
  const valid = (prefix: string) =>
    `services: { app: { urls: [${upstream.url}] } }\nroutes:\n  - { id: app, path_prefix: ${prefix}, service_name: app }\n`;
  await Deno.writeTextFile(path, valid("/a"));
  const gw = await startTestGateway(valid("/a"));
  const reloader = startConfigReloader({
    path,
    gateway: gw.gateway,
    logger: memoryLogger(),
    intervalMs: 3_600_000,
  });
  try {
    const before = await data(gw);
    assert.equal(before.config.generation, 1);
    assert.equal(before.config.last_reload, null);
    assert.match(before.config.digest, /^[0-9a-f]{12}$/);

    await Deno.writeTextFile(path, valid("/b"));
    assert.equal(await reloader.reload("SIGHUP"), true);
    const applied = await data(gw);
    assert.equal(applied.config.generation, 2);
    assert.notEqual(applied.config.digest, before.config.digest, "a new config, a new version");
    assert.ok(applied.config.table_version > before.config.table_version);
    assert.equal(applied.config.last_reload.result, "applied");
    assert.equal(applied.config.last_reload.trigger, "SIGHUP");
    assert.deepEqual(applied.config.last_reload.problems, []);

    await Deno.writeTextFile(
      path,
      "routes:\n  - { id: app, path_prefix: nope, service_name: app }\n",
    );
    assert.equal(await reloader.reload("file_changed"), false);
    const rejected = await data(gw);
    assert.equal(rejected.config.generation, 2, "the running config stays");
    assert.equal(rejected.config.digest, applied.config.digest);
    assert.equal(rejected.config.last_reload.result, "rejected");
    assert.equal(rejected.config.last_reload.trigger, "file_changed");
    assert.match(
      rejected.config.last_reload.problems.join("\n"),
      /config\.yaml:2:\d+: routes\[0\]\.path_prefix: must start with "\/"/,
    );
  } finally {
    reloader.stop();
    await gw.close();
    await upstream.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dashboard data: Redis is ok while checks pass and failing when it is gone; no URL secret shown", async () => {
  const redis = await startRedis();
  const upstream = startUpstream(() => new Response("x"));
  const gw = await startTestGateway(`
redis: { url: "redis://:s3cret-password@127.0.0.1:${redis.port}", failure_mode: open, timeout_ms: 200 }
services: { app: { urls: [${upstream.url}] } }
routes:
  - id: app
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 1000, period_seconds: 60, client_identifier: IP }
`);
  try {
    const first = await data(gw);
    assert.equal(first.redis.configured, true);
    assert.equal(first.redis.target, `127.0.0.1:${redis.port}`);
    assert.equal(first.redis.failure_mode, "open");
    assert.equal(first.redis.state, "unknown");
    assert.ok(!JSON.stringify(first).includes("s3cret"), "the password never shows");
    await eventually(5000, "redis ok", async () => {
      await get(`${gw.url}/x`);
      return (await data(gw)).redis.state === "ok";
    });
    await redis.stop();
    await eventually(8000, "redis failing", async () => {
      await get(`${gw.url}/x`);
      const now = await data(gw);
      return now.redis.state === "failing" && now.redis.seconds_since_error !== null;
    });
  } finally {
    await gw.close();
    await upstream.close();
    await redis.stop();
  }
});

Deno.test("dashboard data: with worker threads, the traffic the workers served and their number", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const gw = await startTestGateway(
    `
server: { workers: 2 }
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]
`,
    { workerLogs: "logger" },
  );
  try {
    await eventually(
      5000,
      "both workers serving",
      async () => (await data(gw)).gateway.workers?.serving === 2,
    );
    const started = performance.now();
    for (let i = 0; i < 6; i++) await get(`${gw.url}/x`);
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, 1100 - (performance.now() - started)))
    );
    const now = await data(gw);
    assert.deepEqual(now.gateway.workers, { serving: 2, configured: 2 });
    const app = now.routes.find((r: Json) => r.id === "app").traffic;
    assert.equal(app.requests_total, 6, "counted in the workers, summed here");
    assert.ok(app.requests_per_second > 0);
  } finally {
    await gw.close();
    await upstream.close();
  }
});
