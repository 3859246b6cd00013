import type { Config, RateLimitConfig } from "../config/types.ts";

/** Where a route or service came from. */
export type Source = "config" | "kubernetes";

/** One upstream address of a service. */
export interface Endpoint {
  /** Origin, e.g. `http://10.0.0.7:8080`. */
  readonly url: string;
  readonly ready: boolean;
  /** Set on endpoints that are shutting down but still serving (used only when none is ready). */
  readonly terminating?: boolean;
}

/** A service's endpoints in one snapshot. */
export interface ServiceEntry {
  readonly name: string;
  readonly source: Source;
  readonly endpoints: readonly Endpoint[];
  /** The ready subset, computed once per snapshot rather than per request. */
  readonly ready: readonly Endpoint[];
}

/** A route, compiled for the request path. */
export interface RouteEntry {
  readonly id: string;
  readonly pathPrefix: string;
  /** Number of segments in pathPrefix; strip_prefix removes this many. */
  readonly prefixSegments: number;
  readonly serviceName: string;
  readonly authRequired: boolean;
  /** Pass the credential header upstream (normally removed on protected routes). */
  readonly forwardCredentials: boolean;
  readonly stripPrefix: boolean;
  /**
   * The prefix matches whatever the letter case (`case_insensitive`; absent:
   * false). Only for upstreams that ignore case themselves.
   */
  readonly caseInsensitive?: boolean;
  readonly rateLimit?: RateLimitConfig;
  readonly source: Source;
}

/**
 * A routing table as plain data: structured-cloneable, so a worker thread
 * can receive it from the main thread and rebuild the same table
 * (`RoutingTable.fromData`), while the live objects built from it
 * (matchers, handlers, pools) stay where they were built.
 */
export interface TableData {
  readonly version: number;
  readonly routes: readonly RouteEntry[];
  /** Each service under every name it is known by (a Service of the default namespace: twice). */
  readonly services: readonly (readonly [string, ServiceEntry])[];
}

/**
 * An immutable routing snapshot. The state switch builds a new one and
 * swaps it in whole; a request keeps the one it started with.
 */
export class RoutingTable {
  /** Routes sorted by prefix, for display. */
  readonly routes: readonly RouteEntry[];
  readonly services: ReadonlyMap<string, ServiceEntry>;
  /** Increases with every swap. */
  readonly version: number;
  readonly #root: PrefixNode;
  /** Case-insensitive prefixes, by folded segments; absent when there are none. */
  readonly #folded?: PrefixNode;

  constructor(
    routes: readonly RouteEntry[],
    services: ReadonlyMap<string, ServiceEntry>,
    version = 1,
  ) {
    this.routes = Object.freeze([...routes].sort((a, b) => a.pathPrefix < b.pathPrefix ? -1 : 1));
    this.services = services;
    this.version = version;
    // A case-insensitive prefix without letters matches like any other.
    const exact: RouteEntry[] = [];
    const folding: RouteEntry[] = [];
    for (const route of routes) {
      (route.caseInsensitive && hasCase(route.pathPrefix) ? folding : exact).push(route);
    }
    this.#root = buildTrie(exact, (segment) => segment);
    if (folding.length > 0) this.#folded = buildTrie(folding, foldCase);
  }

  /** The table's plain data (see TableData). */
  toData(): TableData {
    return { version: this.version, routes: this.routes, services: [...this.services] };
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
   */
  match(path: string): RouteEntry | undefined {
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

/** One segment of the route tree; `route` is set where a prefix ends. */
interface PrefixNode {
  route?: RouteEntry;
  children?: Map<string, PrefixNode>;
}

function buildTrie(routes: readonly RouteEntry[], key: (segment: string) => string): PrefixNode {
  const root: PrefixNode = {};
  for (const route of routes) {
    let node = root;
    if (route.pathPrefix !== "/") {
      for (const segment of route.pathPrefix.slice(1).split("/").map(key)) {
        node.children ??= new Map();
        let child = node.children.get(segment);
        if (child === undefined) {
          child = {};
          node.children.set(segment, child);
        }
        node = child;
      }
    }
    node.route = route;
  }
  return root;
}

/** Of two routes matching to the same depth, the exact spelling, unless only the other is from config. */
function preferred(
  exact: RouteEntry | undefined,
  folded: RouteEntry | undefined,
): RouteEntry | undefined {
  if (exact === undefined) return folded;
  if (folded !== undefined && exact.source !== "config" && folded.source === "config") {
    return folded;
  }
  return exact;
}

/*
 * Case folding for case-insensitive prefixes: ASCII letters, and the four
 * other letters whose Unicode case mapping is an ASCII letter (dotted and
 * dotless i, long s, Kelvin sign). Upstreams that compare like Java's
 * equalsIgnoreCase take "/admın" for "/admin", so the gateway must too, or
 * the spelling walks around a protected prefix. Other letters keep their case.
 */
const FOLDABLE = /[A-Z\u0130\u0131\u017f\u212a]/g;

/** Whether folding changes what a prefix can match. */
function hasCase(prefix: string): boolean {
  return /[A-Za-z\u0130\u0131\u017f\u212a]/.test(prefix);
}

/** A segment in folded form; the segment itself (no allocation) when nothing folds. */
function foldCase(segment: string): string {
  let folds = false;
  let ascii = true;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c < 0x80) {
      if (c >= 0x41 && c <= 0x5a) folds = true;
    } else {
      ascii = false;
      if (c === 0x130 || c === 0x131 || c === 0x17f || c === 0x212a) folds = true;
    }
  }
  if (!folds) return segment;
  // toLowerCase() would also fold letters such as "É": only for ASCII is it the same thing.
  return ascii ? segment.toLowerCase() : segment.replace(FOLDABLE, foldLetter);
}

function foldLetter(letter: string): string {
  switch (letter) {
    case "\u0130":
    case "\u0131":
      return "i";
    case "\u017f":
      return "s";
    case "\u212a":
      return "k";
    default:
      return letter.toLowerCase();
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
  const routes: RouteEntry[] = config.routes.map((route) =>
    Object.freeze({
      id: route.id,
      pathPrefix: route.pathPrefix,
      prefixSegments: countSegments(route.pathPrefix),
      serviceName: route.serviceName,
      authRequired: route.authRequired,
      forwardCredentials: route.forwardCredentials,
      stripPrefix: route.stripPrefix,
      caseInsensitive: route.caseInsensitive,
      rateLimit: route.rateLimit,
      source: "config" as const,
    })
  );
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
