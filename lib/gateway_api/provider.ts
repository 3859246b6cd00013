/**
 * The Gateway API and Ingress side of Kubernetes discovery: list/watch of
 * GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants, Ingresses,
 * IngressClasses, Namespaces and TLS Secrets ({@linkcode RoutingWatches}),
 * and the status those objects should have, written by the replica that
 * holds the status Lease ({@linkcode StatusReporter}).
 *
 * Like the Service and EndpointSlice watches it only produces data: the
 * objects go to the state switch with the rest (`KubernetesDiscovery.objects()`),
 * which translates them into routes. A kind the API server does not serve
 * (404: the CRDs are not installed) or does not let us read (403) is
 * skipped, logged once, and asked for again now and then.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import type { KubeAccess } from "../discovery/kube_access.ts";
import { type KubeObject, ListWatch, type WatchTuning } from "../discovery/list_watch.ts";
import { type KubeObjects, translateRouting } from "../discovery/snapshot.ts";
import type { Logger } from "../log/logger.ts";
import type { IngressObjects } from "./ingress.ts";
import { LeaderElection, type LeaseTuning } from "./lease.ts";
import { PublishedAddresses, publishedServiceRef } from "./published_addresses.ts";
import type {
  Gateway,
  GatewayClass,
  HTTPRoute,
  Ingress,
  IngressClass,
  Namespace,
  ReferenceGrant,
  Secret,
} from "./objects.ts";
import type { StatusUpdate } from "./result.ts";
import { type StatusTarget, StatusWriter, type StatusWriterTuning } from "./status_writer.ts";
import type { GatewayApiObjects } from "./translate.ts";

type Watched<T> = T & KubeObject;

const GATEWAY_V1 = "/apis/gateway.networking.k8s.io/v1";
const NETWORKING_V1 = "/apis/networking.k8s.io/v1";

/** The TLS Secrets only: the others are none of the gateway's business. */
const TLS_SECRETS = `fieldSelector=${encodeURIComponent("type=kubernetes.io/tls")}`;

/** Watches every object the Gateway API and Ingress translations read. */
export class RoutingWatches {
  readonly #gatewayClasses: ListWatch<Watched<GatewayClass>>;
  readonly #ingressClasses: ListWatch<Watched<IngressClass>>;
  readonly #namespaceObjects: ListWatch<Watched<Namespace>>;
  readonly #gateways: ListWatch<Watched<Gateway>>[];
  readonly #httpRoutes: ListWatch<Watched<HTTPRoute>>[];
  readonly #grants: ListWatch<Watched<ReferenceGrant>>[];
  readonly #ingresses: ListWatch<Watched<Ingress>>[];
  readonly #secrets: ListWatch<Watched<Secret>>[];

  constructor(options: {
    access: KubeAccess;
    /** Where Gateways, HTTPRoutes, ReferenceGrants, Ingresses and Secrets are watched. */
    namespaces: readonly string[];
    logger: Logger;
    onChange: () => void;
    onEvent?: (type: string) => void;
    tuning?: Partial<WatchTuning>;
  }) {
    const watch = <T extends KubeObject>(path: string, name: string, query?: string) =>
      new ListWatch<T>({
        access: options.access,
        path,
        name,
        logger: options.logger,
        onChange: options.onChange,
        onEvent: options.onEvent,
        query,
        optional: true,
        tuning: options.tuning,
      });
    const each = <T extends KubeObject>(
      plural: string,
      base: string,
      query?: string,
    ) =>
      options.namespaces.map((ns) =>
        watch<T>(
          `${base}/namespaces/${encodeURIComponent(ns)}/${plural}`,
          `${plural} in ${ns}`,
          query,
        )
      );
    this.#gatewayClasses = watch(`${GATEWAY_V1}/gatewayclasses`, "gatewayclasses");
    this.#ingressClasses = watch(`${NETWORKING_V1}/ingressclasses`, "ingressclasses");
    this.#namespaceObjects = watch("/api/v1/namespaces", "namespaces");
    this.#gateways = each("gateways", GATEWAY_V1);
    this.#httpRoutes = each("httproutes", GATEWAY_V1);
    this.#grants = each("referencegrants", "/apis/gateway.networking.k8s.io/v1beta1");
    this.#ingresses = each("ingresses", NETWORKING_V1);
    this.#secrets = each("secrets", "/api/v1", TLS_SECRETS);
  }

  /** Every watch, for starting, stopping and the first-sync gate. */
  get watches(): ListWatch<KubeObject>[] {
    return [
      this.#gatewayClasses,
      this.#ingressClasses,
      this.#namespaceObjects,
      ...this.#gateways,
      ...this.#httpRoutes,
      ...this.#grants,
      ...this.#ingresses,
      ...this.#secrets,
    ] as ListWatch<KubeObject>[];
  }

