import ipaddr from "ipaddr.js";
import type { CidrSet } from "./cidr.ts";

/**
 * The address of the client behind any trusted proxies: X-Forwarded-For is
 * read right to left and the first hop that is not a trusted proxy is the
 * client. From an untrusted peer the header is ignored, since anyone can
 * write it. Hops are returned in their standard spelling, so `10.1` or
 * `0x0a.0.0.1` can never become a second name for one client.
 */
export function clientAddress(peer: string, trusted: CidrSet, forwardedFor: string | null): string {
  if (forwardedFor === null || trusted.empty || !trusted.contains(peer)) return peer;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = standard(hops[i].trim());
    if (hop === undefined) return peer;
    if (!trusted.contains(hop)) return hop;
  }
  return standard(hops[0].trim()) ?? peer;
}

function standard(address: string): string | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(address)) return ipaddr.IPv4.parse(address).toString();
  if (address.includes(":") && ipaddr.IPv6.isValid(address)) {
    return ipaddr.process(address).toString();
  }
  return undefined;
}
