/**
 * Turns what the Kubernetes watches hold (Services and EndpointSlices, and
 * the Gateway API and Ingress objects) plus the config into one routing
 * table: config routes, then Service annotation routes, then HTTPRoutes,
 * then Ingresses. Pure: same input, same table, so a rebuild that changes
 * nothing can be recognised and not swapped in.
 */
import type { Config, RateLimitConfig } from "../config/types.ts";
import { type IngressObjects, translateIngress } from "../gateway_api/ingress.ts";
import type { StatusUpdate } from "../gateway_api/result.ts";
import type { CertificatePair } from "../gateway_api/tls_secret.ts";
import {
  GATEWAY_CONTROLLER,
  type GatewayApiObjects,
  translateGatewayApi,
} from "../gateway_api/translate.ts";
import { CONSUMER_IDENTIFIER } from "../middleware/rate_limit.ts";
import { matchKey } from "../routing/match.ts";
import { checkPathPrefix } from "../routing/path.ts";
import {
  countSegments,
  type Endpoint,
  type RouteEntry,
  RoutingTable,
  type ServiceEntry,
  serviceEntry,
  tableFromConfig,
} from "../routing/table.ts";

/** The parts of a Service that discovery reads. */
export interface KubeService {
  metadata: {
    name: string;
    namespace: string;
    annotations?: Record<string, string>;
  };
  spec?: {
    ports?: { name?: string; port: number; targetPort?: number | string }[];
  };
}

/** The parts of an EndpointSlice that discovery reads. */
export interface KubeEndpointSlice {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: {
    addresses: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  }[] | null;
  ports?: { name?: string | null; port?: number | null }[] | null;
}

/** Everything the watches hold: Services and slices, and the routing objects when watched. */
export interface KubeObjects {
  readonly services: Iterable<KubeService>;
  readonly slices: Iterable<KubeEndpointSlice>;
  /** Absent: Gateway API objects are not watched (the snapshot has no HTTPRoute routes). */
  readonly gatewayApi?: GatewayApiObjects;
  /** Absent: Ingresses are not watched. */
  readonly ingress?: IngressObjects;
}

/** What the Gateway API and Ingress objects translate to, together. */
export interface RoutingTranslation {
  /** HTTPRoute routes, then Ingress routes. */
  readonly routes: readonly RouteEntry[];
  readonly statuses: readonly StatusUpdate[];
  readonly certificates: readonly CertificatePair[];
  readonly warnings: readonly string[];
}

/** Where clients reach Vanguard, for status; and the time the conditions of this translation get. */
export interface TranslateOptions {
  /** RFC 3339; only conditions whose status changes take it. */
  readonly now: string;
  /** Published in Gateway `status.addresses` and Ingress `status.loadBalancer`. */
  readonly addresses?: readonly string[];
}

/**
 * Translates the Gateway API and Ingress objects with the deployment
 * facts the config gives (Vanguard's listener port). Pure: the table and
 * the status writer both call it, with the same objects they agree.
 */
export function translateRouting(
  config: Config,
  objects: KubeObjects,
  options: TranslateOptions,
): RoutingTranslation {
  if (objects.gatewayApi === undefined && objects.ingress === undefined) {
    return { routes: [], statuses: [], certificates: [], warnings: [] };
  }
  const services = [...objects.services];
  const addresses = options.addresses ?? [];
  const gateway = objects.gatewayApi === undefined ? undefined : translateGatewayApi(
    objects.gatewayApi,
    {
      controllerName: GATEWAY_CONTROLLER,
      listenerPorts: [config.server.port],
      addresses,
      services,
      now: options.now,
    },
  );
  const ingress = objects.ingress === undefined
    ? undefined
    : translateIngress(objects.ingress, { addresses, services });
  const parts = [gateway, ingress].filter((t) => t !== undefined);
  return {
    routes: parts.flatMap((t) => t.routes),
    statuses: parts.flatMap((t) => t.statuses),
    certificates: parts.flatMap((t) => t.certificates),
    warnings: parts.flatMap((t) => t.warnings),
  };
}

/** The time a table's translation passes: its statuses are not used, only its routes. */
const TABLE_TIME = "1970-01-01T00:00:00Z";

/** Something wrong with one Service, reported and skipped. */
export interface SnapshotWarning {
  readonly service: string;
  readonly message: string;
}

/** Annotations Vanguard reads on a Service. */
export const ANNOTATIONS = {
  pathPrefix: "vanguard.io/path-prefix",
  authRequired: "vanguard.io/auth-required",
  rateLimit: "vanguard.io/rate-limit",
  port: "vanguard.io/port",
} as const;