  /** What the watches hold now, in the shapes the translations take. */
  objects(): { gatewayApi: GatewayApiObjects; ingress: IngressObjects } {
    const all = <T extends KubeObject>(watches: ListWatch<T>[]) =>
      watches.flatMap((w) => [...w.items.values()]);
    const secrets = all(this.#secrets);
    return {
      gatewayApi: {
        gatewayClasses: all([this.#gatewayClasses]),
        gateways: all(this.#gateways),
        httpRoutes: all(this.#httpRoutes),
        referenceGrants: all(this.#grants),
        secrets,
        namespaces: all([this.#namespaceObjects]),
      },
      ingress: {
        ingresses: all(this.#ingresses),
        ingressClasses: all([this.#ingressClasses]),
        secrets,
      },
    };
  }

  /** The object a status update is for, as the watch holds it now. */
  find(update: StatusUpdate): StatusTarget | undefined {
    const namespace = "namespace" in update ? update.namespace : "";
    const key = `${namespace}/${update.name}`;
    const watches: ListWatch<KubeObject>[] = update.kind === "GatewayClass"
      ? [this.#gatewayClasses]
      : update.kind === "Gateway"
      ? this.#gateways
      : update.kind === "HTTPRoute"
      ? this.#httpRoutes
      : this.#ingresses;
    for (const watch of watches) {
      const found = watch.items.get(key);
      if (found !== undefined) return found as StatusTarget;
    }
    return undefined;
  }
}

/** Timing of the status side; tests shrink it. */
export type StatusTuning = Partial<LeaseTuning> & Partial<StatusWriterTuning> & {
  /** How often the publish Service is read again (default 30 s). */
  readonly addressRefreshMs?: number;
};

/**
 * Writes the status of the Gateway API and Ingress objects Vanguard serves,
 * from the replica that holds the Lease `vanguard-gateway-status` only.
 * `changed()` after every change of the objects (the provider's coalesced
 * onChange): it translates them again and writes what differs.
 */
export class StatusReporter {
  readonly #election: LeaderElection;
  readonly #writer: StatusWriter;
  readonly #objects: () => KubeObjects;
  readonly #addresses: PublishedAddresses;
  #config: Config;
  #ready = false;

  constructor(options: {
    access: KubeAccess;
    config: Config;
    watches: RoutingWatches;
    /** Everything the provider holds (Services included: backendRefs resolve against them). */
    objects: () => KubeObjects;
    /** Where the Lease lives: the gateway's own namespace. */
    leaseNamespace: string;
    /** holderIdentity: the pod name. */
    identity: string;
    logger: Logger;
    tuning?: StatusTuning;
  }) {
    this.#config = options.config;
    this.#objects = options.objects;
    const tuning = options.tuning ?? {};
    this.#addresses = new PublishedAddresses({
      access: options.access,
      service: publishedServiceRef(
        options.config.discovery.kubernetes?.publishService ?? "vanguard",
        options.leaseNamespace,
      ),
      logger: options.logger,
      refreshMs: tuning.addressRefreshMs,
      onChange: () => {
        if (this.#ready) this.changed();
      },
    });
    this.#writer = new StatusWriter({
      access: options.access,
      logger: options.logger,
      isLeader: () => this.#election.isLeader,
      current: (update) => options.watches.find(update),
      tuning,
    });
    this.#election = new LeaderElection({
      access: options.access,
      namespace: options.leaseNamespace,
      identity: options.identity,
      logger: options.logger,
      tuning,
      // Not before the first sync: a status from half-listed objects would be wrong.
      onChange: (leader) => {
        // Only the writer needs the addresses.
        if (leader) this.#addresses.start();
        else this.#addresses.stop();
        if (leader && this.#ready) this.changed();
      },
    });
  }

  /** Whether this replica writes status now. */
  get isLeader(): boolean {
    return this.#election.isLeader;
  }

  /** The writer, for tests (`idle()`, `writes`). */
  get writer(): StatusWriter {
    return this.#writer;
  }

  /** Starts the election; statuses are written after the first `changed()` (the first sync). */
  start(): void {
    this.#election.start();
  }

  /** A new config (listener port) changes what status says. */
  reconfigure(config: Config): void {
    this.#config = config;
    if (this.#ready) this.changed();
  }

  /** The objects changed (or this replica just became leader): write what now differs. */
  changed(): void {
    this.#ready = true;
    if (!this.#election.isLeader) return;
    const translated = translateRouting(this.#config, this.#objects(), {
      now: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      addresses: this.#addresses.current,
    });
    this.#writer.sync(translated.statuses);
  }

  /** Stops writing and gives the Lease up. */
  async stop(): Promise<void> {
    this.#addresses.stop();
    await this.#writer.stop();
    await this.#election.stop();
  }
}

/**
 * holderIdentity of this replica: the pod name ($HOSTNAME in a pod), else
 * a random one (two gateways on one machine must not share a name).
 */
export function replicaIdentity(env: (name: string) => string | undefined): string {
  const host = optional(env, "HOSTNAME");
  return host !== undefined && host !== "" ? host : `vanguard-${crypto.randomUUID().slice(0, 8)}`;
}

/** The Lease's namespace: $POD_NAMESPACE, else the credentials' (in a pod: the service account's), else the discovery namespace. */
export function leaseNamespace(
  env: (name: string) => string | undefined,
  access: KubeAccess,
  config: Config,
): string {
  return optional(env, "POD_NAMESPACE") || access.namespace ||
    config.discovery.kubernetes?.namespace || "default";
}

function optional(env: (name: string) => string | undefined, name: string): string | undefined {
  try {
    return env(name);
  } catch {
    return undefined; // not readable under --allow-env=LIST
  }
}
