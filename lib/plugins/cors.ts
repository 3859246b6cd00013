import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { defaulted, INVALID, optional, reject, report, required } from "../config/schema.ts";
import { items, orDefault, plain, pluginOptions } from "../config/plugin_options.ts";
import { type MiddlewarePlugin, schemaPlugin } from "./api.ts";

const DEFAULT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const ORIGINS_REQUIRED = 'is required (a list of origins, or ["*"])';

function nonEmptyString(value: unknown): string {
  if (typeof value === "string" && value !== "") return value;
  return reject("must be a list of non-empty strings");
}

function origin(value: unknown): string {
  const origin = nonEmptyString(value);
  if (origin === "*" || /^https?:\/\/[^/]+$/.test(origin)) return origin;
  return reject(`"${origin}" must be "*" or an origin like https://app.example`);
}

const strings = items("must be a list of non-empty strings", nonEmptyString);

const options = pluginOptions({
  allow_origins: required(
    function checkOrigins(node, path, walk) {
      const list = strings(node, path, walk);
      if (list === INVALID) return list;
      if (list.length === 0) {
        report(walk, { node, field: path, message: ORIGINS_REQUIRED });
        return INVALID;
      }
      return items("must be a list of non-empty strings", origin)(node, path, walk);
    },
    ORIGINS_REQUIRED,
  ),
  allow_methods: defaulted(
    items("must be a list of non-empty strings", (value) => nonEmptyString(value).toUpperCase()),
    DEFAULT_METHODS,
  ),
  allow_headers: optional(strings),
  expose_headers: defaulted(strings, []),
  allow_credentials: orDefault(
    plain((value) => typeof value === "boolean" ? value : reject("must be true or false")),
    false,
  ),
  max_age_seconds: orDefault(
    plain((value) =>
      typeof value === "number" && Number.isInteger(value) && value >= 0
        ? value
        : reject("must be a whole number >= 0")
    ),
    600,
  ),
}, {
  refine(parsed, refiner) {
    if (parsed.allowCredentials && parsed.allowOrigins.includes("*")) {
      refiner.problem(
        "allow_credentials",
        'cannot be true with allow_origins "*" (browsers refuse it)',
      );
    }
  },
});

/**
 * `cors`: answers preflight requests at the gateway (they never reach the
 * upstream, and need no credentials) and adds the CORS headers to
 * responses for allowed origins. It runs before authentication, since a
 * browser sends preflights without credentials.
 */
export const cors: MiddlewarePlugin = schemaPlugin({
  name: "cors",
  phase: "before_auth",
  options,
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
