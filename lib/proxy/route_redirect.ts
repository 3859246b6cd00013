/**
 * A route with `redirect`: it answers itself, with the request's URL with
 * the configured parts replaced (contract section 9), and sends nothing
 * upstream.
 */
import type { Handler, RequestContext } from "../pipeline/types.ts";
import { requestHost } from "../routing/match.ts";
import type { RouteEntry } from "../routing/table.ts";
import { encodePath, replacePrefix } from "./forwarding.ts";

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * The redirect of `route`. A part not configured is the request's: its
 * scheme, its host, its path and always its query. The port is the
 * configured one; else, when the scheme is configured, that scheme's
 * default; else the port of the listener the request came in on (as the
 * Gateway API says), or the one a trusted proxy forwarded. A default port
 * is left out of `Location`.
 */
export function routeRedirect(route: RouteEntry): Handler {
  const spec = route.redirect!;
  const path = spec.path === undefined ? undefined : encodePath(spec.path);
  const prefix = spec.pathPrefix === undefined ? undefined : encodePath(spec.pathPrefix);
  return function redirect(ctx) {
    const seen = requestOrigin(ctx);
    const scheme = spec.scheme ?? seen.scheme;
    const host = spec.host ?? requestHost(ctx.request.url) ?? "localhost";
    const port = spec.port ?? (spec.scheme !== undefined ? DEFAULT_PORT[scheme] : seen.port);
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

/**
 * The scheme and port the client used: this listener's, unless a trusted
 * proxy (`server.trusted_proxies`) says with X-Forwarded-Proto (and
 * X-Forwarded-Port, else the scheme's default) what the client reached it
 * by. Otherwise a redirect to https behind a TLS-terminating load balancer
 * would send the client back to where it came from, forever.
 */
function requestOrigin(ctx: RequestContext): { scheme: "http" | "https"; port: number } {
  const own = ctx.secure ? "https" : "http";
  if (!ctx.peerTrusted || ctx.secure) {
    return { scheme: own, port: ctx.listenerPort ?? DEFAULT_PORT[own] };
  }
  const proto = firstValue(ctx.request.headers.get("x-forwarded-proto"))?.toLowerCase();
  if (proto !== "http" && proto !== "https") {
    return { scheme: own, port: ctx.listenerPort ?? DEFAULT_PORT[own] };
  }
  const forwardedPort = firstValue(ctx.request.headers.get("x-forwarded-port"));
  const port = forwardedPort !== undefined && /^[0-9]{1,5}$/.test(forwardedPort) &&
      Number(forwardedPort) >= 1 && Number(forwardedPort) <= 65535
    ? Number(forwardedPort)
    : DEFAULT_PORT[proto];
  return { scheme: proto, port };
}

/** The first of a comma-separated header's values (the hop nearest the client), trimmed. */
function firstValue(value: string | null): string | undefined {
  if (value === null) return undefined;
  const first = value.split(",")[0].trim();
  return first === "" ? undefined : first;
}
