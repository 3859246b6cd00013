/**
 * The dashboard's live numbers: request rate, 5xx share, p99 and 429s per route, and Redis
 * checks, computed from the registry behind /metrics (with worker threads, the same merge). Each
 * read of the dashboard data samples the counters; the rates are the change since the sample
 * about `windowMs` before, as Prometheus's `rate()` and `histogram_quantile()` would compute
 * them over that range.
 *
 * @module
 */

import { type Metric, type SeriesData, sumSeries } from "./metric_kinds.ts";
import type { HistogramValue, Metrics, MetricsSnapshot } from "./metrics.ts";

/** One route's counters at one moment. */
export interface RouteTotals {
  readonly requests: number;
  /** Responses with a 5xx status. */
  readonly errors: number;
  /** 429 answers of the rate limiter. */
  readonly rejected: number;
  /** Duration observations per bucket of `bounds`, not cumulative; one more at the end: +Inf. */
  readonly buckets: readonly number[];
}

/** The counters the dashboard follows, at one moment. */
export interface Totals {
  /** By route id; `""`: requests that matched no route. */
  readonly routes: ReadonlyMap<string, RouteTotals>;
  /** The upper bounds of the duration buckets, in seconds. */
  readonly bounds: readonly number[];
  /** Rate-limit checks Redis answered. */
  readonly redisChecks: number;
  /** Rate-limit checks that failed or timed out on Redis. */
  readonly redisErrors: number;
}

/** A route's traffic over the window. */
export interface Rates {
  readonly requestsPerSecond: number;
  /** The share of 5xx responses; null without requests. */
  readonly errorRatio: number | null;
  /** The 99th percentile duration; null without requests. */
  readonly p99Seconds: number | null;
  readonly rejectedPerSecond: number;
}

/** Everything over the window; the rates are null until two samples are far enough apart. */
export interface WindowRates {
  /** The span the rates cover, in seconds; null on the first sample. */
  readonly seconds: number | null;
  readonly routes: ReadonlyMap<string, Rates>;
  /** Every request, matched or not. */
  readonly all: Rates | null;
  readonly redisChecksPerSecond: number | null;
  readonly redisErrorsPerSecond: number | null;
  /** Seconds since the Redis error count last grew (as seen by these samples); null: never. */
  readonly secondsSinceRedisError: number | null;
  /** Seconds since the count of checks Redis answered last grew; null: never. */
  readonly secondsSinceRedisCheck: number | null;
}

/**
 * The counters in `snapshots` (this thread's `metrics.snapshot()`, then the worker threads'),
 * summed as /metrics sums them; `metrics` gives the metric names and the duration buckets.
 */
export function readTotals(metrics: Metrics, snapshots: readonly MetricsSnapshot[]): Totals {
  const merged = <T>(metric: Metric<T>): SeriesData[] => {
    let series: SeriesData[] = [];
    for (const other of snapshots) {
      series = sumSeries(
        metric as unknown as Metric<number | HistogramValue>,
        series,
        other[metric.name] ?? [],
      );
    }
    return series;
  };
  const bounds = metrics.duration.buckets;
  const routes = new Map<string, {
    requests: number;
    errors: number;
    rejected: number;
    buckets: number[];
  }>();
  const route = (id: string) => {
    let found = routes.get(id);
    if (found === undefined) {
      found = {
        requests: 0,
        errors: 0,
        rejected: 0,
        buckets: new Array(bounds.length + 1).fill(0),
      };
      routes.set(id, found);
    }
    return found;
  };
  for (const { labels, value } of merged(metrics.requests)) {
    const totals = route(labels.route ?? "");
    totals.requests += value as number;
    if ((labels.status ?? "").startsWith("5")) totals.errors += value as number;
  }
  for (const { labels, value } of merged(metrics.duration)) {
    const histogram = value as HistogramValue;
    const buckets = route(labels.route ?? "").buckets;
    let finite = 0;
    histogram.counts.forEach((n, i) => {
      buckets[i] += n;
      finite += n;
    });
    buckets[bounds.length] += histogram.count - finite;
  }
  for (const { labels, value } of merged(metrics.rateLimitRejected)) {
    route(labels.route ?? "").rejected += value as number;
  }
  const redisChecks = merged(metrics.redisDuration)
    .reduce((n, { value }) => n + (value as HistogramValue).count, 0);
  const redisErrors = merged(metrics.redisErrors).reduce(
    (n, { value }) => n + (value as number),
    0,
  );
  return { routes, bounds, redisChecks, redisErrors };
}

/**
 * The `q` quantile (0 to 1) of a histogram's observations, interpolated within the bucket it
 * falls in as Prometheus's histogram_quantile does; the highest finite bound when it falls in
 * +Inf; null without observations.
 */
export function quantile(q: number, bounds: readonly number[], buckets: readonly number[]) {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i];
    if (count > 0 && below + count >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? null;
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return bounds[bounds.length - 1] ?? null;
}

