/**
 * `GET /dashboard/data`: what the dashboard page shows, as JSON. Routes and services come from
 * the table in force (as /routes), endpoint states from the balancer's health, traffic from the
 * registry behind /metrics (dashboard_stats.ts), and the config, reload, Redis and Kubernetes
 * state from the runtime in force. Plain data, no secret: the Redis URL is reduced to host and
 * port, a URL from the environment is named by its variable only.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Config } from "../config/types.ts";
import type { Endpoint, RouteEntry, ServiceEntry } from "../routing/table.ts";
import type { AdminDeps, EndpointHealth } from "./admin_deps.ts";
import {
  type Rates,
  RateWindow,
  readTotals,
  type RouteTotals,
  type WindowRates,
} from "./dashboard_stats.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/** How often the page asks for new data, in seconds. */
export const REFRESH_SECONDS = 2;
/** At most this many routes and services go into one answer (the rest are counted). */
const MAX_ROWS = 500;

/** An endpoint's state, worst first: what the balancer does with it. */
export type EndpointState = "unhealthy" | "ejected" | "terminating" | "not_ready" | "ready";

/** Builds the dashboard data of a gateway; keeps the samples the rates are computed from. */
export class DashboardData {
  readonly #deps: AdminDeps;
  readonly #window: RateWindow;
  readonly #now: () => number;

  /** `window` samples the counters (tests pass one with their own clock); `now` is wall time. */
  constructor(deps: AdminDeps, options: { window?: RateWindow; now?: () => number } = {}) {
    this.#deps = deps;
    this.#window = options.window ?? new RateWindow();
    this.#now = options.now ?? Date.now;
  }

  /** The data now; `others` are the worker threads' metrics (none in one thread). */
  build(others: readonly MetricsSnapshot[] = []): Record<string, unknown> {
    const deps = this.#deps;
    const own = deps.metrics.snapshot();
    const snapshots = [own, ...others];
    const totals = readTotals(deps.metrics, snapshots);
    const rates = this.#window.observe(totals);
    const table = deps.routing.current;
    const config = deps.config?.();
    const now = this.#now();
    const reloads = deps.reloads;
    const gauge = (name: string, labels: Record<string, string> = {}, from = snapshots) => {
      let found: number | undefined;
      for (const snapshot of from) {
        for (const series of snapshot[name] ?? []) {
          const matches = Object.entries(labels).every(([k, v]) => series.labels[k] === v);
          if (matches && typeof series.value === "number") {
            found = Math.max(found ?? -Infinity, series.value);
          }
        }
      }
      return found;
    };
    const routes = table.routes.slice(0, MAX_ROWS).map((route) =>
      routeRow(
        route,
        totals.routes.get(route.id),
        rates.seconds === null ? undefined : {
          rates: rates.routes.get(route.id),
        },
      )
    );
    const services = serviceRows(table.routes, table.services, deps.health);
    const last = reloads?.last;
    const discovery = deps.discovery?.();
    const unmatched = rates.routes.get("");
    return {
      generated_at: new Date(now).toISOString(),
      refresh_seconds: REFRESH_SECONDS,
      window_seconds: rates.seconds,
      gateway: {
        ready: deps.isReady(),
        draining: deps.isDraining(),
        uptime_seconds: reloads === undefined ? null : Math.round((now - reloads.startedAt) / 1000),
        workers: deps.workers?.() ?? null,
        admin_auth: deps.token === undefined ? "none" : "token",
      },
      config: {
        file: config?.file ?? null,
        digest: config === undefined ? null : configDigest(config),
        generation: reloads === undefined ? null : reloads.applied + 1,
        loaded_at: reloads === undefined ? null : new Date(reloads.loadedAt).toISOString(),
        table_version: table.version,
        last_reload: last === undefined ? null : {
          at: new Date(last.at).toISOString(),
          trigger: last.trigger,
          result: last.result,
          problems: last.problems,
        },
      },
      traffic: {
        ...traffic(rates.all ?? undefined),
        unmatched_per_second: rates.seconds === null ? null : (unmatched?.requestsPerSecond ?? 0),
        in_flight: sumOf(snapshots, "vanguard_requests_in_flight"),
      },
      redis: redisState(config, rates),
      kubernetes: discovery === undefined ? { enabled: false, state: "off" } : {
        enabled: true,
        namespace: config?.discovery.kubernetes?.namespace ?? null,
        state: !discovery.synced
          ? "syncing"
          : gauge("vanguard_discovery_connected", {}, [own]) === 1
          ? "connected"
          : "disconnected",
        synced: discovery.synced,
        last_event_age_seconds: gauge("vanguard_discovery_last_event_age_seconds", {}, [own]) ??
          null,
        errors_total: sumOf([own], "vanguard_discovery_events_total", { kind: "ERROR" }),
      },
      routes,
      services: services.slice(0, MAX_ROWS).map((service) => ({
        ...service,
        out_of_rotation: gauge("vanguard_upstream_ejected_endpoints", { service: service.name }) ??
          0,
      })),
      truncated: {
        routes: Math.max(0, table.routes.length - MAX_ROWS),
        services: Math.max(0, services.length - MAX_ROWS),
      },
    };
  }
}

