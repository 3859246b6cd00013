import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { type MiddlewarePlugin, optionsObject, parsedPlugin, unknownKeys } from "./api.ts";

interface CorsOptions {
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders?: string[];
  exposeHeaders: string[];
  allowCredentials: boolean;
  maxAgeSeconds: number;
}

const KEYS = [
  "allow_origins",
  "allow_methods",
  "allow_headers",
  "expose_headers",
  "allow_credentials",
  "max_age_seconds",
];

function parse(options: unknown): CorsOptions | string[] {
  const o = optionsObject(options);
  if (typeof o === "string") return [o];
  const problems = unknownKeys(o, KEYS);
  const list = (key: string, fallback?: string[]): string[] | undefined => {
    const value = o[key];
    if (value === undefined) return fallback;
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v !== "")) {
      problems.push(`${key}: must be a list of non-empty strings`);
      return fallback;
    }
    return value as string[];
  };
  const allowOrigins = list("allow_origins");
  if (allowOrigins === undefined || allowOrigins.length === 0) {
    problems.push('allow_origins: is required (a list of origins, or ["*"])');
  }
  for (const origin of allowOrigins ?? []) {
    if (origin !== "*" && !/^https?:\/\/[^/]+$/.test(origin)) {
      problems.push(`allow_origins: "${origin}" must be "*" or an origin like https://app.example`);
    }
  }
  const allowCredentials = o.allow_credentials ?? false;
  if (typeof allowCredentials !== "boolean") {
    problems.push("allow_credentials: must be true or false");
  }
  if (allowCredentials === true && allowOrigins?.includes("*")) {
    problems.push('allow_credentials: cannot be true with allow_origins "*" (browsers refuse it)');
  }
  const maxAge = o.max_age_seconds ?? 600;
  if (typeof maxAge !== "number" || !Number.isInteger(maxAge) || maxAge < 0) {
    problems.push("max_age_seconds: must be a whole number >= 0");
  }
  const result = {
    allowOrigins: allowOrigins ?? [],
    allowMethods: (list("allow_methods", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]) ?? [])
      .map((m) => m.toUpperCase()),
    allowHeaders: list("allow_headers"),
    exposeHeaders: list("expose_headers", []) ?? [],
    allowCredentials: allowCredentials === true,
    maxAgeSeconds: typeof maxAge === "number" ? maxAge : 600,
  };
  return problems.length > 0 ? problems : result;
}

/**
 * `cors`: answers preflight requests at the gateway (they never reach the
 * upstream, and need no credentials) and adds the CORS headers to
 * responses for allowed origins. It runs before authentication, since a
 * browser sends preflights without credentials.
 */
export const cors: MiddlewarePlugin = parsedPlugin({
  name: "cors",
  phase: "before_auth",
  parse,
  build(parsed) {
    const any = parsed.allowOrigins.includes("*");
    const allowed = new Set(parsed.allowOrigins);
    const methods = parsed.allowMethods.join(", ");
    const expose = parsed.exposeHeaders.join(", ");

    const middleware: Middleware = async function cors(ctx, next) {
      const origin = ctx.request.headers.get("origin");
      if (origin === null) return await next();
      const permitted = any || allowed.has(origin);
      const preflight = ctx.request.method === "OPTIONS" &&
        ctx.request.headers.has("access-control-request-method");
      if (preflight) {
        if (!permitted) {
          throw new GatewayError(403, "cors_origin_not_allowed", `Origin ${origin} is not allowed`);
        }
        const headers = new Headers({
          "access-control-allow-origin": any && !parsed.allowCredentials ? "*" : origin,
          "access-control-allow-methods": methods,
          "access-control-max-age": String(parsed.maxAgeSeconds),
          "vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
          "x-request-id": ctx.requestId,
        });
        const requested = ctx.request.headers.get("access-control-request-headers");
        const allowHeaders = parsed.allowHeaders?.join(", ") ?? requested;
        if (allowHeaders) headers.set("access-control-allow-headers", allowHeaders);
        if (parsed.allowCredentials) headers.set("access-control-allow-credentials", "true");
        return new Response(null, { status: 204, headers });
      }
      if (!permitted) return await next();
      const added: [string, string][] = [
        ["access-control-allow-origin", any && !parsed.allowCredentials ? "*" : origin],
        ["vary", "Origin"],
      ];
      if (expose) added.push(["access-control-expose-headers", expose]);
      if (parsed.allowCredentials) added.push(["access-control-allow-credentials", "true"]);
      // Error answers (a 401, a 429) need them too, or the browser hides them from the page.
      ctx.responseHeaders = [...(ctx.responseHeaders ?? []), ...added];
      const response = await next();
      if (response.status !== 101) {
        for (const [name, value] of added) {
          if (name === "vary") response.headers.append(name, value);
          else response.headers.set(name, value);
        }
      }
      return response;
    };
    return middleware;
  },
});
