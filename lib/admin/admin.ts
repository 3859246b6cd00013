import type { TableView } from "../snapshot/switch.ts";
import type { Metrics, MetricsSnapshot } from "./metrics.ts";
import type { RouteEntry } from "../routing/table.ts";
import type { HeaderChanges } from "../config/types.ts";

/** What the admin endpoints report on. */
export interface AdminDeps {
  readonly metrics: Metrics;
  readonly routing: TableView;
  /** True once the gateway can serve (config loaded, initial discovery sync done). */
  readonly isReady: () => boolean;
  /** True from the first shutdown signal until exit. */
  readonly isDraining: () => boolean;
  /**
   * The worker threads' metrics (server.workers above 1), merged into
   * `metrics` for /metrics; it must settle quickly whatever the workers do.
   */
  readonly gather?: () => Promise<readonly MetricsSnapshot[]>;
  /** Worker threads serving and configured, shown by /readyz (server.workers above 1). */
  readonly workers?: () => { serving: number; configured: number };
}

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

/** The admin listener's handler: /healthz, /readyz, /metrics, /routes. */
export function adminHandler(
  deps: AdminDeps,
): (request: Request) => Response | Promise<Response> {
  return function admin(request: Request): Response | Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: "method_not_allowed", message: "Use GET" }, { allow: "GET, HEAD" });
    }
    switch (path) {
      case "/healthz":
        return json(200, { status: "ok" });
      case "/readyz": {
        const workers = deps.workers?.();
        const extra = workers === undefined ? {} : { workers };
        if (deps.isDraining()) return json(503, { status: "draining", ...extra });
        // Not ready yet, or (with workers) none is serving: `workers` tells which.
        if (!deps.isReady()) return json(503, { status: "starting", ...extra });
        return json(200, { status: "ready", ...extra });
      }
      case "/metrics": {
        if (deps.gather === undefined) return exposition(deps.metrics.render());
        return deps.gather().then(
          (others) => exposition(deps.metrics.render(others)),
          () => exposition(deps.metrics.render()),
        );
      }
      case "/routes":
        return json(200, routesBody(deps.routing));
      default:
        return json(404, { error: "not_found", message: `No admin endpoint at ${path}` });
    }
  };
}

function routesBody(routing: TableView): unknown {
  const table = routing.current;
  return {
    version: table.version,
    routes: table.routes.map((route) => {
      const service = table.service(route.serviceName);
      return {
        id: route.id,
        hosts: route.hosts ?? null,
        match: { kind: route.pathKind ?? "prefix", value: route.pathPrefix },
        path_prefix: route.pathKind === undefined ? route.pathPrefix : null,
        methods: route.methods ?? null,
        headers: route.headers ?? null,
        query: route.query ?? null,
        service_name: route.serviceName || null,
        backends: (route.backends ??
          (route.serviceName ? [{ serviceName: route.serviceName, weight: 1 }] : []))
          .map((backend) => ({
            service_name: backend.serviceName,
            weight: backend.weight,
            ready_endpoints: table.service(backend.serviceName)?.ready.length ?? 0,
            ...(backend.unresolved !== undefined ? { unresolved: backend.unresolved } : {}),
          })),
        sticky: route.sticky ?? null,
        filters: routeFilters(route),
        source: route.source,
        auth_required: route.authRequired,
        strip_prefix: route.stripPrefix,
        rate_limit: route.rateLimit
          ? {
            requests_per_period: route.rateLimit.requestsPerPeriod,
            period_seconds: route.rateLimit.periodSeconds,
            client_identifier: route.rateLimit.clientIdentifier,
          }
          : null,
        service_source: service?.source ?? null,
        endpoints: (service?.endpoints ?? []).map((e) =>
          e.terminating
            ? {
              url: e.url,
              ready: e.ready,
              terminating: true,
              // not ready, but getting traffic because no endpoint of the service is
              serving: service!.ready.includes(e),
            }
            : { url: e.url, ready: e.ready }
        ),
      };
    }),
  };
}

/** A route's filters, in the config's own key names; null when it has none. */
function routeFilters(route: RouteEntry): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  const redirect = route.redirect;
  if (redirect !== undefined) {
    out.redirect = {
      scheme: redirect.scheme ?? null,
      host: redirect.host ?? null,
      port: redirect.port ?? null,
      path: redirect.path ?? null,
      path_prefix: redirect.pathPrefix ?? null,
      status: redirect.status,
    };
  }
  if (route.rewrite !== undefined) {
    out.rewrite = {
      host: route.rewrite.host ?? null,
      path: route.rewrite.path ?? null,
      path_prefix: route.rewrite.pathPrefix ?? null,
    };
  }
  if (route.mirror !== undefined) {
    out.mirror = { service_name: route.mirror.serviceName, percent: route.mirror.percent };
  }
  const changes = (c: HeaderChanges) => ({
    set: Object.fromEntries(c.set),
    add: Object.fromEntries(c.add),
    remove: c.remove,
  });
  if (route.requestHeaders !== undefined) out.request_headers = changes(route.requestHeaders);
  if (route.responseHeaders !== undefined) out.response_headers = changes(route.responseHeaders);
  if (route.timeoutMs !== undefined) out.timeout_ms = route.timeoutMs;
  if (route.preserveHost) out.preserve_host = true;
  return Object.keys(out).length === 0 ? null : out;
}

function exposition(text: string): Response {
  return new Response(text, {
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
  });
}

function json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...extra } });
}
