/**
 * networking.k8s.io/v1 Ingress into Vanguard's routing model (contract
 * section 10): the Ingresses of an IngressClass whose `spec.controller`
 * is ours, or of no class when one of our classes is the default. Pure,
 * like translateGatewayApi().
 *
 * Ingress semantics kept: `Exact` and `Prefix` paths (Prefix per path
 * element, a trailing slash ignored: the routing model's prefix),
 * `ImplementationSpecific` read as Prefix; exact host rules before
 * wildcard ones, before rules without a host; `defaultBackend` last of
 * all. One difference, reported as a warning: an Ingress wildcard
 * `*.example.com` is one label, the routing model's wildcard one or more,
 * so `a.b.example.com` also reaches a `*.example.com` rule. A `host`
 * header regex cannot narrow it: HTTP/2 requests carry `:authority` and no
 * `Host` header, so such a check would refuse every HTTP/2 request to the
 * rule. Serving a few names too many beats refusing the right ones; the
 * exact rule needs a single-label wildcard in the routing model.
 *
 * @module
 */
import type { RouteEntry } from "../routing/route.ts";
import { checkHostPattern } from "../routing/match.ts";
import type { Backend } from "../routing/route.ts";
import type { Ingress, IngressBackend, IngressClass, Secret, Service } from "./objects.ts";
import { exactPath, type PathFields, prefixPath } from "./paths.ts";
import { References, servicePortName } from "./references.ts";
import { addCertificate, isIpAddress, olderFirst, type Translation } from "./result.ts";
import { pemPair } from "./tls_secret.ts";

/** Vanguard's IngressClass controller name. */
export const INGRESS_CONTROLLER = "vanguard.io/ingress-controller";
/** The annotation that makes an IngressClass the default one. */
export const DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class";
/** The class annotation Ingresses used before `spec.ingressClassName`. */
export const LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class";

/** The objects one Ingress translation reads. */
export interface IngressObjects {
  readonly ingresses: readonly Ingress[];
  readonly ingressClasses: readonly IngressClass[];
  /** TLS Secrets named by `spec.tls[].secretName`. */
  readonly secrets?: readonly Secret[];
}

/** How Vanguard is deployed, as the Ingress translation needs it. */
export interface IngressOptions {
  /** Default {@linkcode INGRESS_CONTROLLER}. */
  readonly controllerName?: string;
  /** Where clients reach Vanguard, for `status.loadBalancer.ingress`. */
  readonly addresses: readonly string[];
  /** The Services backends may name (a port by name is resolved here). */
  readonly services: readonly Service[];
}

/** Translates the Ingresses Vanguard serves into routes, statuses and certificates. */
export function translateIngress(objects: IngressObjects, options: IngressOptions): Translation {
  const out: Translation = { routes: [], statuses: [], certificates: [], warnings: [] };
  const controller = options.controllerName ?? INGRESS_CONTROLLER;
  const ours = objects.ingressClasses.filter((c) => c.spec?.controller === controller);
  const names = new Set(ours.map((c) => c.metadata.name));
  const defaultIsOurs = ours.some((c) =>
    c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === "true"
  );
  const refs = new References({ services: options.services, secrets: objects.secrets });
  const defaults: RouteEntry[] = [];

  for (const ingress of [...objects.ingresses].sort(olderFirst)) {
    const className = ingress.spec?.ingressClassName ??
      ingress.metadata.annotations?.[LEGACY_CLASS_ANNOTATION];
    if (className === undefined ? !defaultIsOurs : !names.has(className)) continue;
    const { namespace, name } = ingress.metadata;
    const shown = `Ingress ${namespace}/${name}`;
    const warn = (message: string) => out.warnings.push(`${shown}: ${message}`);
    const base = `ing-${namespace}.${name}`;

    (ingress.spec?.rules ?? []).forEach((rule, i) => {
      let hosts: string[] | undefined;
      if (rule.host !== undefined && rule.host !== "") {
        const checked = checkHostPattern(rule.host);
        if ("problem" in checked) return warn(`rules[${i}].host ${checked.problem}`);
        hosts = [checked.host];
      }
      (rule.http?.paths ?? []).forEach((p, j) => {
        const field = `rules[${i}].http.paths[${j}]`;
        const path = ingressPath(p.path, p.pathType);
        if ("problem" in path) return warn(`${field}: ${path.problem}`);
        const target = backendOf(p.backend, namespace, refs);
        if (target.problem !== undefined) warn(`${field}.backend: ${target.problem}`);
        out.routes.push(entry(`${base}-r${i}-p${j}`, path, hosts, target.backend));
      });
    });

    if (ingress.spec?.defaultBackend !== undefined) {
      const target = backendOf(ingress.spec.defaultBackend, namespace, refs);
      if (target.problem !== undefined) warn(`defaultBackend: ${target.problem}`);
      defaults.push(
        entry(`${base}-default`, prefixPath("/") as PathFields, undefined, target.backend),
      );
    }

    for (const [i, tls] of (ingress.spec?.tls ?? []).entries()) {
      if (tls.secretName === undefined) continue; // SNI hosts without a Secret: nothing to serve
      const secret = refs.secret(namespace, tls.secretName);
      const pair = secret === undefined
        ? { problem: `Secret ${namespace}/${tls.secretName} does not exist` }
        : pemPair(secret);
      if ("problem" in pair) {
        warn(`tls[${i}]: ${pair.problem}`);
        continue;
      }
      addCertificate(out.certificates, {
        hostnames: (tls.hosts ?? []).map((h) => h.toLowerCase()),
        ...pair,
      });
    }

    const ingressAddresses = options.addresses.map((a) =>
      isIpAddress(a) ? { ip: a } : { hostname: a }
    );
    out.statuses.push({
      kind: "Ingress",
      namespace,
      name,
      status: { loadBalancer: ingressAddresses.length > 0 ? { ingress: ingressAddresses } : {} },
    });
  }
  // A default backend catches what no rule of any Ingress matches.
  out.routes.push(...defaults);
  return out;
}

