/**
 * Test helpers for the Gateway API and Ingress translation: objects from
 * YAML manifests as `kubectl apply` would take them, and a routing table
 * built from a translation, asked what a request would reach.
 */
import { parseAllDocuments } from "yaml";
import { pki } from "../tls_pki.ts";
import type {
  Condition,
  Gateway,
  GatewayClass,
  HTTPRoute,
  Ingress,
  IngressClass,
  Namespace,
  ReferenceGrant,
  Secret,
  Service,
} from "../../lib/gateway_api/objects.ts";
import type { StatusUpdate, Translation } from "../../lib/gateway_api/result.ts";
import {
  GATEWAY_CONTROLLER,
  type GatewayApiOptions,
  translateGatewayApi,
} from "../../lib/gateway_api/translate.ts";
import { requestHost } from "../../lib/routing/match.ts";
import { canonicalizePath, isRejection } from "../../lib/routing/path.ts";
import { type RouteEntry, RoutingTable, serviceEntry } from "../../lib/routing/table.ts";

/** Every object of a multi-document manifest, by kind. */
export interface Manifest {
  gatewayClasses: GatewayClass[];
  gateways: Gateway[];
  httpRoutes: HTTPRoute[];
  referenceGrants: ReferenceGrant[];
  secrets: Secret[];
  namespaces: Namespace[];
  services: Service[];
  ingresses: Ingress[];
  ingressClasses: IngressClass[];
}

const KIND_LIST: Record<string, keyof Manifest> = {
  GatewayClass: "gatewayClasses",
  Gateway: "gateways",
  HTTPRoute: "httpRoutes",
  ReferenceGrant: "referenceGrants",
  Secret: "secrets",
  Namespace: "namespaces",
  Service: "services",
  Ingress: "ingresses",
  IngressClass: "ingressClasses",
};

/** Parses YAML documents (separated by `---`) into objects by kind. */
export function manifest(...yaml: string[]): Manifest {
  const out: Manifest = {
    gatewayClasses: [],
    gateways: [],
    httpRoutes: [],
    referenceGrants: [],
    secrets: [],
    namespaces: [],
    services: [],
    ingresses: [],
    ingressClasses: [],
  };
  for (const doc of parseAllDocuments(yaml.join("\n---\n"))) {
    const object = doc.toJS();
    if (object === null || object === undefined) continue;
    const list = KIND_LIST[object.kind];
    if (list === undefined) throw new Error(`No list for kind ${object.kind}`);
    (out[list] as unknown[]).push(object);
  }
  return out;
}

/** A self-signed EC certificate and its key, made by openssl (a Secret must hold a real pair). */
async function selfSigned(name: string): Promise<{ certPem: string; keyPem: string }> {
  const certs = await pki();
  try {
    // A CA certificate is self-signed: just what a Secret in a translation test needs.
    const certPem = await certs.ca(name);
    return { certPem, keyPem: await Deno.readTextFile(`${certs.dir}/${name}-ca.key`) };
  } finally {
    await certs.remove();
  }
}

/** Two real certificate/key pairs, for the TLS Secrets of the translation tests. */
export const PAIRS = {
  one: await selfSigned("one.example.com"),
  two: await selfSigned("two.example.com"),
};

/** Base64 of text, as a Secret's `data` holds it. */
export function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** The class, the Gateway and the Services most tests share. */
export const BASE = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: vanguard, generation: 1 }
spec: { controllerName: vanguard.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: infra, generation: 3 }
spec:
  gatewayClassName: vanguard
  listeners:
    - name: http
      protocol: HTTP
      port: 8000
      allowedRoutes: { namespaces: { from: All } }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: web-v2, namespace: shop }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { ports: [{ name: http, port: 8080 }, { name: admin, port: 9090 }] }
`;

/** The options of a Vanguard on ports 8000 and 8443 at 10.0.0.9. */
export function options(overrides: Partial<GatewayApiOptions> = {}, services: Service[] = []) {
  return {
    controllerName: GATEWAY_CONTROLLER,
    listenerPorts: [8000, 8443],
    addresses: ["10.0.0.9"],
    services,
    now: "2025-01-01T00:00:00Z",
    ...overrides,
  };
}

/** Translates a manifest (BASE plus `yaml`) with the default options. */
export function translate(
  yaml: string,
  overrides: Partial<GatewayApiOptions> = {},
  base = BASE,
): Translation & { table: RoutingTable; objects: Manifest } {
  const objects = manifest(base, yaml);
  const result = translateGatewayApi(objects, options(overrides, objects.services));
  return { ...result, table: tableOf(result.routes, objects.services), objects };
}

/** A routing table of `routes`, every Service port known by its port-qualified name. */
export function tableOf(routes: readonly RouteEntry[], services: readonly Service[]): RoutingTable {
  const entries = new Map();
  let n = 1;
  for (const service of services) {
    for (const port of service.spec?.ports ?? []) {
      const name = `${service.metadata.name}.${service.metadata.namespace}:${port.port}`;
      entries.set(
        name,
        serviceEntry(name, "kubernetes", [{
          url: `http://10.1.0.${n++}:${port.port}`,
          ready: true,
        }]),
      );
    }
  }
  return new RoutingTable(routes, entries);
}

/** The route a request reaches, as the gateway's matchRoute() would ask the table. */
export function reach(
  table: RoutingTable,
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): RouteEntry | undefined {
  const parsed = new URL(url);
  const canonical = canonicalizePath(parsed.pathname);
  if (isRejection(canonical)) throw new Error(canonical.rejected);
  return table.match(canonical.path, {
    host: requestHost(url),
    method: init.method ?? "GET",
    headers: new Headers(init.headers),
    query: parsed.search,
  });
}

/** The id of the route a request reaches, or "404". */
export function routeId(
  table: RoutingTable,
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): string {
  return reach(table, url, init)?.id ?? "404";
}

/** The status update of one object. */
export function statusOf<K extends StatusUpdate["kind"]>(
  statuses: readonly StatusUpdate[],
  kind: K,
  name: string,
  namespace?: string,
): Extract<StatusUpdate, { kind: K }> | undefined {
  return statuses.find((s) =>
    s.kind === kind && s.name === name &&
    (namespace === undefined || ("namespace" in s && s.namespace === namespace))
  ) as Extract<StatusUpdate, { kind: K }> | undefined;
}

/** A condition by type. */
export function conditionOf(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** `[status, reason]` of a route's condition on its first parent of ours. */
export function routeCondition(
  result: Translation,
  route: string,
  type: string,
): [string, string] | undefined {
  const status = statusOf(result.statuses, "HTTPRoute", route);
  const c = conditionOf(
    status?.status.parents.find((p) => p.controllerName === GATEWAY_CONTROLLER)?.conditions,
    type,
  );
  return c === undefined ? undefined : [c.status, c.reason];
}
