import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";

/**
 * The authentication slot. Until an auth method is implemented, a route
 * that asks for auth answers 401: the gateway fails closed rather than
 * forwarding a request it was told to protect.
 */
export function requireAuth(): Middleware {
  return function requireAuth(ctx, next) {
    if (!ctx.route?.authRequired) return next();
    return Promise.reject(
      new GatewayError(401, "unauthorized", "This route requires authentication", {
        headers: { "www-authenticate": 'Bearer realm="vanguard"' },
      }),
    );
  };
}
