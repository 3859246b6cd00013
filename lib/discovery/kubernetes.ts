import type { Metrics } from "../admin/metrics.ts";
import { type Config, routeServices } from "../config/types.ts";
import {
  leaseNamespace,
  replicaIdentity,
  RoutingWatches,
  StatusReporter,
  type StatusTuning,
} from "../gateway_api/provider.ts";
import type { Logger } from "../log/logger.ts";
import { type KubeAccess, loadKubeAccess } from "./kube_access.ts";
import {
  ApiStatusError,
  describeFailure,
  type KubeObject,
  ListWatch,
  type WatchTuning,
} from "./list_watch.ts";
import type { KubeEndpointSlice, KubeObjects, KubeService } from "./snapshot.ts";

/** Discovery timing; the defaults suit a cluster, tests shrink them. */
export interface DiscoveryTuning extends WatchTuning {
  /** The status Lease and writer (lease duration, renew interval, write retries). */
  readonly status?: StatusTuning;
  /** Changes within this window make one rebuild. */
  readonly coalesceMs: number;
  /**
   * At start-up, the first list of every watch must succeed within this
   * (failures retried with the watch backoff), else the gateway does not
   * start: default 10 s.
   */
  readonly firstSyncTimeoutMs: number;
}

/** The default of `DiscoveryTuning.firstSyncTimeoutMs`. */
export const DEFAULT_FIRST_SYNC_TIMEOUT_MS = 10_000;

/**
 * Whether discovery runs: as configured, else when running in a cluster
 * or when a kubeconfig is named (config key or $KUBECONFIG).
 */
export function discoveryEnabled(
  config: Config,
  env: (name: string) => string | undefined,
): boolean {
  const kubernetes = config.discovery.kubernetes;
  if (kubernetes?.enabled !== undefined) return kubernetes.enabled;
  return Boolean(kubernetes?.kubeconfig || env("KUBECONFIG") || env("KUBERNETES_SERVICE_HOST"));
}

/**
 * The namespaces to watch: the default one, and every namespace a route
 * names as `service.namespace` (unless that name is a static service).
 */
export function watchedNamespaces(config: Config): string[] {
  const namespaces = new Set([config.discovery.kubernetes?.namespace ?? "default"]);
  for (const route of config.routes) {
    for (const name of routeServices(route)) {
      if (Object.hasOwn(config.services, name) && config.services[name].urls) continue;
      const dot = name.indexOf(".");
      if (dot > 0) namespaces.add(name.slice(dot + 1));
    }
  }
  return [...namespaces].sort();
}

/**
 * Kubernetes service discovery, a provider: watches Services and
 * EndpointSlices, and the Gateway API and Ingress objects (see
 * lib/gateway_api/provider.ts), and says (`onChange`, coalesced) when they
 * changed. It only produces data: the state switch builds and swaps the
 * table; requests never wait on it. While the API server is unreachable the
 * last objects, and so the last table, keep serving. Beside it, the status
 * reporter writes the routing objects' status from the Lease holder.
 */
