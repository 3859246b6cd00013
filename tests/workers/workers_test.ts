/**
 * `server.workers` above 1: the proxy in worker threads sharing the port
 * (SO_REUSEPORT), the main thread keeping config, health checks and the
 * admin listener. Real worker threads, real listeners, real upstreams.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/load.ts";
import { type LogFields, memoryLogger } from "../../lib/log/logger.ts";
import type { Middleware } from "../../lib/pipeline/types.ts";
import { startGateway } from "../../lib/server/gateway.ts";
import { workerCount } from "../../lib/workers/count.ts";
import {
  closedPort,
  configFrom,
  eventually,
  latch,
  metricValue,
  rawRequest,
  startTestGateway,
  startUpstream,
  type TestGateway,
  within,
} from "../helpers.ts";

/** Config text: `server.workers` and one route `/` to the given upstreams. */
function workersConfig(workers: number | "auto", urls: string[], extra = ""): string {
  return `server:
  workers: ${workers}
services:
  app:
    urls: [${urls.join(", ")}]
${extra}
routes:
  - { id: app, path_prefix: /, service_name: app }
`;
}

/** A gateway whose workers' log records land in its memory log. */
function startWorkers(yaml: string): Promise<TestGateway> {
  return startTestGateway(yaml, { workerLogs: "logger" });
}

/** One GET on a fresh connection (node:http without an agent): the status and body. */
async function fresh(url: string): Promise<{ status: number; body: string }> {
  const response = await rawRequest(url);
  return { status: response.status, body: new TextDecoder().decode(response.body) };
}

/** `count` GETs, each on its own connection, `parallel` at a time. */
async function freshMany(
  url: string,
  count: number,
  parallel = 20,
): Promise<{ status: number; body: string }[]> {
  const out: { status: number; body: string }[] = [];
  for (let done = 0; done < count; done += parallel) {
    const batch = Math.min(parallel, count - done);
    out.push(...await Promise.all(Array.from({ length: batch }, () => fresh(url))));
  }
  return out;
}

/** Access-log records (`request`) per worker index. */
function requestsByWorker(logs: readonly LogFields[], route?: string): Map<unknown, number> {
  const out = new Map<unknown, number>();
  for (const record of logs) {
    if (record.event !== "request" || (route !== undefined && record.route !== route)) continue;
    out.set(record.worker, (out.get(record.worker) ?? 0) + 1);
  }
  return out;
}

