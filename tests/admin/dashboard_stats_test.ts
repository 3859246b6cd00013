import assert from "node:assert/strict";
import { quantile, RateWindow, readTotals } from "../../lib/admin/dashboard_stats.ts";
import { endpointState } from "../../lib/admin/dashboard_data.ts";
import { Metrics } from "../../lib/admin/metrics.ts";
import { UpstreamHealth } from "../../lib/proxy/health.ts";

Deno.test("quantile() interpolates within the bucket the rank falls in, as histogram_quantile does", () => {
  const bounds = [0.1, 0.5, 1];
  const rows: [number, number[], number | null][] = [
    // q, observations per bucket (the last is +Inf), expected
    [0.99, [0, 0, 0, 0], null],
    [0.99, [100, 0, 0, 0], 0.099],
    [0.99, [50, 50, 0, 0], 0.1 + 0.4 * (49 / 50)],
    [0.99, [90, 9, 1, 0], 0.5],
    [0.5, [90, 9, 1, 0], 0.1 * (50 / 90)],
    [0.99, [0, 0, 1, 0], 1 - 0.5 * 0.01],
    // In +Inf: the highest finite bound, as Prometheus answers.
    [0.99, [0, 0, 0, 10], 1],
    [0.99, [98, 0, 0, 2], 1],
  ];
  for (const [q, buckets, expected] of rows) {
    const got = quantile(q, bounds, buckets);
    if (expected === null) assert.equal(got, null, `${q} of ${buckets}`);
    else assert.ok(Math.abs(got! - expected) < 1e-9, `${q} of ${buckets}: ${got} != ${expected}`);
  }
});

/** A window on a clock the test moves, over a real registry. */
function setup() {
  const metrics = new Metrics();
  let now = 0;
  const window = new RateWindow({ windowMs: 10_000, minGapMs: 1000, now: () => now });
  const observe = () => window.observe(readTotals(metrics, [metrics.snapshot()]));
  return { metrics, observe, at: (ms: number) => now = ms };
}

function requests(metrics: Metrics, route: string, status: string, n: number, seconds: number) {
  for (let i = 0; i < n; i++) {
    metrics.requests.inc({ route, status });
    metrics.duration.observe({ route, status }, seconds);
  }
}

Deno.test("RateWindow: rates, 5xx share, p99 and 429s per route between samples", () => {
  const { metrics, observe, at } = setup();
  requests(metrics, "users", "200", 7, 0.003); // before the first sample: not in any window
  const first = observe();
  assert.equal(first.seconds, null, "one sample is no rate");
  assert.equal(first.all, null);

  requests(metrics, "users", "200", 20, 0.003);
  requests(metrics, "users", "502", 5, 0.003);
  requests(metrics, "orders", "429", 4, 0.0001);
  metrics.rateLimitRejected.inc({ route: "orders" }, 4);
  requests(metrics, "", "404", 2, 0.0001);
  at(2000);
  const rates = observe();
  assert.equal(rates.seconds, 2);
  const users = rates.routes.get("users")!;
  assert.equal(users.requestsPerSecond, 12.5);
  assert.equal(users.errorRatio, 0.2);
  // 25 observations in (0.0025, 0.005]: rank 24.75 of 25.
  assert.ok(Math.abs(users.p99Seconds! - (0.0025 + 0.0025 * 24.75 / 25)) < 1e-12);
  assert.equal(users.rejectedPerSecond, 0);
  const orders = rates.routes.get("orders")!;
  assert.equal(orders.rejectedPerSecond, 2);
  assert.equal(orders.errorRatio, 0, "a 429 is not a 5xx");
  assert.equal(rates.routes.get("")!.requestsPerSecond, 1, "unmatched requests have their row");
  assert.equal(rates.all!.requestsPerSecond, (25 + 4 + 2) / 2);
  assert.ok(Math.abs(rates.all!.errorRatio! - 5 / 31) < 1e-12);
});

