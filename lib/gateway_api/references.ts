/**
 * References across objects: ReferenceGrants, and a route's backendRef
 * resolved to the port-qualified Service name the routing table knows
 * (`<name>.<namespace>:<port>`), or to the reason it cannot be.
 *
 * @module
 */
import type { BackendObjectReference, ReferenceGrant, Secret, Service } from "./objects.ts";

/** The name a Service port goes by in the routing table: `<name>.<namespace>:<port>`. */
export function servicePortName(name: string, namespace: string, port: number | undefined): string {
  return `${name}.${namespace}:${port ?? ""}`;
}

/** What the references of one translation are looked up in. */
export class References {
  readonly #services = new Map<string, Service>();
  readonly #secrets = new Map<string, Secret>();
  readonly #grants: readonly ReferenceGrant[];

  constructor(
    objects: {
      readonly services: Iterable<Service>;
      readonly secrets?: Iterable<Secret>;
      readonly referenceGrants?: readonly ReferenceGrant[];
    },
  ) {
    for (const s of objects.services) {
      this.#services.set(`${s.metadata.namespace}/${s.metadata.name}`, s);
    }
    for (const s of objects.secrets ?? []) {
      this.#secrets.set(`${s.metadata.namespace}/${s.metadata.name}`, s);
    }
    this.#grants = objects.referenceGrants ?? [];
  }

  /** The Service of that namespace and name, if known. */
  service(namespace: string, name: string): Service | undefined {
    return this.#services.get(`${namespace}/${name}`);
  }

  /** The Secret of that namespace and name, if known. */
  secret(namespace: string, name: string): Secret | undefined {
    return this.#secrets.get(`${namespace}/${name}`);
  }

  /**
   * Whether a ReferenceGrant in `to.namespace` lets objects of `from`'s
   * kind in `from.namespace` refer to `to` (all names of its kind, or
   * that one). Same-namespace references need none.
   */
  granted(
    from: { readonly group: string; readonly kind: string; readonly namespace: string },
    to: {
      readonly group: string;
      readonly kind: string;
      readonly namespace: string;
      readonly name: string;
    },
  ): boolean {
    if (from.namespace === to.namespace) return true;
    return this.#grants.some((grant) =>
      grant.metadata.namespace === to.namespace &&
      grant.spec.from.some((f) =>
        f.group === from.group && f.kind === from.kind && f.namespace === from.namespace
      ) &&
      grant.spec.to.some((t) =>
        t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === to.name)
      )
    );
  }
}

/** Why a backendRef cannot be resolved, in the terms of the route's ResolvedRefs condition. */
export interface RefProblem {
  readonly reason: "InvalidKind" | "RefNotPermitted" | "BackendNotFound";
  readonly message: string;
}

/** A backendRef resolved: the table's service name, and the problem when it is unresolved. */
export interface ResolvedBackend {
  readonly serviceName: string;
  readonly problem?: RefProblem;
}

/**
 * Resolves a backendRef of an HTTPRoute in `routeNamespace`: a core
 * Service, in the route's namespace or granted, that exists and has the
 * port named.
 */
export function resolveBackendRef(
  ref: BackendObjectReference,
  routeNamespace: string,
  refs: References,
): ResolvedBackend {
  const group = ref.group ?? "";
  const kind = ref.kind ?? "Service";
  const namespace = ref.namespace ?? routeNamespace;
  const serviceName = servicePortName(ref.name, namespace, ref.port);
  const shown = `${namespace}/${ref.name}`;
  if ((group !== "" && group !== "core") || kind !== "Service") {
    const groupKind = group === "" ? kind : `${kind}.${group}`;
    return {
      serviceName,
      problem: {
        reason: "InvalidKind",
        message: `backendRef ${shown} is a ${groupKind}: Vanguard routes to core Services only`,
      },
    };
  }
  const from = { group: "gateway.networking.k8s.io", kind: "HTTPRoute", namespace: routeNamespace };
  if (!refs.granted(from, { group: "", kind: "Service", namespace, name: ref.name })) {
    return {
      serviceName,
      problem: {
        reason: "RefNotPermitted",
        message: `backendRef to Service ${shown} is not permitted: no ReferenceGrant in ` +
          `namespace ${namespace} lets HTTPRoutes of namespace ${routeNamespace} refer to it`,
      },
    };
  }
  const service = refs.service(namespace, ref.name);
  if (service === undefined) {
    return {
      serviceName,
      problem: { reason: "BackendNotFound", message: `Service ${shown} does not exist` },
    };
  }
  if (ref.port === undefined) {
    return {
      serviceName,
      problem: {
        reason: "BackendNotFound",
        message: `backendRef to Service ${shown} needs a port`,
      },
    };
  }
  if (!(service.spec?.ports ?? []).some((p) => p.port === ref.port)) {
    return {
      serviceName,
      problem: {
        reason: "BackendNotFound",
        message: `Service ${shown} has no port ${ref.port}`,
      },
    };
  }
  return { serviceName };
}
