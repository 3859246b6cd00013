/**
 * The validated, frozen configuration. Field names are camelCase versions of
 * the YAML keys (contract section 2); every default is already applied.
 * It holds no secret: only the names of the environment variables and the
 * paths of the files that hold them.
 */
export interface Config {
  /** Absolute path of the file this config was loaded from. */
  readonly file: string;
  readonly server: ServerConfig;
  readonly log: LogConfig;
  /** Absent: the in-memory rate limiter is used. */
  readonly redis?: RedisConfig;
  readonly auth: AuthConfig;
  readonly discovery: DiscoveryConfig;
  /** Static upstreams and per-service upstream settings, by service name. */
  readonly services: Readonly<Record<string, StaticService>>;
  /** Middleware for every matched route, run before the route's own. */
  readonly middleware: readonly MiddlewareSpec[];
  readonly routes: readonly RouteConfig[];
}

/** How log records are written: `auto` is `text` when stdout is a terminal, else `json`. */
export type LogFormat = "auto" | "json" | "text";

/** `log:` (read at start; a reload does not change it). */
export interface LogConfig {
  readonly format: LogFormat;
}

/** `server:` */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  readonly adminPort: number;
  /** Default 127.0.0.1: another address makes the admin listener reachable from other hosts. */
  readonly adminHost: string;
  /**
   * The environment variable holding the admin token: when set, every admin path but /healthz
   * and /readyz needs it (`Authorization: Bearer`, or the dashboard's login cookie).
   */
  readonly adminTokenEnv?: string;
  /** CIDRs as written, e.g. `10.0.0.0/8`, `::1/128`. */
  readonly trustedProxies: readonly string[];
  readonly maxBodyBytes: number;
  readonly upstreamTimeoutMs: number;
  readonly shutdownGraceSeconds: number;
  /** A client connection without a complete request head by then is closed. */
  readonly requestHeadTimeoutMs: number;
  /** An idle keep-alive client connection is closed after this long. */
  readonly idleTimeoutMs: number;
  /** Client connections open at once on the proxy listener; more are closed at accept. */
  readonly maxConnections: number;
  /** No upstream response body byte for this long aborts the response; absent: upstreamTimeoutMs. */
  readonly upstreamBodyTimeoutMs?: number;
  /** Request bodies up to this size are kept so a failed attempt can be resent elsewhere. */
  readonly retryBufferBytes: number;
  /** Upper bound of the in-memory rate limiter's state, in bytes (estimated). */
  readonly memoryLimiterMaxBytes: number;
  /** Present: the proxy listener speaks HTTPS (HTTP/1.1 and HTTP/2 by ALPN). */
  readonly tls?: TlsConfig;
  /** A plain-HTTP listener that answers every request with 308 to the HTTPS URL. */
  readonly httpRedirectPort?: number;
  /**
   * Proxy worker threads sharing the listening port; `auto`: one per core.
   * 1: the main thread serves (no workers).
   */
  readonly workers: number | "auto";
  /** Whether a `request` line is logged per request. */
  readonly accessLog: boolean;
  /** The share of requests (0 to 1) whose `request` line is logged, when accessLog is on. */
  readonly accessLogSample: number;
}

/** A certificate chain and its private key, as absolute paths of PEM files. */
export interface TlsPairConfig {
  readonly certFile: string;
  readonly keyFile: string;
}

/** `server.tls:` the default pair, and more pairs chosen by SNI. */
export interface TlsConfig extends TlsPairConfig {
  readonly certificates: readonly TlsPairConfig[];
}

/** How the limiter behaves while Redis is unreachable. */
export type RedisFailureMode = "open" | "closed" | "local";

/**
 * `redis:` exactly one of `url`, `urlEnv` (one server), `cluster` (a Redis
 * Cluster) and `sentinel` (a master found through Sentinel) is set.
 */
export interface RedisConfig {
  /** Set when the URL is written in the config. */
  readonly url?: string;
  /** Set when the URL comes from an environment variable. */
  readonly urlEnv?: string;
  readonly cluster?: RedisClusterConfig;
  readonly sentinel?: RedisSentinelConfig;
  readonly failureMode: RedisFailureMode;
  /** A Redis command slower than this counts as a failure (failure_mode applies). */
  readonly timeoutMs: number;
}

/** A Redis node or Sentinel as written (`redis://host:port`; `rediss://` is `tls`). */
export interface RedisNodeConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

/** `redis.cluster:` some nodes of the cluster (the client discovers the rest). */
export interface RedisClusterConfig {
  /** All with the same `tls`. */
  readonly nodes: readonly RedisNodeConfig[];
  /** The environment variable holding the nodes' password (`requirepass`/`masterauth`). */
  readonly passwordEnv?: string;
}