const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/**
 * Builds the routing table from the config and the current Kubernetes
 * objects; `routeWarnings` are the translation's (HTTPRoute and Ingress
 * problems that have no status field), `certificates` those the Gateways'
 * and Ingresses' TLS Secrets hold.
 */
export function buildSnapshot(
  config: Config,
  objects: KubeObjects,
  version: number,
): {
  table: RoutingTable;
  warnings: SnapshotWarning[];
  routeWarnings: readonly string[];
  certificates: readonly CertificatePair[];
} {
  const warnings: SnapshotWarning[] = [];
  const defaultNamespace = config.discovery.kubernetes?.namespace ?? "default";
  const base = tableFromConfig(config, version);

  const slicesByService = new Map<string, KubeEndpointSlice[]>();
  for (const slice of objects.slices) {
    const owner = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!owner) continue;
    const key = `${slice.metadata.namespace}/${owner}`;
    const list = slicesByService.get(key);
    if (list) list.push(slice);
    else slicesByService.set(key, [slice]);
  }

  // Static services first; Kubernetes wins for a name it knows.
  const services = new Map<string, ServiceEntry>(base.services);
  const annotated: RouteEntry[] = [];
  const sorted = [...objects.services].sort((a, b) =>
    qualified(a) < qualified(b) ? -1 : qualified(a) > qualified(b) ? 1 : 0
  );
  for (const service of sorted) {
    const { name, namespace } = service.metadata;
    const fullName = `${name}.${namespace}`;
    const slices = slicesByService.get(`${namespace}/${name}`) ?? [];
    // Every port under its own name, as Gateway API and Ingress backends name them.
    for (const servicePort of service.spec?.ports ?? []) {
      const qualifiedName = `${fullName}:${servicePort.port}`;
      services.set(
        qualifiedName,
        withTerminatingFallback(qualifiedName, endpointsOf(slices, servicePort.name ?? "")),
      );
    }
    const port = choosePort(service);
    if ("problem" in port) {
      // Its plain name is skipped; the port-qualified ones above still serve.
      warnings.push({ service: `${namespace}/${name}`, message: port.problem });
      continue;
    }
    const endpoints = endpointsOf(slices, port.name);
    // Named as routes name it: bare in the default namespace.
    const entry = withTerminatingFallback(
      namespace === defaultNamespace ? name : fullName,
      endpoints,
    );
    services.set(fullName, entry);
    if (namespace === defaultNamespace) services.set(name, entry);

    const route = annotationRoute(service, fullName);
    if (route === undefined) continue;
    if ("problem" in route) {
      warnings.push({ service: `${namespace}/${name}`, message: route.problem });
      continue;
    }
    annotated.push(route);
  }

  const routes: RouteEntry[] = [...base.routes];
  // Letter case aside: a case-insensitive config prefix takes the annotation's place too.
  const keyOf = (route: RouteEntry) => matchKey({ ...route, caseInsensitive: false });
  const taken = new Set(routes.map(keyOf));
  for (const route of annotated) {
    // A route in config.yaml wins over an annotation that matches the same (a plain prefix).
    const key = keyOf(route);
    if (taken.has(key)) continue;
    taken.add(key);
    routes.push(route);
  }
  const translated = translateRouting(config, objects, { now: TABLE_TIME });
  routes.push(...translated.routes);
  return {
    table: new RoutingTable(routes, services, version),
    warnings,
    routeWarnings: translated.warnings,
    certificates: translated.certificates,
  };
}

function qualified(service: KubeService): string {
  return `${service.metadata.namespace}/${service.metadata.name}`;
}

/**
 * The Service port traffic goes to: `vanguard.io/port` (name or number),
 * else the port named `http`, else the only port.
 */
function choosePort(service: KubeService): { name: string } | { problem: string } {
  const ports = service.spec?.ports ?? [];
  const wanted = service.metadata.annotations?.[ANNOTATIONS.port];
  if (wanted !== undefined) {
    const match = ports.find((p) => p.name === wanted || String(p.port) === wanted.trim());
    if (match === undefined) {
      return { problem: `${ANNOTATIONS.port} "${wanted}" names no port of the Service` };
    }
    return { name: match.name ?? "" };
  }
  const http = ports.find((p) => p.name === "http");
  if (http) return { name: "http" };
  if (ports.length === 1) return { name: ports[0].name ?? "" };
  if (ports.length === 0) return { problem: "the Service has no ports" };
  return {
    problem:
      `the Service has ${ports.length} ports and none is named "http": set ${ANNOTATIONS.port}`,
  };
}

interface DiscoveredEndpoint {
  url: string;
  ready: boolean;
  servingWhileTerminating: boolean;
}

