/**
 * The request chain, declared once: the links every request passes, then
 * each route's own chain, composed once per snapshot so that routing picks
 * the route's handler and nothing is looked up by route id per request.
 */
import type { Metrics } from "../admin/metrics.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Logger } from "../log/logger.ts";
import { authenticate } from "../middleware/auth.ts";
import { recovery } from "../middleware/error_boundary.ts";
import { observe } from "../middleware/observe.ts";
import { rateLimit, type RateLimitBackend } from "../middleware/rate_limit.ts";
import { matchRoute } from "../middleware/route.ts";
import { compose } from "../pipeline/compose.ts";
import type { Handler, Middleware } from "../pipeline/types.ts";
import type { PhasedMiddleware } from "../plugins/registry.ts";
import type { RouteEntry, RoutingTable } from "../routing/table.ts";
import { refuseBadTarget } from "./request_target.ts";
import { requestHeaderChanges, responseHeaderChanges } from "../plugins/headers.ts";
import { routeRedirect } from "../proxy/route_redirect.ts";

/** What the chain is made of, for one config. */
export interface ChainParts {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly accessLog: boolean;
  /** The share of requests whose access log line is written (1: all). */
  readonly accessLogSample?: number;
  readonly authenticator: Authenticator;
  readonly limiter: RateLimitBackend;
  /** Names spans after routes and traces the upstream call (only with OTEL_DENO=true). */
  readonly tracing?: Middleware;
  /** The config middleware of a route (the global ones, then its own), by phase. */
  readonly middlewareFor: (route: RouteEntry) => PhasedMiddleware;
  /** Programmatic middleware, last before the proxy. */
  readonly extra: readonly Middleware[];
}

/**
 * Declares the chain, in order; this is the one place that says what runs
 * before what. Returns what compiles the handler for one routing table:
 * each route's chain ends in the terminal made for that route on that
 * table (the proxy, with its service and settings resolved).
 */
export function chainFor(
  parts: ChainParts,
  terminalFor: (route: RouteEntry, table: RoutingTable) => Handler,
): (table: RoutingTable) => Handler {
  const front: Middleware[] = [
    // The outermost link, with the error boundary inside it (one async frame for both):
    // everything below that throws is answered as an error response, logged and counted.
    observe({ ...parts, recover: recovery(parts) }),
    refuseBadTarget(),
    matchRoute(),
    ...(parts.tracing ? [parts.tracing] : []),
  ];
  const auth = authenticate(parts);
  const limit = rateLimit(parts);
  return function handlerFor(table: RoutingTable): Handler {
    const chains = new Map<RouteEntry, Handler>();
    for (const route of table.routes) {
      const own = parts.middlewareFor(route);
      chains.set(
        route,
        compose([
          // Config middleware of phase before_auth: a CORS preflight carries no
          // credentials, and an address filter should refuse before any work.
          ...own.beforeAuth,
          ...(route.authRequired ? [auth] : []),
          ...(route.rateLimit ? [limit] : []),
          ...own.afterAuth,
          ...routeFilters(route),
          ...parts.extra,
        ], route.redirect !== undefined ? routeRedirect(route) : terminalFor(route, table)),
      );
    }
    return compose(front, function routeChain(ctx) {
      // matchRoute set ctx.route from this very table, so its chain is here.
      return chains.get(ctx.route!)!(ctx);
    });
  };
}

/** The header changes a route declares as its own keys (after its config middleware). */
function routeFilters(route: RouteEntry): Middleware[] {
  const out: Middleware[] = [];
  if (route.responseHeaders !== undefined) out.push(responseHeaderChanges(route.responseHeaders));
  if (route.requestHeaders !== undefined) out.push(requestHeaderChanges(route.requestHeaders));
  return out;
}
