import ipaddr from "ipaddr.js";
import { CidrSet } from "../net/cidr.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { reject } from "../config/schema.ts";
import { items, orDefault, pluginOptions } from "../config/plugin_options.ts";
import { type MiddlewarePlugin, schemaPlugin } from "./api.ts";

function address(value: unknown): string {
  const valid = typeof value === "string" &&
    (value.includes("/") ? ipaddr.isValidCIDR(value) : ipaddr.isValid(value));
  return valid ? value as string : reject(`${JSON.stringify(value)} is not a CIDR or address`);
}

const addresses = items("must be a list of CIDRs", address);

const options = pluginOptions({
  allow: orDefault(addresses, []),
  deny: orDefault(addresses, []),
}, {
  refine({ allow, deny }, refiner) {
    if (allow.length === 0 && deny.length === 0) {
      refiner.mappingProblem("allow or deny: give at least one");
    }
  },
});

/**
 * `ip_filter`: refuses clients by address with 403. The address is the
 * client's as the gateway determined it (X-Forwarded-For is believed only
 * from `server.trusted_proxies`). Deny wins over allow; with an allow list,
 * everything not on it is refused.
 */
export const ipFilter: MiddlewarePlugin = schemaPlugin({
  name: "ip_filter",
  phase: "before_auth",
  options,
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
