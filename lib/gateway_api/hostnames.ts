/**
 * Hostname intersection between a listener and a route (Gateway API,
 * concepts/hostnames): which names a route attached to a listener answers
 * for. A wildcard `*.example.com` stands for one or more labels before
 * `example.com` (never `example.com` itself), as in Vanguard's routing.
 *
 * @module
 */

/** Any host: a listener without `hostname`, or a route without `hostnames`, on both sides. */
export const ANY_HOST = "*";

/**
 * The name both `listener` and `route` accept, or undefined when they
 * share none. Undefined on either side means any host; the result is
 * the more specific of the two (`*.com` with `*.example.com` is
 * `*.example.com`), or {@linkcode ANY_HOST}.
 */
export function intersectHostname(
  listener: string | undefined,
  route: string | undefined,
): string | undefined {
  const l = listener?.toLowerCase();
  const r = route?.toLowerCase();
  if (l === undefined) return r ?? ANY_HOST;
  if (r === undefined) return l;
  if (l === r) return l;
  const lWild = l.startsWith("*.");
  const rWild = r.startsWith("*.");
  if (lWild && !rWild) return covers(l, r) ? r : undefined;
  if (rWild && !lWild) return covers(r, l) ? l : undefined;
  if (lWild && rWild) {
    // Both wildcards: the one with the longer suffix is inside the other.
    if (covers(l, r.slice(2))) return r;
    if (covers(r, l.slice(2))) return l;
  }
  return undefined;
}

/** Whether wildcard `pattern` (`*.example.com`) matches `name` (one or more labels more). */
function covers(pattern: string, name: string): boolean {
  return name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1;
}

/**
 * The names a route answers for on one listener: each of its hostnames
 * intersected with the listener's, those that intersect; an empty list
 * when none does (`NoMatchingListenerHostname`).
 */
export function routeHostsOnListener(
  listenerHostname: string | undefined,
  routeHostnames: readonly string[] | undefined,
): string[] {
  if (routeHostnames === undefined || routeHostnames.length === 0) {
    return [intersectHostname(listenerHostname, undefined)!];
  }
  const out: string[] = [];
  for (const name of routeHostnames) {
    const both = intersectHostname(listenerHostname, name);
    if (both !== undefined && !out.includes(both)) out.push(both);
  }
  return out;
}
