import { directLink } from "../pipeline/compose.ts";
import type { Metrics } from "../admin/metrics.ts";
import { type Authenticator, AuthError } from "../auth/authenticator.ts";
import type { Middleware } from "../pipeline/types.ts";

/**
 * Authenticates requests on routes with `auth_required`. Other routes pass
 * untouched. A protected route never reaches the upstream without a valid
 * credential: with no method configured it answers 401 to everything.
 */
export function authenticate(deps: { authenticator: Authenticator; metrics: Metrics }): Middleware {
  const { authenticator, metrics } = deps;
  const strip = Object.fromEntries(authenticator.credentialHeaders.map((name) => [name, null]));

  return directLink(async function authenticate(ctx, rest) {
    const route = ctx.route;
    if (route === undefined || !route.authRequired) return rest(ctx);
    try {
      ctx.consumer = await authenticator.authenticate(ctx.request.headers);
    } catch (error) {
      if (error instanceof AuthError) {
        metrics.authRejected.inc({ route: route.id, reason: error.reason });
      }
      throw error;
    }
    if (!route.forwardCredentials) ctx.upstreamHeaders = { ...ctx.upstreamHeaders, ...strip };
    return rest(ctx);
  });
}
