import ipaddr from "ipaddr.js";
import { CidrSet } from "../net/cidr.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { type MiddlewarePlugin, optionsObject, parsedPlugin, unknownKeys } from "./api.ts";

function parse(options: unknown): { allow: string[]; deny: string[] } | string[] {
  const o = optionsObject(options);
  if (typeof o === "string") return [o];
  const problems = unknownKeys(o, ["allow", "deny"]);
  const cidrs = (key: "allow" | "deny"): string[] => {
    const value = o[key] ?? [];
    if (!Array.isArray(value)) {
      problems.push(`${key}: must be a list of CIDRs`);
      return [];
    }
    for (const cidr of value) {
      const valid = typeof cidr === "string" &&
        (cidr.includes("/") ? ipaddr.isValidCIDR(cidr) : ipaddr.isValid(cidr));
      if (!valid) problems.push(`${key}: ${JSON.stringify(cidr)} is not a CIDR or address`);
    }
    return value as string[];
  };
  const allow = cidrs("allow");
  const deny = cidrs("deny");
  if (allow.length === 0 && deny.length === 0 && problems.length === 0) {
    problems.push("allow or deny: give at least one");
  }
  return problems.length > 0 ? problems : { allow, deny };
}

/**
 * `ip_filter`: refuses clients by address with 403. The address is the
 * client's as the gateway determined it (X-Forwarded-For is believed only
 * from `server.trusted_proxies`). Deny wins over allow; with an allow list,
 * everything not on it is refused.
 */
export const ipFilter: MiddlewarePlugin = parsedPlugin({
  name: "ip_filter",
  phase: "before_auth",
  parse,
  build(parsed) {
    const allow = new CidrSet(parsed.allow);
    const deny = new CidrSet(parsed.deny);
    const middleware: Middleware = function ipFilter(ctx, next) {
      const address = ctx.clientAddress;
      if (deny.contains(address) || (!allow.empty && !allow.contains(address))) {
        return Promise.reject(
          new GatewayError(403, "forbidden", "Requests from this address are not allowed"),
        );
      }
      return next();
    };
    return middleware;
  },
});