/** `redis.sentinel:` the Sentinels and the master group they monitor. */
export interface RedisSentinelConfig {
  /** All with the same `tls`, which also applies to the master. */
  readonly sentinels: readonly RedisNodeConfig[];
  /** The master group name (`sentinel monitor <name> ...`). */
  readonly name: string;
  /** The environment variable holding the master's (and replicas') password. */
  readonly passwordEnv?: string;
  /** The environment variable holding the Sentinels' own password, if they have one. */
  readonly sentinelPasswordEnv?: string;
}

/** `auth:` */
export interface AuthConfig {
  readonly apiKey?: ApiKeyConfig;
  readonly jwt?: JwtConfig;
}

/** `auth.api_key:` */
export interface ApiKeyConfig {
  readonly header: string;
  readonly keys: readonly ApiKeyEntry[];
}

/** One consumer's key: a SHA-256 digest or an environment variable holding the key. */
export interface ApiKeyEntry {
  readonly id: string;
  readonly sha256?: string;
  readonly valueEnv?: string;
}

/** `auth.jwt:` (exactly one key source is set). */
export interface JwtConfig {
  readonly issuer?: string;
  readonly audience?: string;
  readonly algorithms: readonly string[];
  readonly jwksUrl?: string;
  /** Absolute path, resolved against the config file's directory. */
  readonly publicKeyFile?: string;
  readonly secretEnv?: string;
  readonly clockToleranceSeconds: number;
}

/** `discovery:` */
export interface DiscoveryConfig {
  readonly kubernetes?: KubernetesDiscoveryConfig;
}

/** `discovery.kubernetes:` */
export interface KubernetesDiscoveryConfig {
  /** Undefined: decided at start-up (in a cluster, or KUBECONFIG set). */
  readonly enabled?: boolean;
  readonly namespace: string;
  /** Absolute path, resolved against the config file's directory. */
  readonly kubeconfig?: string;
  /**
   * `name` or `namespace/name` of the Service in front of Vanguard, whose
   * addresses Gateway and Ingress status publish; absent: `vanguard` in the
   * gateway's own namespace.
   */
  readonly publishService?: string;
}

/**
 * One entry of `services:`. With `urls` it is a static service; without, it
 * only carries settings for the service of that name that Kubernetes provides.
 */
export interface StaticService {
  /** Origins only, normalized: `http://127.0.0.1:9001` (no trailing slash). */
  readonly urls?: readonly string[];
  /** Outlier detection from live traffic (always present; defaults apply). */
  readonly passiveHealth: PassiveHealthConfig;
  /** Active health checks (static services only). */
  readonly healthCheck?: HealthCheckConfig;
  /** At most this many requests in flight to the service; absent: no limit. */
  readonly maxInFlight?: number;
  /** Extra attempts for idempotent requests without a body (0 to 5). */
  readonly retries: number;
  /** Absolute path of a PEM CA bundle that https upstreams are verified against (else the system roots). */
  readonly caFile?: string;
}

/** `services.<name>.passive_health:` */
export interface PassiveHealthConfig {
  /** Failures in a row that eject an endpoint; 0 disables ejection. */
  readonly consecutiveFailures: number;
  /** First ejection's length; it doubles with each further ejection. */
  readonly baseEjectionMs: number;
  /** Upper bound of an ejection's length. */
  readonly maxEjectionMs: number;
}

/** `services.<name>.health_check:` */
export interface HealthCheckConfig {
  /** Path (and query) requested with GET on each endpoint. */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Failed checks in a row that take an endpoint out. */
  readonly unhealthyThreshold: number;
  /** Passed checks in a row that put it back. */
  readonly healthyThreshold: number;
}

