/** Metrics.snapshot() / render(others) / retain(): how the main thread shows its workers' series. */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/admin/metrics.ts";
import { metricValue } from "../helpers.ts";

/** A worker's registry with some traffic, as the main thread receives it (a structured clone). */
function workerSnapshot(requests: number, inFlight: number, ejected: number) {
  const metrics = new Metrics();
  metrics.requests.inc({ route: "app", status: "200" }, requests);
  for (let i = 0; i < requests; i++) {
    metrics.duration.observe({ route: "app", status: "200" }, 0.002);
  }
  metrics.inFlight.set({}, inFlight);
  metrics.upstreamEjected.set({ service: "app" }, ejected);
  metrics.tableVersion.set({}, 99);
  return structuredClone(metrics.snapshot());
}

Deno.test("render(others) sums counters, histograms and count gauges, takes the largest ejected count and the main thread's table version", () => {
  const main = new Metrics();
  main.tableVersion.set({}, 3);
  main.serviceEndpoints.set({ service: "app" }, 2);
  const text = main.render([workerSnapshot(5, 1, 0), workerSnapshot(7, 2, 1)]);
  assert.equal(metricValue(text, 'vanguard_requests_total{route="app",status="200"}'), 12);
  assert.equal(
    metricValue(text, 'vanguard_request_duration_seconds_count{route="app",status="200"}'),
    12,
  );
  assert.equal(
    metricValue(
      text,
      'vanguard_request_duration_seconds_bucket{route="app",status="200",le="0.0025"}',
    ),
    12,
    "buckets add up, and stay cumulative",
  );
  assert.equal(
    metricValue(
      text,
      'vanguard_request_duration_seconds_bucket{route="app",status="200",le="+Inf"}',
    ),
    12,
  );
  assert.equal(metricValue(text, "vanguard_requests_in_flight"), 3);
  assert.equal(metricValue(text, 'vanguard_upstream_ejected_endpoints{service="app"}'), 1);
  assert.equal(metricValue(text, "vanguard_routing_table_version"), 3);
  assert.equal(metricValue(text, 'vanguard_service_endpoints{service="app"}'), 2);
});

Deno.test("render() without others is the registry alone, and merging leaves the registry unchanged", () => {
  const main = new Metrics();
  main.requests.inc({ route: "app", status: "200" }, 2);
  const alone = main.render();
  main.render([workerSnapshot(5, 0, 0)]);
  assert.equal(main.render(), alone);
  assert.equal(main.requests.get({ route: "app", status: "200" }), 2);
});

Deno.test("retain() keeps an exited worker's counters and histograms, not its gauges", () => {
  const main = new Metrics();
  const kept = main.retain(
    main.retain(undefined, workerSnapshot(4, 3, 1)),
    workerSnapshot(6, 1, 1),
  );
  const text = main.render([kept, workerSnapshot(1, 0, 0)]);
  assert.equal(metricValue(text, 'vanguard_requests_total{route="app",status="200"}'), 11);
  assert.equal(
    metricValue(text, 'vanguard_request_duration_seconds_count{route="app",status="200"}'),
    11,
  );
  assert.equal(metricValue(text, "vanguard_requests_in_flight"), 0, "gone with the worker");
});
