/**
 * Every metric Vanguard exports, in one registry per gateway (per thread
 * with workers); the kinds live in metric_kinds.ts.
 */
import {
  Counter,
  Gauge,
  Histogram,
  type HistogramValue,
  type Metric,
  type MetricsSnapshot,
  type SeriesData,
  sumSeries,
} from "./metric_kinds.ts";

export {
  Counter,
  Gauge,
  Histogram,
  type HistogramValue,
  type MergeRule,
  type MetricsSnapshot,
  type SeriesData,
} from "./metric_kinds.ts";

/** Every metric Vanguard exports; one instance per gateway. */
export class Metrics {
  readonly requests = new Counter(
    "vanguard_requests_total",
    "Requests answered, by route id and status code.",
    ["route", "status"],
  );
  readonly duration = new Histogram(
    "vanguard_request_duration_seconds",
    "Time from request arrival until the response body ended, by route id and status.",
    ["route", "status"],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly upstreamErrors = new Counter(
    "vanguard_upstream_errors_total",
    "Failed upstream exchanges, by service and kind (refused, reset, timeout, dns, aborted, protocol).",
    ["service", "kind"],
  );
  readonly upstreamEjections = new Counter(
    "vanguard_upstream_ejections_total",
    "Endpoints ejected by passive health checking (consecutive failures), by service.",
    ["service"],
  );
  readonly upstreamEjected = new Gauge(
    "vanguard_upstream_ejected_endpoints",
    "Ready endpoints getting no traffic now (ejected, or failing active health checks), by service.",
    ["service"],
    "max",
  );
  readonly upstreamRetries = new Counter(
    "vanguard_upstream_retries_total",
    "Upstream attempts made again on another (or the same) endpoint, by service.",
    ["service"],
  );
  readonly upstreamOverloaded = new Counter(
    "vanguard_upstream_overloaded_total",
    "Requests answered 503 because the service had max_in_flight requests in flight, by service.",
    ["service"],
  );
  readonly mirrorRequests = new Counter(
    "vanguard_mirror_requests_total",
    "Mirrored copies of requests, by route and outcome (sent, failed, skipped: too many in flight or a body over the buffer).",
    ["route", "outcome"],
  );
  readonly mirrorInFlight = new Gauge(
    "vanguard_mirror_in_flight",
    "Mirrored copies of requests in flight (bounded; more are skipped).",
    [],
  );
  readonly healthCheckFailures = new Counter(
    "vanguard_health_check_failures_total",
    "Failed active health checks (error, timeout, or a status other than 2xx/3xx), by service.",
    ["service"],
  );
  readonly rateLimitRejected = new Counter(
    "vanguard_ratelimit_rejected_total",
    "Requests answered 429, by route id.",
    ["route"],
  );
  readonly rateLimitAdmitted = new Counter(
    "vanguard_ratelimit_admitted_total",
    "Requests admitted on rate-limited routes, by route id.",
    ["route"],
  );
  readonly rateLimitEvictions = new Counter(
    "vanguard_ratelimit_evictions_total",
    "In-memory rate-limit buckets dropped for the memory budget while they still counted requests (those clients start over).",
    [],
  );
  readonly rateLimitMemoryBuckets = new Gauge(
    "vanguard_ratelimit_memory_buckets",
    "Client buckets held by the in-memory rate limiter now.",
    [],
  );
  readonly rateLimitMemoryBytes = new Gauge(
    "vanguard_ratelimit_memory_bytes",
    "Estimated memory of the in-memory rate limiter's buckets (bounded by server.memory_limiter_max_bytes).",
    [],
  );
  readonly redisDuration = new Histogram(
    "vanguard_redis_duration_seconds",
    "Time from a rate-limit check to its answer from Redis: the wait for a free batch call, then the round trip of the batch script (successful checks).",
    [],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  );
  readonly authRejected = new Counter(
    "vanguard_auth_rejected_total",
    "Requests refused by authentication, by route id and reason (missing, invalid, expired, malformed, unavailable).",
    ["route", "reason"],
  );
  readonly redisErrors = new Counter(
    "vanguard_redis_errors_total",
    "Redis commands that failed or timed out.",
    [],
  );
  readonly redisNodeErrors = new Counter(
    "vanguard_redis_node_errors_total",
    "Rate-limit checks that failed or timed out, by the Redis node they were for (host:port; on a cluster the node that owned the slot; at most 32 names, then other).",
    ["node"],
  );
  readonly redisRedirects = new Counter(
    "vanguard_redis_redirects_total",
    "MOVED and ASK answers from Redis Cluster nodes (followed by the client), by the node they pointed to and kind (moved, ask).",
    ["node", "kind"],
  );
  readonly discoveryEvents = new Counter(
    "vanguard_discovery_events_total",
    "Kubernetes watch events by kind: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (failed list or watch), RELIST.",
    ["kind"],
  );
  readonly discoveryConnected = new Gauge(
    "vanguard_discovery_connected",
    "1 while every Kubernetes watch is open, else 0.",
    [],
    "owner",
  );
  readonly discoveryLastEventAge = new Gauge(
    "vanguard_discovery_last_event_age_seconds",
    "Seconds since the quietest watch last received an event or bookmark (-1: never).",
    [],
    "owner",
  );
  readonly #beforeRender: (() => void)[] = [];
  readonly serviceEndpoints = new Gauge(
    "vanguard_service_endpoints",
    "Ready endpoints per service in the current routing table.",
    ["service"],
    "owner",
  );
  readonly inFlight = new Gauge(
    "vanguard_requests_in_flight",
    "Requests being handled now.",
    [],
  );
  readonly clientConnections = new Gauge(
    "vanguard_client_connections",
    "Client connections open now on the proxy listener (WebSocket sessions included).",
    [],
  );
  readonly clientConnectionsClosed = new Counter(
    "vanguard_client_connections_closed_total",
    "Client connections closed by the gateway, by reason (head_timeout: no complete request head in time, idle_timeout: idle keep-alive, over_limit: max_connections reached).",
    ["reason"],
  );
  readonly workersServing = new Gauge(
    "vanguard_workers_serving",
    "Worker threads serving the proxy port now (server.workers above 1; 0 otherwise).",
    [],
    "owner",
  );
  readonly workerExits = new Counter(
    "vanguard_worker_exits_total",
    "Worker threads that exited unexpectedly (each is restarted), by reason (crashed, unresponsive, start_failed).",
    ["reason"],
  );
  readonly tableVersion = new Gauge(
    "vanguard_routing_table_version",
    "Version of the routing table now serving; it increases with every swap.",
    [],
    "owner",
  );

  /**
   * Registers a function that refreshes computed gauges before each scrape;
   * the returned function unregisters it (for parts that are closed on reload).
   */
  beforeRender(refresh: () => void): () => void {
    this.#beforeRender.push(refresh);
    return () => {
      const index = this.#beforeRender.indexOf(refresh);
      if (index !== -1) this.#beforeRender.splice(index, 1);
    };
  }

  /** Every metric, in the order of the exposition. */
  #all(): readonly Metric<number | HistogramValue>[] {
    return [
      this.requests,
      this.duration,
      this.upstreamErrors,
      this.upstreamEjections,
      this.upstreamEjected,
      this.upstreamRetries,
      this.upstreamOverloaded,
      this.mirrorRequests,
      this.mirrorInFlight,
      this.healthCheckFailures,
      this.rateLimitRejected,
      this.rateLimitAdmitted,
      this.rateLimitEvictions,
      this.rateLimitMemoryBuckets,
      this.rateLimitMemoryBytes,
      this.redisDuration,
      this.authRejected,
      this.redisErrors,
      this.redisNodeErrors,
      this.redisRedirects,
      this.discoveryEvents,
      this.discoveryConnected,
      this.discoveryLastEventAge,
      this.serviceEndpoints,
      this.inFlight,
      this.clientConnections,
      this.clientConnectionsClosed,
      this.workersServing,
      this.workerExits,
      this.tableVersion,
    ] as Metric<number | HistogramValue>[];
  }

