/** What a routing table is made of, as plain data: routes, services, endpoints. */
import type {
  HeaderChanges,
  MirrorConfig,
  RateLimitConfig,
  RedirectConfig,
  RewriteConfig,
  StickyConfig,
} from "../config/types.ts";
import type { ValueMatch } from "./match.ts";

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
  /**
   * True: a `*.` host covers exactly one label (`a.example.com`, not
   * `a.b.example.com`), as Ingress means it. Absent: one or more labels, as
   * the Gateway API and config routes mean it.
   */
  readonly oneLabelWildcard?: true;
  /** Absent: any method. */
  readonly methods?: readonly string[];
  /** Every entry must match (names lowercase). */
  readonly headers?: readonly ValueMatch[];
  /** Every entry must match. */
  readonly query?: readonly ValueMatch[];
  /**
   * The route's service: its only backend, or the first of `backends` (for
   * labels and display); "" for a redirect route.
   */
  readonly serviceName: string;
  /** Absent: the one backend `serviceName`, weight 1. */
  readonly backends?: readonly Backend[];
  readonly sticky?: StickyConfig;
  /** The route answers with this redirect; no backend. */
  readonly redirect?: RedirectConfig;
  readonly rewrite?: RewriteConfig;
  readonly mirror?: MirrorConfig;
  /** The route's upstream timeout until response headers; absent: the server's. */
  readonly timeoutMs?: number;
  /** The upstream receives the client's Host (Gateway API and Ingress routes always). */
  readonly preserveHost?: boolean;
  readonly requestHeaders?: HeaderChanges;
  readonly responseHeaders?: HeaderChanges;
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

/** One service of a weighted split. */
export interface Backend {
  readonly serviceName: string;
  readonly weight: number;
  /**
   * Set when the reference cannot be resolved (a Gateway API backendRef to a
   * missing Service, another kind, a namespace not granted): this backend's
   * share of the traffic answers 500 with this message.
   */
  readonly unresolved?: string;
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
