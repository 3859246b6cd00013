import { directLink } from "../pipeline/compose.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { requestHost } from "../routing/match.ts";
import { canonicalizePath, isRejection } from "../routing/path.ts";

/**
 * Decodes and normalizes the path once, then finds the route on the pinned
 * table. Everything after this link (auth, limits, the proxy) reads
 * `ctx.path` / `ctx.encodedPath`, never the raw URL, so no two links can
 * disagree on which path they saw. When some route matches on hosts,
 * methods, headers or query, the table gets those from the request too; the
 * host is the authority of `request.url` (see requestHost()).
 */
export function matchRoute(): Middleware {
  return directLink(function matchRoute(ctx, rest) {
    const canonical = canonicalizePath(ctx.rawPath);
    if (isRejection(canonical)) {
      return Promise.reject(new GatewayError(400, "bad_request", canonical.rejected));
    }
    ctx.path = canonical.path;
    ctx.encodedPath = canonical.encoded;
    const table = ctx.table;
    // A table of plain prefixes needs nothing but the path: no host parsing, no allocation.
    const route = table.conditional
      ? table.match(canonical.path, {
        host: requestHost(ctx.request.url),
        method: ctx.request.method,
        headers: ctx.request.headers,
        query: ctx.query,
      })
      : table.match(canonical.path);
    if (route === undefined) {
      return Promise.reject(new GatewayError(404, "route_not_found", "No route matches this path"));
    }
    ctx.route = route;
    return rest(ctx);
  });
}
