import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Metrics } from "../../lib/admin/metrics.ts";

/** The sample lines (not comments) of an exposition, for exact comparisons. */
function samples(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

/**
 * A line-by-line check of the text format (0.0.4): each metric's HELP and
 * TYPE come once, before its samples, and every sample line parses.
 */
function assertValidExposition(text: string): void {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const sample =
    /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*)?\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/;
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (help) {
      assert.ok(!helped.has(help[1]), `HELP for ${help[1]} given twice`);
      helped.add(help[1]);
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.ok(!typed.has(type[1]), `TYPE for ${type[1]} given twice`);
      typed.set(type[1], type[2]);
      continue;
    }
    const match = sample.exec(line);
    assert.ok(match, `not a valid sample line: ${JSON.stringify(line)}`);
    const name = match[1];
    const family = typed.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(typed.has(family), `sample ${name} comes before its TYPE line`);
    if (family !== name) assert.equal(typed.get(family), "histogram");
  }
}

Deno.test("Counter renders HELP, TYPE and one line per label set", () => {
  const counter = new Counter("test_total", "Things counted.", ["route", "status"]);
  counter.inc({ route: "users", status: "200" });
  counter.inc({ route: "users", status: "200" });
  counter.inc({ route: "orders", status: "404" }, 5);
  const text = counter.render();
  assertValidExposition(text);
  assert.equal(
    text,
    [
      "# HELP test_total Things counted.",
      "# TYPE test_total counter",
      'test_total{route="users",status="200"} 2',
      'test_total{route="orders",status="404"} 5',
      "",
    ].join("\n"),
  );
  assert.equal(counter.get({ route: "users", status: "200" }), 2);
});

Deno.test("a counter without labels renders 0 before any increment", () => {
  const counter = new Counter("errors_total", "Errors.", []);
  assert.equal(
    counter.render(),
    "# HELP errors_total Errors.\n# TYPE errors_total counter\nerrors_total 0\n",
  );
  counter.inc();
  counter.inc();
  assert.deepEqual(samples(counter.render()), ["errors_total 2"]);
});