async function metrics(gw: TestGateway): Promise<string> {
  const response = await fetch(`${gw.adminUrl}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

Deno.test("workers: 2 spreads fresh connections over both workers on one port", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startWorkers(workersConfig(2, [upstream.url]));
  try {
    const started = gw.logs.filter((record) => record.event === "gateway_started");
    assert.deepEqual(started.map((record) => record.worker).sort(), [0, 1, undefined]);
    const main = started.find((record) => record.worker === undefined)!;
    assert.equal(main.workers, 2);
    assert.equal(main.proxy, `127.0.0.1:${gw.gateway.proxyAddr.port}`);
    for (const record of started.filter((record) => record.worker !== undefined)) {
      assert.equal(record.proxy, main.proxy, "every worker listens on the same port");
    }
    const answers = await freshMany(gw.url, 200);
    assert.ok(answers.every((answer) => answer.status === 200 && answer.body === "ok"));
    await eventually(2000, "200 access-log lines", () =>
      requestsByWorker(gw.logs).size > 0 &&
      [...requestsByWorker(gw.logs).values()].reduce((a, b) => a + b, 0) === 200);
    const byWorker = requestsByWorker(gw.logs);
    assert.ok((byWorker.get(0) ?? 0) > 0, `worker 0 served none: ${[...byWorker]}`);
    assert.ok((byWorker.get(1) ?? 0) > 0, `worker 1 served none: ${[...byWorker]}`);
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: "ready",
      workers: { serving: 2, configured: 2 },
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("/metrics sums every worker's counters and histograms; table gauges come from the main thread", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startWorkers(workersConfig(2, [upstream.url]));
  try {
    await freshMany(gw.url, 60);
    const series = 'vanguard_requests_total{route="app",status="200"}';
    // A request is counted when its body has ended, just after the client has it.
    await eventually(
      2000,
      "60 requests counted",
      async () => metricValue(await metrics(gw), series) === 60,
    );
    const text = await metrics(gw);
    assert.equal(
      metricValue(text, 'vanguard_request_duration_seconds_count{route="app",status="200"}'),
      60,
    );
    assert.equal(
      metricValue(
        text,
        'vanguard_request_duration_seconds_bucket{route="app",status="200",le="+Inf"}',
      ),
      60,
    );
    assert.equal(metricValue(text, 'vanguard_service_endpoints{service="app"}'), 1, "not summed");
    assert.equal(metricValue(text, "vanguard_routing_table_version"), 1, "not summed");
    assert.equal(metricValue(text, "vanguard_workers_serving"), 2);
    assert.equal(metricValue(text, "vanguard_requests_in_flight"), 0);
    const lines = text.split("\n").filter((line) => line.startsWith(series + " "));
    assert.equal(lines.length, 1, "one merged series, not one per worker");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("reload() changes the routes in every worker, and resolves once all have them", async () => {
  const a = startUpstream(() => new Response("a"));
  const b = startUpstream(() => new Response("b"));
  const twoServices = (route: string) =>
    `server:
  workers: 2
services:
  a: { urls: [${a.url}] }
  b: { urls: [${b.url}] }
routes:
${route}
`;
  const gw = await startWorkers(twoServices("  - { id: old, path_prefix: /, service_name: a }"));
  try {
    assert.ok((await freshMany(gw.url, 20)).every((answer) => answer.body === "a"));
    const result = await gw.gateway.reload(
      configFrom(twoServices("  - { id: new, path_prefix: /, service_name: b }")),
    );
    assert.deepEqual(result, { ok: true });
    // No waiting: reload() resolved after every worker confirmed.
    const answers = await freshMany(gw.url, 100);
    assert.deepEqual(answers.filter((answer) => answer.body !== "b"), []);
    await eventually(
      2000,
      "100 access-log lines for the new route",
      () => [...requestsByWorker(gw.logs, "new").values()].reduce((x, y) => x + y, 0) === 100,
    );
    const byWorker = requestsByWorker(gw.logs, "new");
    assert.ok((byWorker.get(0) ?? 0) > 0 && (byWorker.get(1) ?? 0) > 0, `${[...byWorker]}`);
    const routes = (await (await fetch(`${gw.adminUrl}/routes`)).json()).routes;
    assert.deepEqual(routes.map((route: { id: string }) => route.id), ["new"]);
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("a reload that a worker cannot build changes nothing anywhere and says which worker", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startWorkers(workersConfig(2, [upstream.url]));
  try {
    // Loads (modules are imported when a runtime is built), but no worker can build it.
    const bad = configFrom(
      workersConfig(2, [upstream.url]) + `middleware:\n  - module: /nonexistent/plugin.ts\n`,
    );
    const result = await gw.gateway.reload(bad);
    assert.equal(result.ok, false);
    assert.match(
      (result as { reason: string }).reason,
      /^worker \d: cannot load plugin module \/nonexistent\/plugin\.ts/,
    );
    assert.ok((await freshMany(gw.url, 20)).every((answer) => answer.status === 200));
    assert.equal(gw.gateway.config.middleware.length, 0, "the running config stays");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("an endpoint the main thread's active health check marks down gets no traffic from any worker within 1 s", async () => {
  let sick = false;
  const seen = { a: 0, b: 0 };
  const a = startUpstream(() => {
    seen.a++;
    return new Response("a");
  });
  const b = startUpstream((request) => {
    if (new URL(request.url).pathname === "/health") {
      return new Response(null, { status: sick ? 500 : 200 });
    }
    seen.b++;
    return new Response("b");
  });
  const gw = await startWorkers(workersConfig(
    2,
    [a.url, b.url],
    "    health_check: { path: /health, interval_ms: 50, unhealthy_threshold: 1 }",
  ));
  try {
    await freshMany(gw.url, 40);
    assert.ok(seen.b > 0, "both endpoints get traffic while healthy");
    sick = true;
    await eventually(
      2000,
      "the check to fail",
      () => gw.logs.some((record) => record.event === "health_check_failed"),
    );
    const markedAt = Date.now();
    // Every worker has the mark once a batch of fresh connections (both workers) all miss b.
    await eventually(1000, "no worker to send to b", async () => {
      const before = seen.b;
      await freshMany(gw.url, 20);
      return seen.b === before;
    });
    assert.ok(Date.now() - markedAt < 1000);
    const before = seen.b;
    const answers = await freshMany(gw.url, 60);
    assert.ok(answers.every((answer) => answer.body === "a"));
    assert.equal(seen.b, before);
    const ejected = metricValue(
      await metrics(gw),
      'vanguard_upstream_ejected_endpoints{service="app"}',
    );
    assert.equal(ejected, 1, "the largest count of any thread, not a sum");
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("shutdown() drains: a slow request in flight in a worker completes, then every worker stops", async () => {
  const arrived = latch();
  const release = latch();
  const upstream = startUpstream(async (request) => {
    if (new URL(request.url).pathname === "/slow") {
      arrived.resolve();
      await release.promise;
      return new Response("slow done");
    }
    return new Response("ok");
  });
  const gw = await startWorkers(workersConfig(2, [upstream.url]));
  try {
    const slow = fetch(`${gw.url}/slow`);
    await within(5000, "the slow request upstream", arrived.promise);
    const stopped = gw.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 503, "not ready while draining");
    await ready.body?.cancel();
    release.resolve();
    const response = await within(5000, "the slow response", slow);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "slow done");
    await within(5000, "shutdown", stopped);
    const complete = gw.logs.find((record) => record.event === "shutdown_complete");
    assert.deepEqual(complete?.drained, true);
    const workersStopped = gw.logs.filter((record) => record.event === "worker_stopped");
    assert.deepEqual(workersStopped.map((record) => record.worker).sort(), [0, 1]);
    await assert.rejects(fetch(`${gw.url}/after`), "nothing listens any more");
  } finally {
    release.resolve();
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a crashed worker is logged, the other keeps serving, and it is restarted", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const plugin = new URL("./crash_plugin.ts", import.meta.url).pathname;
  const gw = await startTestGateway(
    workersConfig(2, [upstream.url]) + `middleware:\n  - module: ${plugin}\n`,
    { workerLogs: "logger", workerTuning: { restartBaseMs: 50 } },
  );
  try {
    const crashed = await fresh(`${gw.url}/crash`);
    assert.equal(crashed.status, 200, "the request itself is answered before the crash");
    await eventually(
      3000,
      "worker_exited",
      () => gw.logs.some((record) => record.event === "worker_exited"),
    );
    const exited = gw.logs.find((record) => record.event === "worker_exited")!;
    assert.equal(exited.reason, "crashed");
    assert.match(String(exited.message), /plugin bug/);
    await eventually(
      5000,
      "worker_restarted",
      () => gw.logs.some((record) => record.event === "worker_restarted"),
    );
    const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json();
    assert.deepEqual(ready.workers, { serving: 2, configured: 2 });
    assert.ok((await freshMany(gw.url, 40)).every((answer) => answer.status === 200));
    const text = await metrics(gw);
    assert.equal(metricValue(text, 'vanguard_worker_exits_total{reason="crashed"}'), 1);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a worker that stops answering is taken for hung, replaced, and the rest keep serving", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const plugin = new URL("./crash_plugin.ts", import.meta.url).pathname;
  const gw = await startTestGateway(
    workersConfig(2, [upstream.url]) + `middleware:\n  - module: ${plugin}\n`,
    {
      workerLogs: "logger",
      workerTuning: { pingIntervalMs: 50, unresponsiveMs: 500, restartBaseMs: 50 },
    },
  );
  try {
    const hung = fresh(`${gw.url}/hang`).catch((error) => error);
    await eventually(
      3000,
      "worker_exited",
      () => gw.logs.some((record) => record.event === "worker_exited"),
    );
    const exited = gw.logs.find((record) => record.event === "worker_exited")!;
    assert.equal(exited.reason, "unresponsive");
    assert.ok(await hung instanceof Error, "the hung worker's connection is cut");
    assert.ok((await freshMany(gw.url, 20)).every((answer) => answer.status === 200));
    await eventually(
      5000,
      "worker_restarted",
      () => gw.logs.some((record) => record.event === "worker_restarted"),
    );
    const text = await metrics(gw);
    assert.equal(metricValue(text, 'vanguard_worker_exits_total{reason="unresponsive"}'), 1);
    assert.equal(metricValue(text, "vanguard_workers_serving"), 2);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("workers: 1 starts no Worker at all; workers: 2 starts two", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const original = globalThis.Worker;
  let spawned = 0;
  globalThis.Worker = class extends original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      spawned++;
      super(...args);
    }
  };
  try {
    const single = await startWorkers(workersConfig(1, [upstream.url]));
    try {
      assert.equal((await fresh(single.url)).status, 200);
      const started = single.logs.find((record) => record.event === "gateway_started")!;
      assert.equal(started.workers, undefined);
    } finally {
      await single.close();
    }
    assert.equal(spawned, 0);
    const two = await startWorkers(workersConfig(2, [upstream.url]));
    await two.close();
    assert.equal(spawned, 2);
  } finally {
    globalThis.Worker = original;
    await upstream.close();
  }
});

Deno.test("workers: auto means one worker per core", async () => {
  assert.equal(workerCount("auto", 8), 8);
  assert.equal(workerCount("auto", 1), 1, "one core: no worker thread");
  assert.equal(workerCount("auto", 0), 1);
  assert.equal(workerCount(3, 8), 3);
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startWorkers(workersConfig("auto", [upstream.url]));
  try {
    const cores = navigator.hardwareConcurrency;
    const started = gw.logs.find((r) => r.event === "gateway_started" && r.worker === undefined)!;
    assert.equal(started.workers, cores > 1 ? cores : undefined);
    assert.equal((await fresh(gw.url)).status, 200);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("with workers, programmatic middleware fails the start with a clear error", async () => {
  const noop: Middleware = (_ctx, next) => next();
  await assert.rejects(
    startTestGateway(workersConfig(2, [`http://127.0.0.1:${closedPort()}`]), {
      middleware: [noop],
    }),
    /server.workers is 2: GatewayOptions.middleware cannot reach worker threads.*server.workers: 1/,
  );
});

