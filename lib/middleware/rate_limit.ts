import { directLink } from "../pipeline/compose.ts";
import type { Metrics } from "../admin/metrics.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware, RequestContext } from "../pipeline/types.ts";
import type { FailoverDecision } from "../ratelimit/failover.ts";
import { bucketId, type LimitRequest } from "../ratelimit/limiter.ts";
import type { RouteEntry } from "../routing/table.ts";

/** Anything that can decide: the failover limiter, or a plain limiter in tests. */
export interface RateLimitBackend {
  check(request: LimitRequest): Promise<FailoverDecision>;
}

/**
 * Applies a route's `rate_limit` per client after authentication, and adds
 * the RateLimit-Policy / RateLimit headers (draft-ietf-httpapi-ratelimit-headers)
 * to every response of a limited route.
 */
export function rateLimit(deps: { limiter: RateLimitBackend; metrics: Metrics }): Middleware {
  const { limiter, metrics } = deps;
  const policies = new WeakMap<RouteEntry, string>();

  return directLink(async function rateLimit(ctx, rest) {
    const route = ctx.route;
    const policy = route?.rateLimit;
    if (route === undefined || policy === undefined) return rest(ctx);
    let policyHeader = policies.get(route);
    if (policyHeader === undefined) {
      policyHeader = `"${route.id}";q=${policy.requestsPerPeriod};w=${policy.periodSeconds}`;
      policies.set(route, policyHeader);
    }
    const decision = await limiter.check({
      key: bucketId(route.id, clientIdentity(ctx, policy.clientIdentifier)),
      limit: policy.requestsPerPeriod,
      windowMs: policy.periodSeconds * 1000,
    });
    if (decision === "refuse") {
      throw new GatewayError(
        503,
        "rate_limiter_unavailable",
        "The rate limiter is unavailable and this gateway is configured to refuse (failure_mode: closed)",
        { headers: { "ratelimit-policy": policyHeader, "retry-after": "1" } },
      );
    }
    const headers: Record<string, string> = { "ratelimit-policy": policyHeader };
    if (decision !== "admit") {
      const seconds = Math.ceil(decision.resetMs / 1000);
      headers["ratelimit"] = `"${route.id}";r=${decision.remaining};t=${seconds}`;
      if (!decision.allowed) {
        metrics.rateLimitRejected.inc({ route: route.id });
        throw new GatewayError(
          429,
          "rate_limited",
          `Rate limit of ${policy.requestsPerPeriod} requests per ${policy.periodSeconds} s exceeded`,
          { headers: { ...headers, "retry-after": String(Math.max(1, seconds)) } },
        );
      }
    }
    metrics.rateLimitAdmitted.inc({ route: route.id });
    const response = await rest(ctx);
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
    return response;
  });
}

/**
 * The identifier of routes made from Service annotations: the authenticated
 * consumer, else the client address. (Not writable in config: a header name
 * cannot contain "@".)
 */
export const CONSUMER_IDENTIFIER = "@consumer";

/**
 * Who a request counts against: the named header's value, else (header
 * absent, or `IP`) the client address. The kinds are kept apart by a
 * prefix, so a header value cannot impersonate an address bucket.
 */
export function clientIdentity(ctx: RequestContext, identifier: string): string {
  if (identifier === CONSUMER_IDENTIFIER) {
    return ctx.consumer !== undefined ? `c:${ctx.consumer}` : `ip:${ctx.clientAddress}`;
  }
  if (identifier.toUpperCase() !== "IP") {
    const value = ctx.request.headers.get(identifier);
    if (value !== null && value.trim() !== "") return `h:${value}`;
  }
  return `ip:${ctx.clientAddress}`;
}
