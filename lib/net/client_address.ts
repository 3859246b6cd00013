import ipaddr from "ipaddr.js";
import type { CidrSet } from "./cidr.ts";

/**
 * The address of the client behind any trusted proxies: X-Forwarded-For is
 * read right to left and the first hop that is not a trusted proxy is the
 * client. From an untrusted peer the header is ignored, since anyone can
 * write it.
 */
export function clientAddress(peer: string, trusted: CidrSet, forwardedFor: string | null): string {
  if (forwardedFor === null || trusted.empty || !trusted.contains(peer)) return peer;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i].trim();
    if (!ipaddr.isValid(hop)) return peer;
    if (!trusted.contains(hop)) return hop;
  }
  const first = hops[0].trim();
  return ipaddr.isValid(first) ? first : peer;
}
