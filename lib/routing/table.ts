import type { Config } from "../config/types.ts";
import type { MatchRequest } from "./match.ts";
import { buildEdgeIndex, type EdgeIndex, isConditional, matchEdge } from "./edge_index.ts";
import { buildTrie, foldCase, hasCase, preferred, type PrefixNode } from "./prefix_tree.ts";
import type { Endpoint, RouteEntry, ServiceEntry, Source, TableData } from "./route.ts";

/** The table's data types live in route.ts; these are the names the rest of the code imports from here. */
export type { Backend, Endpoint, RouteEntry, ServiceEntry, Source, TableData } from "./route.ts";

/**
 * An immutable routing snapshot. The state switch builds a new one and
 * swaps it in whole; a request keeps the one it started with.
 */
export class RoutingTable {
  /** Routes sorted by path, for display (routes of the same path in config order). */
  readonly routes: readonly RouteEntry[];
  readonly services: ReadonlyMap<string, ServiceEntry>;
  /** Increases with every swap. */
  readonly version: number;
  /**
   * Whether some route matches on more than the path prefix (hosts, exact
   * or regex path, methods, headers, query): match() then needs the request.
   */
  readonly conditional: boolean;
  /** The routes in the order given (config order), which precedence ends on. */
  readonly #given: readonly RouteEntry[];
  readonly #root: PrefixNode;
  /** Case-insensitive prefixes, by folded segments; absent when there are none. */
  readonly #folded?: PrefixNode;
  /** Set when `conditional`: the routes by host, then by path. */
  readonly #edge?: EdgeIndex;

  constructor(
    routes: readonly RouteEntry[],
    services: ReadonlyMap<string, ServiceEntry>,
    version = 1,
  ) {
    this.#given = Object.freeze([...routes]);
    this.routes = Object.freeze(
      [...routes].sort((a, b) =>
        a.pathPrefix < b.pathPrefix ? -1 : a.pathPrefix > b.pathPrefix ? 1 : 0
      ),
    );
    this.services = services;
    this.version = version;
    this.conditional = routes.some(isConditional);
    if (this.conditional) {
      this.#edge = buildEdgeIndex(routes);
      this.#root = {};
      return;
    }
    // A case-insensitive prefix without letters matches like any other.
    const exact: RouteEntry[] = [];
    const folding: RouteEntry[] = [];
    for (const route of routes) {
      (route.caseInsensitive && hasCase(route.pathPrefix) ? folding : exact).push(route);
    }
    this.#root = buildTrie(exact, (segment) => segment);
    if (folding.length > 0) this.#folded = buildTrie(folding, foldCase);
  }