function routeRow(
  route: RouteEntry,
  totals: RouteTotals | undefined,
  window: { rates?: Rates } | undefined,
): Record<string, unknown> {
  const backends = route.backends ??
    (route.serviceName ? [{ serviceName: route.serviceName, weight: 1 }] : []);
  const redirect = route.redirect;
  return {
    id: route.id,
    source: route.source,
    match: { kind: route.pathKind ?? "prefix", value: route.pathPrefix },
    hosts: route.hosts ?? null,
    methods: route.methods ?? null,
    conditions: (route.headers?.length ?? 0) + (route.query?.length ?? 0),
    backends: backends.map((backend) => ({
      service_name: backend.serviceName,
      weight: backend.weight,
      ...(backend.unresolved !== undefined ? { unresolved: backend.unresolved } : {}),
    })),
    redirect: redirect === undefined ? null : {
      status: redirect.status,
      to: [
        redirect.scheme ? `${redirect.scheme}://` : "",
        redirect.host ?? "",
        redirect.port !== undefined ? `:${redirect.port}` : "",
        redirect.path ?? redirect.pathPrefix ?? "",
      ].join("") || "(same URL)",
    },
    auth_required: route.authRequired,
    rate_limit: rateLimitBody(route),
    traffic: {
      // Rates are null until the window has two samples; absent rates there mean no requests.
      ...traffic(window === undefined ? undefined : window.rates ?? idle()),
      requests_total: totals?.requests ?? 0,
      rejected_total: totals?.rejected ?? 0,
    },
  };
}

function idle(): Rates {
  return { requestsPerSecond: 0, errorRatio: null, p99Seconds: null, rejectedPerSecond: 0 };
}

function traffic(rates: Rates | undefined): Record<string, number | null> {
  return {
    requests_per_second: round(rates?.requestsPerSecond),
    error_ratio: round(rates?.errorRatio),
    p99_seconds: round(rates?.p99Seconds),
    rejected_per_second: round(rates?.rejectedPerSecond),
  };
}

/** Six significant digits: what a person reads, without floating-point noise. */
function round(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value.toPrecision(6));
}