/**
 * The union of every slice's endpoints on the chosen port, deduplicated
 * (an endpoint may appear in two slices while they are being rebalanced).
 */
function endpointsOf(slices: KubeEndpointSlice[], portName: string): DiscoveredEndpoint[] {
  const byUrl = new Map<string, DiscoveredEndpoint>();
  for (const slice of slices) {
    if (slice.addressType === "FQDN") continue;
    const port = (slice.ports ?? []).find((p) => (p.name ?? "") === portName);
    if (port?.port == null) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      // Absent "ready" means ready (the EndpointSlice API says consumers
      // should treat unknown as ready).
      const ready = conditions.ready !== false;
      const servingWhileTerminating = conditions.terminating === true &&
        conditions.serving === true;
      for (const address of endpoint.addresses ?? []) {
        const host = address.includes(":") ? `[${address}]` : address;
        const url = `http://${host}:${port.port}`;
        const known = byUrl.get(url);
        byUrl.set(url, {
          url,
          ready: ready || (known?.ready ?? false),
          servingWhileTerminating: servingWhileTerminating ||
            (known?.servingWhileTerminating ?? false),
        });
      }
    }
  }
  return [...byUrl.values()].sort((a, b) => a.url < b.url ? -1 : a.url > b.url ? 1 : 0);
}

/**
 * Ready endpoints get the traffic. Only when none is ready do endpoints
 * that are terminating but still serving get it, so a rollout's last old
 * pod keeps answering until a new one is ready.
 */
function withTerminatingFallback(name: string, endpoints: DiscoveredEndpoint[]): ServiceEntry {
  const list: Endpoint[] = endpoints.map((e) =>
    e.servingWhileTerminating && !e.ready
      ? { url: e.url, ready: false, terminating: true }
      : { url: e.url, ready: e.ready }
  );
  const entry = serviceEntry(name, "kubernetes", list);
  if (entry.ready.length > 0) return entry;
  const fallback = entry.endpoints.filter((e) => e.terminating === true);
  if (fallback.length === 0) return entry;
  return Object.freeze({ ...entry, ready: Object.freeze(fallback) });
}

function annotationRoute(
  service: KubeService,
  serviceName: string,
): RouteEntry | { problem: string } | undefined {
  const annotations = service.metadata.annotations ?? {};
  const rawPrefix = annotations[ANNOTATIONS.pathPrefix];
  if (rawPrefix === undefined) return undefined;
  const checked = checkPathPrefix(rawPrefix.trim());
  if ("problem" in checked) return { problem: `${ANNOTATIONS.pathPrefix} ${checked.problem}` };

  const auth = annotations[ANNOTATIONS.authRequired];
  if (auth !== undefined && auth !== "true" && auth !== "false") {
    return { problem: `${ANNOTATIONS.authRequired} must be "true" or "false", got "${auth}"` };
  }
  let rateLimit: RateLimitConfig | undefined;
  const limit = annotations[ANNOTATIONS.rateLimit];
  if (limit !== undefined) {
    const parsed = parseRateLimit(limit);
    if (parsed === undefined) {
      return {
        problem: `${ANNOTATIONS.rateLimit} must look like "100/60s" (also m or h), got "${limit}"`,
      };
    }
    rateLimit = { ...parsed, clientIdentifier: CONSUMER_IDENTIFIER };
  }
  const { namespace, name } = service.metadata;
  return Object.freeze({
    id: `k8s-${namespace}-${name}`,
    pathPrefix: checked.prefix,
    prefixSegments: countSegments(checked.prefix),
    serviceName,
    authRequired: auth === "true",
    forwardCredentials: false,
    stripPrefix: false,
    rateLimit,
    source: "kubernetes" as const,
  });
}

const RATE = /^\s*(\d{1,9})\s*\/\s*(\d{1,6})\s*(s|m|h)\s*$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** `"100/60s"` → 100 per 60 seconds; undefined when malformed or zero. */
export function parseRateLimit(
  value: string,
): { requestsPerPeriod: number; periodSeconds: number } | undefined {
  const match = RATE.exec(value);
  if (match === null) return undefined;
  const requests = Number(match[1]);
  const seconds = Number(match[2]) * UNIT_SECONDS[match[3] as keyof typeof UNIT_SECONDS];
  if (requests < 1 || seconds < 1 || seconds > 86_400) return undefined;
  return { requestsPerPeriod: requests, periodSeconds: seconds };
}

/** A string equal for equal tables, to skip swapping in a table that changed nothing. */
export function fingerprint(table: RoutingTable): string {
  return JSON.stringify({
    routes: table.routes,
    services: [...table.services.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1),
  });
}