export class KubernetesDiscovery {
  #config: Config;
  readonly #onChange: () => void;
  readonly #logger: Logger;
  readonly #access: KubeAccess;
  readonly #services: ListWatch<KubeService & { metadata: { resourceVersion?: string } }>[];
  readonly #slices: ListWatch<KubeEndpointSlice & { metadata: { resourceVersion?: string } }>[];
  readonly #routing: RoutingWatches;
  readonly #status: StatusReporter;
  readonly #coalesceMs: number;
  readonly #firstSyncTimeoutMs: number;
  #timer: number | undefined;
  #synced = false;
  /** Removes this discovery's metric hook (on stop). */
  #unpublish: () => void = () => {};
  #stopped = false;
  #resolveSynced!: () => void;
  /** Resolves when `synced` turns true. */
  readonly firstSync = new Promise<void>((resolve) => this.#resolveSynced = resolve);

  private constructor(options: {
    config: Config;
    onChange: () => void;
    logger: Logger;
    metrics: Metrics;
    access: KubeAccess;
    env: (name: string) => string | undefined;
    tuning?: Partial<DiscoveryTuning>;
  }) {
    this.#config = options.config;
    this.#onChange = options.onChange;
    this.#logger = options.logger;
    this.#access = options.access;
    this.#coalesceMs = options.tuning?.coalesceMs ?? 20;
    this.#firstSyncTimeoutMs = options.tuning?.firstSyncTimeoutMs ?? DEFAULT_FIRST_SYNC_TIMEOUT_MS;
    const onChange = () => this.#schedule();
    const onEvent = (kind: string) => options.metrics.discoveryEvents.inc({ kind });
    const namespaces = watchedNamespaces(options.config);
    this.#services = namespaces.map((namespace) =>
      new ListWatch({
        access: options.access,
        path: `/api/v1/namespaces/${namespace}/services`,
        name: `services in ${namespace}`,
        logger: options.logger,
        onChange,
        onEvent,
        tuning: options.tuning,
      })
    );
    this.#slices = namespaces.map((namespace) =>
      new ListWatch({
        access: options.access,
        path: `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
        name: `endpointslices in ${namespace}`,
        logger: options.logger,
        onChange,
        onEvent,
        tuning: options.tuning,
      })
    );
    this.#routing = new RoutingWatches({
      access: options.access,
      namespaces,
      logger: options.logger,
      onChange,
      onEvent,
      tuning: options.tuning,
    });
    this.#status = new StatusReporter({
      access: options.access,
      config: options.config,
      watches: this.#routing,
      objects: () => this.objects(),
      leaseNamespace: leaseNamespace(options.env, options.access, options.config),
      identity: replicaIdentity(options.env),
      logger: options.logger,
      tuning: options.tuning?.status,
    });
    const watches = this.#watches();
    const metrics = options.metrics;
    this.#unpublish = metrics.beforeRender(() => {
      // A kind the cluster does not have is not a broken connection.
      const present = watches.filter((w) => !w.absent);
      metrics.discoveryConnected.set({}, present.every((w) => w.connected) ? 1 : 0);
      const last = Math.min(...present.map((w) => w.lastEventAt));
      metrics.discoveryLastEventAge.set({}, last > 0 ? (Date.now() - last) / 1000 : -1);
    });
  }

  /**
   * Loads credentials (a broken kubeconfig throws here, at start-up) and
   * starts watching; does not wait for the first sync (see `untilSynced`).
   */
  static async start(options: {
    config: Config;
    /** Called (coalesced) whenever the objects changed, and once at the first sync. */
    onChange: () => void;
    logger: Logger;
    metrics: Metrics;
    env: (name: string) => string | undefined;
    tuning?: Partial<DiscoveryTuning>;
  }): Promise<KubernetesDiscovery> {
    const access = await loadKubeAccess({
      kubeconfig: options.config.discovery.kubernetes?.kubeconfig,
      env: options.env,
    });
    const discovery = new KubernetesDiscovery({ ...options, access });
    options.logger.info("discovery_started", {
      server: access.server,
      namespaces: watchedNamespaces(options.config),
    });
    for (const watch of discovery.#watches()) watch.start();
    discovery.#status.start();
    Promise.all(discovery.#watches().map((w) => w.firstSync)).then(() => {
      if (discovery.#stopped) return;
      discovery.#synced = true;
      discovery.#resolveSynced();
      discovery.#onChange();
      discovery.#status.changed();
      const routing = discovery.#routing.objects();
      options.logger.info("discovery_synced", {
        services: discovery.#count(discovery.#services),
        endpointslices: discovery.#count(discovery.#slices),
        gateways: routing.gatewayApi.gateways.length,
        httproutes: routing.gatewayApi.httpRoutes.length,
        ingresses: routing.ingress.ingresses.length,
        absent: discovery.#watches().filter((w) => w.absent).map((w) => w.name),
      });
    });
    return discovery;
  }

  /**
   * Resolves once every watch has listed once and the first table is in;
   * rejects after `timeoutMs` (default `firstSyncTimeoutMs`) with a one-line
   * message naming the API server, where its address came from, the last
   * failure and what to change. The watches keep running either way.
   */
  async untilSynced(timeoutMs = this.#firstSyncTimeoutMs): Promise<void> {
    if (this.#synced) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const synced = await Promise.race([this.firstSync.then(() => true as const), expired]);
    clearTimeout(timer);
    if (!synced) throw new Error(this.#whyNotSynced(timeoutMs));
  }

  /** True once every watch has listed once and the first table is in. */
  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Serves a new config whose discovery settings (namespace, kubeconfig,
   * watched namespaces) are unchanged; the switch rebuilds the table when
   * it installs that config.
   */
  reconfigure(config: Config): void {
    this.#config = config;
    this.#status.reconfigure(config);
  }

  /** The objects every watch holds now. */
  objects(): KubeObjects & { services: KubeService[]; slices: KubeEndpointSlice[] } {
    return {
      services: this.#services.flatMap((w) => [...w.items.values()]),
      slices: this.#slices.flatMap((w) => [...w.items.values()]),
      ...this.#routing.objects(),
    };
  }

  /** Whether this replica holds the status Lease (and so writes status). */
  get writesStatus(): boolean {
    return this.#status.isLeader;
  }

  /** Whether a new config can reuse this discovery (same credentials and namespaces). */
  serves(config: Config): boolean {
    const a = this.#config.discovery.kubernetes;
    const b = config.discovery.kubernetes;
    return a?.namespace === b?.namespace && a?.kubeconfig === b?.kubeconfig &&
      JSON.stringify(watchedNamespaces(this.#config)) === JSON.stringify(watchedNamespaces(config));
  }

  /** Stops every watch. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#unpublish();
    await this.#status.stop();
    await Promise.all(this.#watches().map((w) => w.stop()));
    this.#access.close();
  }

  #whyNotSynced(timeoutMs: number): string {
    const access = this.#access;
    const server = `Kubernetes API server ${access.server} (from ${access.source})`;
    const pending = this.#watches().filter((w) => !w.synced);
    const failed = pending.find((w) => w.lastError !== undefined);
    const seconds = `${Math.round(timeoutMs / 100) / 10} s`;
    if (failed === undefined) {
      const watch = pending[0]?.name ?? "services";
      return `${server} did not answer the list of ${watch} within ${seconds}; ${access.advice}`;
    }
    const error = failed.lastError;
    if (!(error instanceof ApiStatusError)) {
      return `${server} is unreachable: ${describeFailure(error)}; ${access.advice}`;
    }
    const answer = describeFailure(error);
    const disable = "or set discovery.kubernetes.enabled: false";
    if (error.status === 401) {
      return `${server} refused the credentials: ${answer}; fix the user's token or certificate in ${access.source} ${disable}`;
    }
    if (error.status === 403) {
      return `${server} refused access: ${answer}; grant get, list and watch on services and discovery.k8s.io endpointslices (see k8s/rbac.yaml) ${disable}`;
    }
    return `${server} failed: ${answer}; ${access.advice}`;
  }

  /** Services and slices first: a failure to report is theirs before the optional kinds'. */
  #watches(): ListWatch<KubeObject>[] {
    return [...this.#services, ...this.#slices, ...this.#routing.watches] as ListWatch<
      KubeObject
    >[];
  }

  #count(watches: ListWatch<{ metadata: { name: string } }>[]): number {
    return watches.reduce((n, w) => n + w.items.size, 0);
  }

  #schedule(): void {
    // Until every watch has listed, the objects would miss services or endpoints.
    if (!this.#synced || this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopped) return;
      this.#onChange();
      this.#status.changed();
    }, this.#coalesceMs) as unknown as number;
  }
}
