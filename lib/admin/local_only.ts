/**
 * The admin listener's defence against DNS rebinding. A web page on
 * `attacker.example` can have the visitor's browser resolve that name to
 * 127.0.0.1 and then read what a service on the loopback interface answers:
 * the browser thinks it talks to attacker.example and sends that as Host.
 * An admin listener bound to loopback without a token (the default) is
 * protected by nothing else, so it answers only requests addressed to a
 * loopback name: `localhost` (or a `*.localhost` name, RFC 6761) or a
 * loopback IP literal. Other clients on the machine use those anyway; one
 * that needs another name sets `server.admin_token_env`.
 *
 * @module
 */
import { CidrSet } from "../net/cidr.ts";

const LOOPBACK = new CidrSet(["127.0.0.0/8", "::1/128"]);

/** Whether `hostname` (a URL's hostname, or a listen address) names this machine's loopback. */
export function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  return name === "localhost" || name.endsWith(".localhost") || LOOPBACK.contains(name);
}