/** One entry of `routes:`. */
export interface RouteConfig {
  readonly id: string;
  /**
   * Canonical: starts with `/`, no trailing slash except the root `/`.
   * Exactly one of pathPrefix, pathExact and pathRegex is set.
   */
  readonly pathPrefix?: string;
  /** The whole path, as canonicalized requests spell it (a trailing slash counts). */
  readonly pathExact?: string;
  /** A regex matching the whole path (as if anchored with `^...$`); checked safe at load. */
  readonly pathRegex?: string;
  /** Lowercase host names, `*.example.com` for a wildcard; absent: any host. */
  readonly hosts?: readonly string[];
  /** Uppercase; absent: any method. */
  readonly methods?: readonly string[];
  /** Header matches, all required (names lowercase). */
  readonly headers?: readonly ValueMatchConfig[];
  /** Query parameter matches, all required. */
  readonly query?: readonly ValueMatchConfig[];
  /** The one service (v1). Exactly one of serviceName, backends and redirect is set. */
  readonly serviceName?: string;
  /** A weighted split over several services. */
  readonly backends?: readonly BackendConfig[];
  /** Which backend a client sticks to (only with backends). */
  readonly sticky?: StickyConfig;
  /** The route answers with a redirect itself; no backend. */
  readonly redirect?: RedirectConfig;
  /** What the upstream request's path and Host become. */
  readonly rewrite?: RewriteConfig;
  /** A copy of some requests to another service, its answer discarded. */
  readonly mirror?: MirrorConfig;
  /** This route's upstream timeout (until response headers); absent: the server's. */
  readonly timeoutMs?: number;
  /** Send the client's Host upstream instead of the endpoint's host:port. */
  readonly preserveHost: boolean;
  /** Header changes on the upstream request. */
  readonly requestHeaders?: HeaderChanges;
  /** Header changes on the client's response. */
  readonly responseHeaders?: HeaderChanges;
  readonly authRequired: boolean;
  readonly stripPrefix: boolean;
  /** Whether the path prefix matches regardless of letter case (for upstreams that ignore case). */
  readonly caseInsensitive: boolean;
  /** Whether an auth_required route passes the client's credential header on to the upstream. */
  readonly forwardCredentials: boolean;
  /** This route's own middleware, after the global ones. */
  readonly middleware: readonly MiddlewareSpec[];
  readonly rateLimit?: RateLimitConfig;
}

/** A `routes[i].headers` or `routes[i].query` entry: exactly one of value, regex, present. */
export interface ValueMatchConfig {
  readonly name: string;
  readonly value?: string;
  /** Matches the whole value; checked safe at load. */
  readonly regex?: string;
  /** Set only as true (false is refused at load). */
  readonly present?: boolean;
}

/** A `routes[i].backends` entry. */
export interface BackendConfig {
  readonly serviceName: string;
  /** 0 gets no traffic; each request picks a backend with probability weight / sum. */
  readonly weight: number;
}

/** `routes[i].sticky:` exactly one of header and cookie (names as written). */
export interface StickyConfig {
  readonly header?: string;
  readonly cookie?: string;
}

/** A redirect's status. */
export type RedirectStatus = 301 | 302 | 303 | 307 | 308;

/** `routes[i].redirect:` the parts of the request's URL to replace; at most one of path, pathPrefix. */
export interface RedirectConfig {
  readonly scheme?: "http" | "https";
  /** Lowercase DNS name or IP address. */
  readonly host?: string;
  readonly port?: number;
  /** Replaces the whole path. */
  readonly path?: string;
  /** Replaces the matched prefix (prefix routes only). */
  readonly pathPrefix?: string;
  readonly status: RedirectStatus;
}

/** `routes[i].rewrite:` at most one of path and pathPrefix. */
export interface RewriteConfig {
  /** The Host the upstream receives. */
  readonly host?: string;
  /** Replaces the whole path. */
  readonly path?: string;
  /** Replaces the matched prefix (prefix routes only); `/` is strip_prefix. */
  readonly pathPrefix?: string;
}

/** `routes[i].mirror:` */
export interface MirrorConfig {
  readonly serviceName: string;
  /** Share of requests copied, 0 to 100. */
  readonly percent: number;
}

/** `set`/`add`/`remove` of the header modifiers; names lowercase. */
export interface HeaderChanges {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/** Every service a route may send to: its one service or its backends, and its mirror. */
export function routeServices(route: {
  readonly serviceName?: string;
  readonly backends?: readonly { readonly serviceName: string }[];
  readonly mirror?: { readonly serviceName: string };
}): string[] {
  const names = route.backends?.map((backend) => backend.serviceName) ??
    (route.serviceName ? [route.serviceName] : []);
  if (route.mirror !== undefined) names.push(route.mirror.serviceName);
  return [...new Set(names)];
}

/** `routes[i].rate_limit:` */
export interface RateLimitConfig {
  readonly requestsPerPeriod: number;
  readonly periodSeconds: number;
  /** A request header name, or `IP`. */
  readonly clientIdentifier: string;
}

/** One problem found while loading a config, positioned in its file. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  /** Like `routes[1].rate_limit.period_seconds`; empty for the document itself. */
  readonly field: string;
  readonly message: string;
}

/** Something legal but probably unintended, reported at load time. */
export type ConfigWarning = ConfigProblem;

/** One `middleware:` entry of the config, validated. */
export interface MiddlewareSpec {
  /** A built-in's name, or undefined for a module. */
  readonly name?: string;
  /** Absolute path of a plugin module. */
  readonly module?: string;
  readonly options: unknown;
  /** Where the entry is in the config file, for problems found later. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly field: string;
}
