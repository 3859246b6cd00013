/**
 * Header hygiene shared by both directions of the proxy (RFC 9110 7.6.1):
 * hop-by-hop headers describe one connection and must not be forwarded.
 */

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** The lengths of the names in HOP_BY_HOP: a name of another length is not one of them. */
export const HOP_BY_HOP_LENGTHS: ReadonlySet<number> = new Set(
  [...HOP_BY_HOP].map((n) => n.length),
);

/** The header names a `Connection` value lists, lower-cased; empty when there are none. */
export function connectionNamed(connection: string | null | undefined): ReadonlySet<string> {
  if (!connection) return NONE;
  const named = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    if (name) named.add(name);
  }
  return named;
}

const NONE: ReadonlySet<string> = new Set();

/** True for a lower-cased header name that is never forwarded. */
export function isHopByHop(name: string, named: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-") || (named.size > 0 && named.has(name));
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The client's request id when sane, else a fresh one. */
export function requestIdFor(clientValue: string | null): string {
  return clientValue !== null && REQUEST_ID.test(clientValue) ? clientValue : crypto.randomUUID();
}
