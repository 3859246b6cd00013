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
  readonly rateLimit?: RateLimitConfig;
  readonly source: Source;
}

/**
 * An immutable routing snapshot. Discovery builds a new one and swaps it in
 * whole; a request keeps the one it started with.
 */
export class RoutingTable {
  /** Routes sorted by prefix, for display. */
  readonly routes: readonly RouteEntry[];
  readonly services: ReadonlyMap<string, ServiceEntry>;
  /** Increases with every swap. */
  readonly version: number;
  readonly #root: PrefixNode;

  constructor(
    routes: readonly RouteEntry[],
    services: ReadonlyMap<string, ServiceEntry>,
    version = 1,
  ) {
    this.routes = Object.freeze([...routes].sort((a, b) => a.pathPrefix < b.pathPrefix ? -1 : 1));
    this.services = services;
    this.version = version;
    this.#root = buildTrie(routes);
  }

  /**
   * The route with the longest prefix that matches `path` on a segment
   * boundary. Walks a tree of segments from the root, one Map lookup per
   * matching segment, and stops at the first segment no route continues
   * with: the cost grows with the path, never with the number of routes.
   */
  match(path: string): RouteEntry | undefined {
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

function buildTrie(routes: readonly RouteEntry[]): PrefixNode {
  const root: PrefixNode = {};
  for (const route of routes) {
    let node = root;
    if (route.pathPrefix !== "/") {
      for (const segment of route.pathPrefix.slice(1).split("/")) {
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