Deno.test("with workers, a port in use fails the start naming the address and the key", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      startGateway({
        config: configFrom(workersConfig(2, [`http://127.0.0.1:${closedPort()}`])),
        logger: memoryLogger(),
        workerLogs: "logger",
        listen: { port, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
      }),
      new Error(
        `Cannot listen on 127.0.0.1:${port} (server.port): address already in use; stop the other process or choose another port`,
      ),
    );
  } finally {
    taken.close();
  }
});

Deno.test("a config with workers, rate limits and no redis warns that each worker counts alone", () => {
  const warnings = (yaml: string) => {
    const result = parseConfig(yaml, { displayPath: "w.yaml", absolutePath: "/tmp/w.yaml" });
    assert.ok(result.ok);
    return result.warnings.map((warning) =>
      `${warning.line}: ${warning.field}: ${warning.message}`
    );
  };
  const limited = (server: string, redis = "") =>
    `server:
${server}
${redis}
services:
  app: { urls: [http://127.0.0.1:9] }
routes:
  - id: limited
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 10, period_seconds: 60, client_identifier: IP }
`;
  assert.deepEqual(warnings(limited("  workers: 4")), [
    '2: server.workers: each worker counts rate limits alone without redis: a client may get up to 4 times the limit on "limited"; configure redis for an exact limit',
  ]);
  assert.match(warnings(limited("  workers: auto"))[0], /up to one limit per core/);
  assert.deepEqual(warnings(limited("  workers: 1")), []);
  assert.deepEqual(warnings(limited("  workers: 4", "redis: { url: redis://127.0.0.1:6379 }")), []);
});