  /** The table's plain data (see TableData); its routes in the order given. */
  toData(): TableData {
    return { version: this.version, routes: this.#given, services: [...this.services] };
  }

  /** The table that `data` (possibly a structured clone from another thread) describes. */
  static fromData(data: TableData): RoutingTable {
    return new RoutingTable(data.routes, new Map(data.services), data.version);
  }

  /**
   * The route with the longest prefix that matches `path` on a segment
   * boundary. Walks a tree of segments from the root, one Map lookup per
   * matching segment, and stops at the first segment no route continues
   * with: the cost grows with the path, never with the number of routes.
   *
   * On a `conditional` table, `request` supplies the host, method, headers
   * and query (without it only routes that need none of them match), and
   * the precedence of contract section 9 picks among the routes that match.
   */
  match(path: string, request?: MatchRequest): RouteEntry | undefined {
    if (this.#edge !== undefined) return matchEdge(this.#edge, path, request);
    if (this.#folded !== undefined) return this.#matchFolding(path, this.#folded);
    let node: PrefixNode | undefined = this.#root;
    let best = node.route;
    let start = 1;
    while (start < path.length) {
      let end = path.indexOf("/", start);
      if (end === -1) end = path.length;
      node = node.children?.get(path.slice(start, end));
      if (node === undefined) break;
      if (node.route !== undefined) best = node.route;
      start = end + 1;
    }
    return best;
  }

  /**
   * match() when some prefixes are case-insensitive: walks both trees side
   * by side, folding a segment only while the folded tree goes on. The
   * deepest match wins whichever tree it is in; at equal depth the exact
   * spelling wins, except that a config route beats a Kubernetes one (as
   * it does for the same prefix).
   */
  #matchFolding(path: string, folded: PrefixNode): RouteEntry | undefined {
    let exact: PrefixNode | undefined = this.#root;
    let fold: PrefixNode | undefined = folded;
    let best = exact.route;
    let start = 1;
    while (start < path.length) {
      let end = path.indexOf("/", start);
      if (end === -1) end = path.length;
      const segment = path.slice(start, end);
      exact = exact?.children?.get(segment);
      fold = fold?.children === undefined ? undefined : fold.children.get(foldCase(segment));
      if (exact === undefined && fold === undefined) break;
      const found = preferred(exact?.route, fold?.route);
      if (found !== undefined) best = found;
      start = end + 1;
    }
    return best;
  }

  /** The endpoints of a service, if the snapshot knows it. */
  service(name: string): ServiceEntry | undefined {
    return this.services.get(name);
  }
}

/** Counts the segments of a canonical prefix: `/` has 0, `/a/b` has 2. */
export function countSegments(prefix: string): number {
  return prefix === "/" ? 0 : prefix.split("/").length - 1;
}

/** Builds the service entry for a list of endpoints. */
export function serviceEntry(
  name: string,
  source: Source,
  endpoints: readonly Endpoint[],
): ServiceEntry {
  return Object.freeze({
    name,
    source,
    endpoints: Object.freeze([...endpoints]),
    ready: Object.freeze(endpoints.filter((endpoint) => endpoint.ready)),
  });
}

/** The snapshot that a config alone describes: its routes and static services. */
export function tableFromConfig(config: Config, version = 1): RoutingTable {
  const routes: RouteEntry[] = config.routes.map((route) => {
    const backends = route.backends?.map((backend) => Object.freeze({ ...backend }));
    return Object.freeze({
      id: route.id,
      ...pathOf(route),
      ...(route.hosts !== undefined ? { hosts: route.hosts } : {}),
      ...(route.methods !== undefined ? { methods: route.methods } : {}),
      ...(route.headers !== undefined ? { headers: route.headers } : {}),
      ...(route.query !== undefined ? { query: route.query } : {}),
      serviceName: route.serviceName ?? backends?.[0].serviceName ?? "",
      ...(backends !== undefined ? { backends } : {}),
      ...optionalFilters(route),
      authRequired: route.authRequired,
      forwardCredentials: route.forwardCredentials,
      stripPrefix: route.stripPrefix,
      caseInsensitive: route.caseInsensitive,
      rateLimit: route.rateLimit,
      source: "config" as const,
    });
  });
  const services = new Map<string, ServiceEntry>();
  for (const [name, service] of Object.entries(config.services)) {
    // An entry without urls only carries settings for a discovered service.
    if (service.urls === undefined) continue;
    services.set(
      name,
      serviceEntry(name, "config", service.urls.map((url) => ({ url, ready: true }))),
    );
  }
  return new RoutingTable(routes, services, version);
}

/** A config route's filters, only those it sets (so a plain route's entry stays small). */
function optionalFilters(route: Config["routes"][number]): Partial<RouteEntry> {
  const out: Record<string, unknown> = {};
  if (route.sticky !== undefined) out.sticky = route.sticky;
  if (route.redirect !== undefined) out.redirect = route.redirect;
  if (route.rewrite !== undefined) out.rewrite = route.rewrite;
  if (route.mirror !== undefined) out.mirror = route.mirror;
  if (route.timeoutMs !== undefined) out.timeoutMs = route.timeoutMs;
  if (route.preserveHost) out.preserveHost = true;
  if (route.requestHeaders !== undefined) out.requestHeaders = route.requestHeaders;
  if (route.responseHeaders !== undefined) out.responseHeaders = route.responseHeaders;
  return out as Partial<RouteEntry>;
}

/** The path fields of a route entry for a config route's path_prefix, path_exact or path_regex. */
function pathOf(route: Config["routes"][number]): Pick<
  RouteEntry,
  "pathPrefix" | "pathKind" | "prefixSegments"
> {
  if (route.pathExact !== undefined) {
    // strip_prefix on an exact path removes all of it (a trailing slash included).
    const trimmed = route.pathExact.length > 1 && route.pathExact.endsWith("/")
      ? route.pathExact.slice(0, -1)
      : route.pathExact;
    return {
      pathPrefix: route.pathExact,
      pathKind: "exact",
      prefixSegments: countSegments(trimmed),
    };
  }
  if (route.pathRegex !== undefined) {
    return { pathPrefix: route.pathRegex, pathKind: "regex", prefixSegments: 0 };
  }
  const prefix = route.pathPrefix ?? "/";
  return { pathPrefix: prefix, prefixSegments: countSegments(prefix) };
}

/** Holds the current snapshot; the only mutable thing in routing. */
export class RoutingState {
  #current: RoutingTable;
  #listeners: ((table: RoutingTable) => void)[] = [];

  constructor(initial: RoutingTable) {
    this.#current = initial;
  }

  /** The snapshot new requests pin. */
  get current(): RoutingTable {
    return this.#current;
  }

  /** Replaces the snapshot whole. */
  swap(next: RoutingTable): void {
    this.#current = next;
    for (const listener of this.#listeners) listener(next);
  }

  /** Called after every swap (metrics use it to refresh gauges). */
  onSwap(listener: (table: RoutingTable) => void): void {
    this.#listeners.push(listener);
  }
}