interface Sample {
  readonly at: number;
  readonly totals: Totals;
}

/**
 * Successive samples of {@linkcode Totals}, bounded: one every `minGapMs` at most (so many
 * dashboards polling at once keep no more), none older than the window needs.
 */
export class RateWindow {
  readonly #windowMs: number;
  readonly #minGapMs: number;
  readonly #now: () => number;
  #samples: Sample[] = [];
  #lastRedisErrors?: number;
  #redisErrorAt?: number;
  #lastRedisChecks?: number;
  #redisCheckAt?: number;

  /** `now` is a monotonic clock in milliseconds (default performance.now). */
  constructor(options: { windowMs?: number; minGapMs?: number; now?: () => number } = {}) {
    this.#windowMs = options.windowMs ?? 10_000;
    this.#minGapMs = options.minGapMs ?? 1000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The window the rates cover at most, in seconds. */
  get windowSeconds(): number {
    return this.#windowMs / 1000;
  }

  /** Takes `totals` as the counters of now; returns the rates since the window's start. */
  observe(totals: Totals): WindowRates {
    const now = this.#now();
    if (this.#lastRedisErrors !== undefined && totals.redisErrors > this.#lastRedisErrors) {
      this.#redisErrorAt = now;
    }
    this.#lastRedisErrors = totals.redisErrors;
    if (this.#lastRedisChecks !== undefined && totals.redisChecks > this.#lastRedisChecks) {
      this.#redisCheckAt = now;
    }
    this.#lastRedisChecks = totals.redisChecks;
    const last = this.#samples.at(-1);
    if (last === undefined || now - last.at >= this.#minGapMs) {
      this.#samples.push({ at: now, totals });
    }
    // The window starts at the newest sample at least windowMs old, else at the oldest one.
    let start = 0;
    for (let i = 0; i < this.#samples.length; i++) {
      if (now - this.#samples[i].at >= this.#windowMs) start = i;
    }
    this.#samples = this.#samples.slice(start);
    const base = this.#samples[0];
    const ago = (at: number | undefined) => at === undefined ? null : (now - at) / 1000;
    const secondsSinceRedisError = ago(this.#redisErrorAt);
    const secondsSinceRedisCheck = ago(this.#redisCheckAt);
    const span = (now - base.at) / 1000;
    // Closer than half the sampling gap: too short to call a rate.
    if (span * 1000 < this.#minGapMs / 2) {
      return {
        seconds: null,
        routes: new Map(),
        all: null,
        redisChecksPerSecond: null,
        redisErrorsPerSecond: null,
        secondsSinceRedisError,
        secondsSinceRedisCheck,
      };
    }
    const routes = new Map<string, Rates>();
    const zero: RouteTotals = {
      requests: 0,
      errors: 0,
      rejected: 0,
      buckets: new Array(totals.bounds.length + 1).fill(0),
    };
    let all: RouteTotals = zero;
    for (const [id, current] of totals.routes) {
      const delta = difference(current, base.totals.routes.get(id) ?? zero);
      routes.set(id, rates(delta, span, totals.bounds));
      all = sum(all, delta);
    }
    return {
      seconds: span,
      routes,
      all: rates(all, span, totals.bounds),
      redisChecksPerSecond: increase(totals.redisChecks, base.totals.redisChecks) / span,
      redisErrorsPerSecond: increase(totals.redisErrors, base.totals.redisErrors) / span,
      secondsSinceRedisError,
      secondsSinceRedisCheck,
    };
  }
}

/** A counter's increase; a counter that went back was reset (counted from zero). */
function increase(now: number, before: number): number {
  return now >= before ? now - before : now;
}

function difference(now: RouteTotals, before: RouteTotals): RouteTotals {
  // One reset among the counters (a route's series rebuilt) resets them all.
  if (now.requests < before.requests) return now;
  return {
    requests: now.requests - before.requests,
    errors: increase(now.errors, before.errors),
    rejected: increase(now.rejected, before.rejected),
    buckets: now.buckets.map((n, i) => increase(n, before.buckets[i] ?? 0)),
  };
}

function sum(a: RouteTotals, b: RouteTotals): RouteTotals {
  return {
    requests: a.requests + b.requests,
    errors: a.errors + b.errors,
    rejected: a.rejected + b.rejected,
    buckets: a.buckets.map((n, i) => n + (b.buckets[i] ?? 0)),
  };
}

function rates(delta: RouteTotals, seconds: number, bounds: readonly number[]): Rates {
  return {
    requestsPerSecond: delta.requests / seconds,
    errorRatio: delta.requests > 0 ? delta.errors / delta.requests : null,
    p99Seconds: quantile(0.99, bounds, delta.buckets),
    rejectedPerSecond: delta.rejected / seconds,
  };
}