  /** Every series now, as plain data (computed gauges refreshed first), for another thread. */
  snapshot(): MetricsSnapshot {
    for (const refresh of this.#beforeRender) refresh();
    const out: Record<string, readonly SeriesData[]> = {};
    for (const metric of this.#all()) out[metric.name] = metric.snapshot();
    return out;
  }

  /**
   * The whole registry in Prometheus text format; with `others` (the
   * workers' snapshots), each metric merged with theirs by its rule.
   */
  render(others: readonly MetricsSnapshot[] = []): string {
    for (const refresh of this.#beforeRender) refresh();
    return this.#all().map((metric) =>
      metric.render(others.length === 0 ? [] : others.map((other) => other[metric.name] ?? []))
    ).join("");
  }

  /**
   * `into` plus the counters and histograms of `departed` (a worker that
   * exited): what keeps the merged counters from going back when a worker
   * is replaced. Its gauges are dropped: what they counted is gone with it.
   */
  retain(into: MetricsSnapshot | undefined, departed: MetricsSnapshot): MetricsSnapshot {
    const out: Record<string, readonly SeriesData[]> = {};
    for (const metric of this.#all()) {
      if (metric instanceof Gauge) continue;
      const kept = into?.[metric.name] ?? [];
      const gone = departed[metric.name] ?? [];
      out[metric.name] = sumSeries(metric, kept, gone);
    }
    return out;
  }
}
