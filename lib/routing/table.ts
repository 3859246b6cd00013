import type { Config, RateLimitConfig } from "../config/types.ts";
import {
  anchored,
  byPrecedence,
  type Candidate,
  candidate,
  firstMatching,
  type MatchRequest,
  precedence,
  RequestFacts,
  type ValueMatch,
} from "./match.ts";

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

/** A route, compiled for the request path. Plain data: what matches it is compiled by the table. */
export interface RouteEntry {
  readonly id: string;
  /**
   * What the path must be: the prefix (pathKind absent), the exact path
   * (`exact`), or the source of a regex matching the whole path (`regex`).
   */
  readonly pathPrefix: string;
  /** Absent: a prefix route (the only kind of v1 and of Service annotations). */
  readonly pathKind?: "exact" | "regex";
  /** Number of segments in pathPrefix (0 for a regex); strip_prefix removes this many. */
  readonly prefixSegments: number;
  /** Lowercase; `*.example.com` for a wildcard. Absent: any host. */
  readonly hosts?: readonly string[];
  /** Absent: any method. */
  readonly methods?: readonly string[];
  /** Every entry must match (names lowercase). */
  readonly headers?: readonly ValueMatch[];
  /** Every entry must match. */
  readonly query?: readonly ValueMatch[];
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

/** Whether a route matches on anything besides a path prefix. */
function isConditional(route: RouteEntry): boolean {
  return route.pathKind !== undefined || route.hosts !== undefined ||
    route.methods !== undefined || route.headers !== undefined || route.query !== undefined;
}

type RouteCandidate = Candidate<RouteEntry>;

/** One segment of a conditional table's prefix tree, with the routes whose prefix ends here. */
interface EdgeNode {
  candidates?: RouteCandidate[];
  children?: Map<string, EdgeNode>;
}

/** The routes of one host (or of any host), by path. */
interface PathIndex {
  readonly exact: Map<string, RouteCandidate[]>;
  /** Case-insensitive exact paths, by folded path. */
  readonly foldedExact: Map<string, RouteCandidate[]>;
  readonly root: EdgeNode;
  /** Case-insensitive prefixes, by folded segments. */
  readonly folded: EdgeNode;
  readonly hasFolded: boolean;
  readonly regex: { readonly pattern: RegExp; readonly candidate: RouteCandidate }[];
}

/**
 * A conditional table: hosts by hash (exact names, then wildcard suffixes
 * label by label), each with its own path index; the method, header and
 * query matches are checked only on the candidates of a matching path.
 */
interface EdgeIndex {
  readonly exactHosts: Map<string, PathIndex>;
  /** `*.example.com` under `example.com`. */
  readonly wildcardHosts: Map<string, PathIndex>;
  readonly anyHost: PathIndex;
}

function emptyPathIndex(): PathIndex {
  return {
    exact: new Map(),
    foldedExact: new Map(),
    root: {},
    folded: {},
    hasFolded: false,
    regex: [],
  };
}

function buildEdgeIndex(routes: readonly RouteEntry[]): EdgeIndex {
  const edge: EdgeIndex = {
    exactHosts: new Map(),
    wildcardHosts: new Map(),
    anyHost: emptyPathIndex(),
  };
  const indexes = new Set<PathIndex>([edge.anyHost]);
  for (const route of routes) {
    const compiled = candidate(route);
    const targets: PathIndex[] = [];
    if (route.hosts === undefined) targets.push(edge.anyHost);
    for (const host of new Set(route.hosts ?? [])) {
      const wildcard = host.startsWith("*.");
      const map = wildcard ? edge.wildcardHosts : edge.exactHosts;
      const key = wildcard ? host.slice(2) : host;
      let index = map.get(key);
      if (index === undefined) {
        index = emptyPathIndex();
        map.set(key, index);
        indexes.add(index);
      }
      targets.push(index);
    }
    for (const index of targets) addToPathIndex(index, route, compiled);
  }
  for (const index of indexes) {
    for (const list of index.exact.values()) byPrecedence(list);
    for (const list of index.foldedExact.values()) byPrecedence(list);
    sortTree(index.root);
    sortTree(index.folded);
    // Only the extra matches order regex routes: a stable sort keeps config order.
    index.regex.sort((a, b) => precedence(a.candidate, b.candidate));
  }
  return edge;
}

function addToPathIndex(index: PathIndex, route: RouteEntry, compiled: RouteCandidate): void {
  const folding = route.caseInsensitive === true && hasCase(route.pathPrefix);
  if (folding) (index as { hasFolded: boolean }).hasFolded = true;
  if (route.pathKind === "regex") {
    index.regex.push({ pattern: anchored(route.pathPrefix), candidate: compiled });
    return;
  }
  if (route.pathKind === "exact") {
    const map = folding ? index.foldedExact : index.exact;
    const key = folding ? foldCase(route.pathPrefix) : route.pathPrefix;
    const list = map.get(key);
    if (list === undefined) map.set(key, [compiled]);
    else list.push(compiled);
    return;
  }
  let node = folding ? index.folded : index.root;
  if (route.pathPrefix !== "/") {
    for (const raw of route.pathPrefix.slice(1).split("/")) {
      const segment = folding ? foldCase(raw) : raw;
      node.children ??= new Map();
      let child = node.children.get(segment);
      if (child === undefined) {
        child = {};
        node.children.set(segment, child);
      }
      node = child;
    }
  }
  (node.candidates ??= []).push(compiled);
}

function sortTree(node: EdgeNode): void {
  if (node.candidates !== undefined) byPrecedence(node.candidates);
  for (const child of node.children?.values() ?? []) sortTree(child);
}

const NO_REQUEST: MatchRequest = {
  host: undefined,
  method: "",
  headers: { get: () => null },
  query: "",
};

function matchEdge(
  edge: EdgeIndex,
  path: string,
  request: MatchRequest | undefined,
): RouteEntry | undefined {
  const facts = new RequestFacts(request ?? NO_REQUEST);
  const host = facts.request.host;
  if (host !== undefined) {
    const exact = edge.exactHosts.get(host);
    if (exact !== undefined) {
      const found = matchPath(exact, path, facts);
      if (found !== undefined) return found;
    }
    if (edge.wildcardHosts.size > 0) {
      // Longest suffix first; the suffix always leaves at least one label before it.
      let dot = host.indexOf(".");
      while (dot !== -1) {
        const index = edge.wildcardHosts.get(host.slice(dot + 1));
        if (index !== undefined) {
          const found = matchPath(index, path, facts);
          if (found !== undefined) return found;
        }
        dot = host.indexOf(".", dot + 1);
      }
    }
  }
  return matchPath(edge.anyHost, path, facts);
}

/** Exact path, then the longest prefix, then regex; the first candidate that fully matches. */
function matchPath(index: PathIndex, path: string, facts: RequestFacts): RouteEntry | undefined {
  const exact = index.exact.get(path);
  const foldedExact = index.hasFolded ? index.foldedExact.get(foldCase(path)) : undefined;
  const byExact = atSameDepth(exact, foldedExact, facts);
  if (byExact !== undefined) return byExact;

  // Walk both trees down the path, remembering where routes end, then try the deepest first.
  const depths: [RouteCandidate[] | undefined, RouteCandidate[] | undefined][] = [];
  let node: EdgeNode | undefined = index.root;
  let fold: EdgeNode | undefined = index.hasFolded ? index.folded : undefined;
  depths.push([node.candidates, fold?.candidates]);
  let start = 1;
  while (start < path.length) {
    let end = path.indexOf("/", start);
    if (end === -1) end = path.length;
    const segment = path.slice(start, end);
    node = node?.children?.get(segment);
    fold = fold?.children === undefined ? undefined : fold.children.get(foldCase(segment));
    if (node === undefined && fold === undefined) break;
    depths.push([node?.candidates, fold?.candidates]);
    start = end + 1;
  }
  for (let i = depths.length - 1; i >= 0; i--) {
    const found = atSameDepth(depths[i][0], depths[i][1], facts);
    if (found !== undefined) return found;
  }

  for (const { pattern, candidate } of index.regex) {
    if (pattern.test(path)) {
      const found = firstMatching([candidate], facts);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Of the routes of one path, in the exact spelling and case-folded: the
 * exact spelling first, except that config routes come before Kubernetes
 * ones (as preferred() decides for plain tables).
 */
function atSameDepth(
  exact: readonly RouteCandidate[] | undefined,
  folded: readonly RouteCandidate[] | undefined,
  facts: RequestFacts,
): RouteEntry | undefined {
  if (folded === undefined) return exact === undefined ? undefined : firstMatching(exact, facts);
  if (exact === undefined) return firstMatching(folded, facts);
  const fromConfig = (c: RouteCandidate) => c.route.source === "config";
  return firstMatching(exact.filter(fromConfig), facts) ??
    firstMatching(folded.filter(fromConfig), facts) ??
    firstMatching(exact, facts) ?? firstMatching(folded, facts);
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
    // Of two routes with the same prefix (a warning at load), the first given wins.
    node.route ??= route;
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
      ...pathOf(route),
      ...(route.hosts !== undefined ? { hosts: route.hosts } : {}),
      ...(route.methods !== undefined ? { methods: route.methods } : {}),
      ...(route.headers !== undefined ? { headers: route.headers } : {}),
      ...(route.query !== undefined ? { query: route.query } : {}),
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