/** Every service of the table (once, though known by two names), and those routes name but it lacks. */
function serviceRows(
  routes: readonly RouteEntry[],
  services: ReadonlyMap<string, ServiceEntry>,
  health: EndpointHealth | undefined,
): ({ name: string } & Record<string, unknown>)[] {
  const rows: ({ name: string } & Record<string, unknown>)[] = [];
  for (const service of new Set(services.values())) {
    const serving = new Set(health?.usable(service.ready) ?? service.ready);
    rows.push({
      name: service.name,
      source: service.source,
      known: true,
      ready: service.ready.filter((e) => !e.terminating).length,
      endpoints: service.endpoints.map((endpoint) => ({
        url: endpoint.url,
        state: endpointState(endpoint, health),
        serving: serving.has(endpoint),
      })),
    });
  }
  const named = new Set(rows.map((row) => row.name));
  for (const route of routes) {
    const names = route.backends?.map((b) => b.serviceName) ??
      (route.serviceName ? [route.serviceName] : []);
    for (const name of names) {
      if (named.has(name) || services.has(name)) continue;
      named.add(name);
      rows.push({ name, source: null, known: false, ready: 0, endpoints: [] });
    }
  }
  return rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The state an endpoint is in, worst first. */
export function endpointState(endpoint: Endpoint, health?: EndpointHealth): EndpointState {
  if (health?.markedDown(endpoint.url)) return "unhealthy";
  if (health !== undefined && !health.available(endpoint.url)) return "ejected";
  if (endpoint.terminating) return "terminating";
  if (!endpoint.ready) return "not_ready";
  return "ready";
}

/**
 * Redis as the rate-limit checks of the window saw it: `ok` (all answered), `failing` (errors,
 * and none answered since the last one), `degraded` (some of each), `idle` (no check: a limit
 * needs traffic to ask Redis), `unknown` (one sample so far), `off` (not configured).
 */
function redisState(config: Config | undefined, rates: WindowRates): Record<string, unknown> {
  const redis = config?.redis;
  if (redis === undefined) return { configured: false, state: "off" };
  const checks = rates.redisChecksPerSecond;
  const errors = rates.redisErrorsPerSecond;
  const sinceError = rates.secondsSinceRedisError;
  const sinceCheck = rates.secondsSinceRedisCheck;
  const answeredSinceError = sinceCheck !== null && sinceError !== null && sinceCheck <= sinceError;
  const state = checks === null || errors === null
    ? "unknown"
    : errors > 0
    ? answeredSinceError ? "degraded" : "failing"
    : checks > 0
    ? "ok"
    : "idle";
  return {
    configured: true,
    target: redisTarget(redis as unknown as Record<string, unknown>),
    failure_mode: redis.failureMode,
    state,
    checks_per_second: checks,
    errors_per_second: errors,
    seconds_since_error: rates.secondsSinceRedisError,
  };
}

/** Where Redis is, without credentials. */
function redisTarget(redis: Record<string, unknown>): string {
  if (typeof redis.url === "string") {
    try {
      const url = new URL(redis.url);
      return `${url.hostname}:${url.port || "6379"}`;
    } catch {
      return "(unparsable URL)";
    }
  }
  if (typeof redis.urlEnv === "string") return `$${redis.urlEnv}`;
  const cluster = redis.cluster as { nodes?: unknown[] } | undefined;
  if (cluster !== undefined) return `cluster (${cluster.nodes?.length ?? 0} seed nodes)`;
  const sentinel = redis.sentinel as { name?: unknown } | undefined;
  if (sentinel !== undefined) return `sentinel master ${JSON.stringify(sentinel.name ?? "")}`;
  return "(configured)";
}

function sumOf(
  snapshots: readonly MetricsSnapshot[],
  name: string,
  labels: Record<string, string> = {},
): number {
  let total = 0;
  for (const snapshot of snapshots) {
    for (const series of snapshot[name] ?? []) {
      const matches = Object.entries(labels).every(([k, v]) => series.labels[k] === v);
      if (matches && typeof series.value === "number") total += series.value;
    }
  }
  return total;
}

const digests = new WeakMap<Config, string>();

/**
 * A short digest of the config in force: the same on every instance that runs the same
 * config, different after any change (12 hex digits of a SHA-256 of the parsed config).
 */
export function configDigest(config: Config): string {
  let digest = digests.get(config);
  if (digest === undefined) {
    const text = JSON.stringify(
      config,
      (_key, value) =>
        value instanceof Map
          ? [...value.entries()]
          : value instanceof Set
          ? [...value]
          : value instanceof RegExp
          ? String(value)
          : value,
    );
    digest = createHash("sha256").update(text).digest("hex").slice(0, 12);
    digests.set(config, digest);
  }
  return digest;
}

/** A route's rate limit as /routes and the dashboard show it; null without one. */
export function rateLimitBody(route: RouteEntry): Record<string, unknown> | null {
  return route.rateLimit
    ? {
      requests_per_period: route.rateLimit.requestsPerPeriod,
      period_seconds: route.rateLimit.periodSeconds,
      client_identifier: route.rateLimit.clientIdentifier,
    }
    : null;
}