function ingressPath(path: string | undefined, pathType: string): PathFields | { problem: string } {
  if (pathType === "Exact") {
    return path === undefined ? { problem: "an Exact path needs a path" } : exactPath(path);
  }
  if (pathType === "Prefix") {
    return path === undefined ? { problem: "a Prefix path needs a path" } : prefixPath(path);
  }
  // ImplementationSpecific: Vanguard's is Prefix (a path left out is the root).
  if (pathType === "ImplementationSpecific") return prefixPath(path ?? "/");
  return { problem: `pathType ${JSON.stringify(pathType)} is not supported` };
}

/** A backend's Service port by number or by name; unresolved (500) when it is not there. */
function backendOf(
  backend: IngressBackend,
  namespace: string,
  refs: References,
): { backend: Backend; problem?: string } {
  const unresolved = (serviceName: string, problem: string) => ({
    backend: { serviceName, weight: 1, unresolved: problem },
    problem,
  });
  if (backend.service === undefined) {
    const kind = backend.resource?.kind ?? "resource";
    return unresolved("", `a ${kind} backend is not supported: Vanguard routes to Services`);
  }
  const { name, port } = backend.service;
  const shown = `Service ${namespace}/${name}`;
  const service = refs.service(namespace, name);
  const number = port?.number ??
    service?.spec?.ports?.find((p) => port?.name !== undefined && p.name === port.name)?.port;
  const serviceName = servicePortName(name, namespace, number);
  if (service === undefined) return unresolved(serviceName, `${shown} does not exist`);
  if (number === undefined) {
    return unresolved(
      serviceName,
      port?.name !== undefined
        ? `${shown} has no port named ${port.name}`
        : `the backend of ${shown} names no port`,
    );
  }
  if (!(service.spec?.ports ?? []).some((p) => p.port === number)) {
    return unresolved(serviceName, `${shown} has no port ${number}`);
  }
  return { backend: { serviceName, weight: 1 } };
}

function entry(
  id: string,
  path: PathFields,
  hosts: string[] | undefined,
  backend: Backend,
): RouteEntry {
  return Object.freeze({
    id,
    ...path,
    ...(hosts !== undefined ? { hosts } : {}),
    // An Ingress `*.example.com` is exactly one label (networking.k8s.io/v1 IngressRule.host).
    ...(hosts?.some((host) => host.startsWith("*.")) ? { oneLabelWildcard: true as const } : {}),
    serviceName: backend.serviceName,
    backends: [backend],
    preserveHost: true,
    authRequired: false,
    forwardCredentials: false,
    stripPrefix: false,
    source: "kubernetes" as const,
  });
}
