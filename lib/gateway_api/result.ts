/**
 * What a translation of Kubernetes routing objects produces: routes for
 * the routing table, the status each object should have, the certificates
 * to serve, and warnings. Plain data, so the caller can compare it with
 * the last one and do nothing when nothing changed.
 *
 * @module
 */
import type { RouteEntry } from "../routing/route.ts";
import type {
  GatewayClassStatus,
  GatewayStatus,
  HTTPRouteStatus,
  IngressStatus,
  ObjectMeta,
} from "./objects.ts";
import type { CertificatePair } from "./tls_secret.ts";

/**
 * The status one object should have, whole, for its `/status`
 * subresource. The writer compares it with the object's current status
 * and writes only when they differ.
 */
export type StatusUpdate =
  | { readonly kind: "GatewayClass"; readonly name: string; readonly status: GatewayClassStatus }
  | {
    readonly kind: "Gateway";
    readonly namespace: string;
    readonly name: string;
    readonly status: GatewayStatus;
  }
  | {
    readonly kind: "HTTPRoute";
    readonly namespace: string;
    readonly name: string;
    readonly status: HTTPRouteStatus;
  }
  | {
    readonly kind: "Ingress";
    readonly namespace: string;
    readonly name: string;
    readonly status: IngressStatus;
  };

/** The outcome of one translation. */
export interface Translation {
  /**
   * In precedence tie-break order (the routing table's last tie-break is
   * this order): older objects first, then by namespace/name, then rule
   * and match order.
   */
  readonly routes: RouteEntry[];
  readonly statuses: StatusUpdate[];
  readonly certificates: CertificatePair[];
  /** Problems that have no status field to go to; never a Secret's content. */
  readonly warnings: string[];
}

/**
 * Orders objects as the Gateway API breaks precedence ties: the oldest
 * creationTimestamp first (none: last), then `namespace/name`.
 */
export function olderFirst(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  const age = created(a.metadata) - created(b.metadata);
  if (age !== 0 && !Number.isNaN(age)) return age;
  const ka = `${a.metadata.namespace ?? ""}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function created(metadata: ObjectMeta): number {
  const time = metadata.creationTimestamp === undefined
    ? Number.NaN
    : Date.parse(metadata.creationTimestamp);
  return Number.isNaN(time) ? Number.MAX_SAFE_INTEGER : time;
}

/** Whether an address is an IP address (else it is a host name). */
export function isIpAddress(address: string): boolean {
  return address.includes(":") || /^\d{1,3}(\.\d{1,3}){3}$/.test(address);
}

/** Adds a certificate unless an equal one is there. */
export function addCertificate(list: CertificatePair[], pair: CertificatePair): void {
  const key = JSON.stringify(pair);
  if (!list.some((known) => JSON.stringify(known) === key)) list.push(pair);
}