Deno.test("a counter with labels renders no samples before any increment", () => {
  const counter = new Counter("by_kind_total", "By kind.", ["kind"]);
  const text = counter.render();
  assertValidExposition(text);
  assert.deepEqual(samples(text), []);
  assert.match(text, /^# TYPE by_kind_total counter$/m);
});

Deno.test("label values escape quote, backslash and newline", () => {
  const counter = new Counter("escaped_total", "Escaping.", ["value"]);
  counter.inc({ value: 'say "hi"' });
  counter.inc({ value: "C:\\path" });
  counter.inc({ value: "two\nlines" });
  counter.inc({ value: '\\"\n' });
  const text = counter.render();
  assertValidExposition(text);
  assert.deepEqual(samples(text), [
    'escaped_total{value="say \\"hi\\""} 1',
    'escaped_total{value="C:\\\\path"} 1',
    'escaped_total{value="two\\nlines"} 1',
    'escaped_total{value="\\\\\\"\\n"} 1',
  ]);
});

Deno.test("a missing label is rendered as an empty value", () => {
  const counter = new Counter("requests_total", "Requests.", ["route", "status"]);
  counter.inc({ status: "404" });
  assert.deepEqual(samples(counter.render()), ['requests_total{route="",status="404"} 1']);
});

Deno.test("Gauge renders set and added values and forgets them on reset", () => {
  const gauge = new Gauge("endpoints", "Ready endpoints.", ["service"]);
  gauge.set({ service: "users" }, 3);
  gauge.set({ service: "orders" }, 1);
  gauge.add({ service: "users" }, -1);
  let text = gauge.render();
  assertValidExposition(text);
  assert.match(text, /^# HELP endpoints Ready endpoints\.$/m);
  assert.match(text, /^# TYPE endpoints gauge$/m);
  assert.deepEqual(samples(text), [
    'endpoints{service="users"} 2',
    'endpoints{service="orders"} 1',
  ]);
  assert.equal(gauge.get({ service: "users" }), 2);

  gauge.reset();
  gauge.set({ service: "payments" }, 4);
  text = gauge.render();
  assert.deepEqual(samples(text), ['endpoints{service="payments"} 4']);
});

Deno.test("a gauge without labels renders 0 before it is set", () => {
  const gauge = new Gauge("in_flight", "In flight.", []);
  assert.deepEqual(samples(gauge.render()), ["in_flight 0"]);
  gauge.add({}, 3);
  gauge.add({}, -1);
  assert.deepEqual(samples(gauge.render()), ["in_flight 2"]);
});

Deno.test("Histogram renders cumulative buckets, +Inf, _sum and _count", () => {
  // Buckets given out of order are sorted.
  const histogram = new Histogram("latency_seconds", "Latency.", ["route"], [1, 0.1, 0.5]);
  for (const value of [0.05, 0.1, 0.3, 0.7, 2]) histogram.observe({ route: "users" }, value);
  histogram.observe({ route: "orders" }, 0.2);
  const text = histogram.render();
  assertValidExposition(text);
  assert.equal(
    text,
    [
      "# HELP latency_seconds Latency.",
      "# TYPE latency_seconds histogram",
      'latency_seconds_bucket{route="users",le="0.1"} 2',
      'latency_seconds_bucket{route="users",le="0.5"} 3',
      'latency_seconds_bucket{route="users",le="1"} 4',
      'latency_seconds_bucket{route="users",le="+Inf"} 5',
      'latency_seconds_sum{route="users"} 3.15',
      'latency_seconds_count{route="users"} 5',
      'latency_seconds_bucket{route="orders",le="0.1"} 0',
      'latency_seconds_bucket{route="orders",le="0.5"} 1',
      'latency_seconds_bucket{route="orders",le="1"} 1',
      'latency_seconds_bucket{route="orders",le="+Inf"} 1',
      'latency_seconds_sum{route="orders"} 0.2',
      'latency_seconds_count{route="orders"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("Histogram buckets never decrease and +Inf equals _count", () => {
  const histogram = new Histogram("h_seconds", "H.", [], [0.01, 0.1, 1, 10]);
  const values = [0.001, 0.01, 0.011, 0.5, 0.5, 3, 50, 100, 0.09];
  for (const value of values) histogram.observe({}, value);
  const lines = samples(histogram.render());
  const buckets = lines.filter((line) => line.startsWith("h_seconds_bucket"))
    .map((line) => Number(line.split(" ")[1]));
  assert.deepEqual(buckets, [2, 4, 6, 7, 9]);
  assert.ok(lines.includes(`h_seconds_count ${values.length}`));
  assert.ok(lines.includes('h_seconds_bucket{le="+Inf"} 9'));
});

Deno.test("Metrics.render() exposes every metric the contract lists", () => {
  const metrics = new Metrics();
  const text = metrics.render();
  assertValidExposition(text);
  const expected: [string, string][] = [
    ["vanguard_requests_total", "counter"],
    ["vanguard_request_duration_seconds", "histogram"],
    ["vanguard_upstream_errors_total", "counter"],
    ["vanguard_ratelimit_rejected_total", "counter"],
    ["vanguard_redis_errors_total", "counter"],
    ["vanguard_discovery_events_total", "counter"],
    ["vanguard_service_endpoints", "gauge"],
  ];
  for (const [name, type] of expected) {
    assert.match(text, new RegExp(`^# HELP ${name} \\S`, "m"), `HELP for ${name}`);
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `TYPE for ${name}`);
  }
  // Labelless counters exist from the start, so a scrape sees 0 rather than nothing.
  assert.match(text, /^vanguard_redis_errors_total 0$/m);
});

Deno.test("Metrics.render() shows recorded values with the contract's labels", () => {
  const metrics = new Metrics();
  metrics.requests.inc({ route: "users-route", status: "200" });
  metrics.requests.inc({ route: "", status: "404" });
  metrics.duration.observe({ route: "users-route", status: "200" }, 0.003);
  metrics.upstreamErrors.inc({ service: "users", kind: "refused" });
  metrics.rateLimitRejected.inc({ route: "orders-route" });
  metrics.redisErrors.inc();
  metrics.discoveryEvents.inc({ kind: "MODIFIED" });
  metrics.serviceEndpoints.set({ service: "users" }, 2);
  const text = metrics.render();
  assertValidExposition(text);
  const lines = samples(text);
  for (
    const line of [
      'vanguard_requests_total{route="users-route",status="200"} 1',
      'vanguard_requests_total{route="",status="404"} 1',
      'vanguard_request_duration_seconds_count{route="users-route",status="200"} 1',
      'vanguard_request_duration_seconds_bucket{route="users-route",status="200",le="0.005"} 1',
      'vanguard_request_duration_seconds_bucket{route="users-route",status="200",le="0.0025"} 0',
      'vanguard_upstream_errors_total{service="users",kind="refused"} 1',
      'vanguard_ratelimit_rejected_total{route="orders-route"} 1',
      "vanguard_redis_errors_total 1",
      'vanguard_discovery_events_total{kind="MODIFIED"} 1',
      'vanguard_service_endpoints{service="users"} 2',
    ]
  ) {
    assert.ok(lines.includes(line), `missing ${line}`);
  }
});
