import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { canonicalizePath, isRejection } from "../routing/path.ts";

/**
 * Decodes and normalizes the path once, then finds the route on the pinned
 * table. Everything after this link (auth, limits, the proxy) reads
 * `ctx.path` / `ctx.encodedPath`, never the raw URL, so no two links can
 * disagree on which path they saw.
 */
export function matchRoute(): Middleware {
  return function matchRoute(ctx, next) {
    const canonical = canonicalizePath(ctx.rawPath);
    if (isRejection(canonical)) {
      return Promise.reject(new GatewayError(400, "bad_request", canonical.rejected));
    }
    ctx.path = canonical.path;
    ctx.encodedPath = canonical.encoded;
    const route = ctx.table.match(canonical.path);
    if (route === undefined) {
      return Promise.reject(new GatewayError(404, "route_not_found", "No route matches this path"));
    }
    ctx.route = route;
    return next();
  };
}