Deno.test("RateWindow: the window slides, so old traffic leaves it, and close samples are not kept", () => {
  const { metrics, observe, at } = setup();
  observe();
  requests(metrics, "users", "200", 30, 0.01);
  at(2000);
  assert.equal(observe().routes.get("users")!.requestsPerSecond, 15);
  at(2500);
  // Half a second after the last kept sample: not kept, but the rate is still over 2.5 s.
  assert.equal(observe().routes.get("users")!.requestsPerSecond, 12);
  at(13_000);
  // The sample of 2 s is 11 s old: the window starts there, after the traffic.
  const late = observe();
  assert.equal(late.seconds, 11);
  assert.equal(late.routes.get("users")!.requestsPerSecond, 0);
  assert.equal(late.routes.get("users")!.errorRatio, null, "no requests: no ratio");
  assert.equal(late.routes.get("users")!.p99Seconds, null);
});

Deno.test("RateWindow: a counter that went back is a reset, never a negative rate", () => {
  let metrics = new Metrics();
  let now = 0;
  const window = new RateWindow({ now: () => now });
  requests(metrics, "users", "200", 100, 0.01);
  window.observe(readTotals(metrics, [metrics.snapshot()]));
  metrics = new Metrics();
  requests(metrics, "users", "200", 4, 0.01);
  now = 2000;
  const rates = window.observe(readTotals(metrics, [metrics.snapshot()]));
  assert.equal(rates.routes.get("users")!.requestsPerSecond, 2);
});

Deno.test("RateWindow: Redis checks and errors per second, and how long ago the last error was", () => {
  const { metrics, observe, at } = setup();
  assert.equal(observe().secondsSinceRedisError, null);
  for (let i = 0; i < 10; i++) metrics.redisDuration.observe({}, 0.001);
  at(1000);
  const ok = observe();
  assert.equal(ok.redisChecksPerSecond, 10);
  assert.equal(ok.redisErrorsPerSecond, 0);
  assert.equal(ok.secondsSinceRedisError, null);
  metrics.redisErrors.inc({}, 3);
  at(2000);
  assert.equal(observe().redisErrorsPerSecond, 1.5);
  at(5000);
  assert.equal(observe().secondsSinceRedisError, 3);
});

Deno.test("readTotals() sums the worker threads' snapshots with this thread's, as /metrics does", () => {
  const main = new Metrics();
  const worker = new Metrics();
  requests(main, "users", "200", 1, 0.001);
  requests(worker, "users", "200", 3, 2);
  requests(worker, "users", "503", 2, 0.001);
  worker.rateLimitRejected.inc({ route: "users" }, 5);
  const totals = readTotals(main, [main.snapshot(), worker.snapshot()]);
  const users = totals.routes.get("users")!;
  assert.equal(users.requests, 6);
  assert.equal(users.errors, 2);
  assert.equal(users.rejected, 5);
  assert.equal(users.buckets.reduce((a, b) => a + b, 0), 6, "every observation in a bucket");
  assert.equal(users.buckets[main.duration.buckets.indexOf(2.5)], 3, "2 s is in the 2.5 s bucket");
});

Deno.test("endpointState() names what the balancer does with an endpoint, worst first", () => {
  const health = new UpstreamHealth({ now: () => 0 });
  const owner = {};
  const ready = { url: "http://10.0.0.1:80", ready: true };
  assert.equal(endpointState(ready, health), "ready");
  health.setDown(ready.url, true, owner);
  assert.equal(endpointState(ready, health), "unhealthy");
  health.setDown(ready.url, false, owner);
  assert.equal(endpointState(ready, health), "ready");

  const flaky = { url: "http://10.0.0.2:80", ready: true };
  const settings = { consecutiveFailures: 1, baseEjectionMs: 30_000, maxEjectionMs: 300_000 };
  health.recordFailure(flaky.url, { settings, endpoints: [ready, flaky] });
  assert.equal(endpointState(flaky, health), "ejected");

  assert.equal(
    endpointState({ url: "http://10.0.0.3:80", ready: false, terminating: true }, health),
    "terminating",
  );
  assert.equal(endpointState({ url: "http://10.0.0.4:80", ready: false }, health), "not_ready");
});
