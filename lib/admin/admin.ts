import type { TableView } from "../snapshot/switch.ts";
import type { RouteEntry } from "../routing/table.ts";
import type { HeaderChanges } from "../config/types.ts";
import type { AdminDeps } from "./admin_deps.ts";
import { AdminAuth, clearedSessionCookie, type Credential } from "./admin_auth.ts";
import { isLoopbackName } from "./local_only.ts";
import { DashboardData, rateLimitBody } from "./dashboard_data.ts";
import { DASHBOARD_HTML, loginHtml } from "./dashboard/page_html.ts";
import { DASHBOARD_JS } from "./dashboard/page_script.ts";
import { DASHBOARD_CSS } from "./dashboard/page_style.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/**
 * Sent with every admin answer. The dashboard loads only its own script, stylesheet and data:
 * no inline code, no other origin, no framing.
 */
export const ADMIN_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
  "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";

const SECURITY_HEADERS = {
  "content-security-policy": ADMIN_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};
const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
/** The paths that need no token: the kubelet's probes cannot send one; the sign-in page needs its style. */
const OPEN_PATHS = new Set(["/healthz", "/readyz", "/dashboard/app.css", "/dashboard/login"]);
const PAGE_PATHS = new Set(["/", "/dashboard", "/dashboard/"]);

/**
 * The admin listener's handler: /healthz, /readyz, /metrics, /routes, and the dashboard (`/`,
 * `/dashboard`, its script, stylesheet and `/dashboard/data`). With a token (`deps.token`) every
 * path but the probes asks for it; see admin_auth.ts.
 */
export function adminHandler(
  deps: AdminDeps,
): (request: Request) => Response | Promise<Response> {
  const auth = deps.token === undefined ? undefined : new AdminAuth(deps.token);
  const dashboard = new DashboardData(deps);
  // A failed gather reuses the workers' last numbers: dropping them would read as a reset.
  let lastOthers: readonly MetricsSnapshot[] = [];
  const dashboardData = (): Response | Promise<Response> => {
    if (deps.gather === undefined) return json(200, dashboard.build());
    return deps.gather().then(
      (others) => json(200, dashboard.build(lastOthers = others)),
      () => json(200, dashboard.build(lastOthers)),
    );
  };
  return function admin(request: Request): Response | Promise<Response> {
    const url = new URL(request.url);
    if (deps.localOnly === true && !isLoopbackName(url.hostname)) return misdirected();
    const path = url.pathname;
    if (request.method === "POST" && path === "/dashboard/login") return login(request, auth);
    if (request.method === "POST" && path === "/dashboard/logout") {
      return seeOther("/dashboard", { "set-cookie": clearedSessionCookie() });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: "method_not_allowed", message: "Use GET" }, { allow: "GET, HEAD" });
    }
    // The session cookie is scoped to /dashboard: signing in starts there.
    if (auth !== undefined && path === "/") return seeOther("/dashboard");
    if (auth !== undefined && !OPEN_PATHS.has(path)) {
      const credential = auth.credential(request);
      if (credential !== "valid") return denied(credential, PAGE_PATHS.has(path));
    }
    if (PAGE_PATHS.has(path)) return asset(DASHBOARD_HTML, "text/html; charset=utf-8");
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
      case "/dashboard/data":
        return dashboardData();
      case "/dashboard/app.js":
        return asset(DASHBOARD_JS, "text/javascript; charset=utf-8");
      case "/dashboard/app.css":
        return asset(DASHBOARD_CSS, "text/css; charset=utf-8");
      case "/dashboard/login":
        // Without a token there is nothing to sign in to.
        return auth === undefined || auth.credential(request) === "valid"
          ? seeOther("/dashboard")
          : html(200, loginHtml(false));
      default:
        return json(404, { error: "not_found", message: `No admin endpoint at ${path}` });
    }
  };
}

/** POST /dashboard/login: the form's token right, a session cookie; wrong, the form again. */
async function login(request: Request, auth: AdminAuth | undefined): Promise<Response> {
  if (auth === undefined) return seeOther("/dashboard");
  const token = await auth.formToken(request);
  if (token === undefined || !auth.tokenMatches(token)) {
    return html(401, loginHtml(true), { "www-authenticate": challenge("invalid") });
  }
  return seeOther("/dashboard", { "set-cookie": auth.sessionCookie() });
}

/** 401: the sign-in page for the dashboard's own URLs, JSON for everything else. */
function denied(credential: Exclude<Credential, "valid">, page: boolean): Response {
  const headers = { "www-authenticate": challenge(credential) };
  if (page) return html(401, loginHtml(false), headers);
  return json(401, {
    error: "unauthorized",
    message: credential === "missing"
      ? "The admin listener needs its token: send Authorization: Bearer <token> " +
        "(the value of the variable server.admin_token_env names)"
      : "The admin token sent is not valid",
  }, headers);
}

/** 421 (RFC 9110 15.5.20): a token-less loopback listener asked for by another name. */
function misdirected(): Response {
  return json(421, {
    error: "misdirected_request",
    message: "This admin listener has no token and answers only requests addressed to " +
      "localhost or a loopback address (a web page must not reach it through a DNS name " +
      "that points here): use http://127.0.0.1:<admin_port>, or set server.admin_token_env",
  });
}

/** RFC 6750 section 3: the scheme, and `invalid_token` when a wrong one came. */
function challenge(credential: Exclude<Credential, "valid">): string {
  return credential === "invalid"
    ? 'Bearer realm="vanguard-admin", error="invalid_token"'
    : 'Bearer realm="vanguard-admin"';
}

function seeOther(location: string, extra: Record<string, string> = {}): Response {
  return new Response(null, {
    status: 303,
    headers: { ...SECURITY_HEADERS, location, "cache-control": "no-store", ...extra },
  });
}

function asset(body: string, type: string): Response {
  return new Response(body, {
    headers: { ...SECURITY_HEADERS, "content-type": type, "cache-control": "no-cache" },
  });
}

function html(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      ...extra,
    },
  });
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
        rate_limit: rateLimitBody(route),
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
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; version=0.0.4; charset=utf-8" },
  });
}

function json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...SECURITY_HEADERS, ...JSON_HEADERS, ...extra },
  });
}
