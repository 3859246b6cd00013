/**
 * A route with `redirect`: it answers itself, with the request's URL with
 * the configured parts replaced (contract section 9), and sends nothing
 * upstream.
 */
import type { Handler } from "../pipeline/types.ts";
import { requestHost } from "../routing/match.ts";
import type { RouteEntry } from "../routing/table.ts";
import { encodePath, replacePrefix } from "./forwarding.ts";

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * The redirect of `route`. A part not configured is the request's: its
 * scheme, its host, its path and always its query. The port is the
 * configured one; else, when the scheme is configured, that scheme's
 * default; else the port of the listener the request came in on (as the
 * Gateway API says). A default port is left out of `Location`.
 */
export function routeRedirect(route: RouteEntry): Handler {
  const spec = route.redirect!;
  const path = spec.path === undefined ? undefined : encodePath(spec.path);
  const prefix = spec.pathPrefix === undefined ? undefined : encodePath(spec.pathPrefix);
  return function redirect(ctx) {
    const scheme = spec.scheme ?? (ctx.secure ? "https" : "http");
    const host = spec.host ?? requestHost(ctx.request.url) ?? "localhost";
    const port = spec.port ??
      (spec.scheme !== undefined ? DEFAULT_PORT[scheme] : ctx.listenerPort ?? DEFAULT_PORT[scheme]);
    const authority = port === DEFAULT_PORT[scheme] ? host : `${host}:${port}`;
    const target = path ??
      (prefix === undefined
        ? ctx.encodedPath
        : replacePrefix(ctx.encodedPath, route.prefixSegments, prefix));
    return Promise.resolve(
      new Response(null, {
        status: spec.status,
        headers: {
          location: `${scheme}://${authority}${target}${ctx.query}`,
          "content-length": "0",
        },
      }),
    );
  };
}
