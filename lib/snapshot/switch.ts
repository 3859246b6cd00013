/**
 * The one owner of the live state. Providers (the config file, Kubernetes
 * discovery) only produce data and say when it changed; the switch builds,
 * from the runtime of the current config and the providers' objects, a new
 * snapshot (the routing table and the handler compiled for it) and swaps
 * one cell. A request pins that cell, so it runs entirely on one config and
 * one table; no provider ever touches it (Traefik's provider -> watcher ->
 * handler switcher is the model).
 *
 * In a worker thread (`server.workers` above 1) the switch is still the one
 * writer of that thread's cell, but the tables come from the main thread,
 * which runs the providers: `installTable` takes one, and `install` takes
 * the table built for the new runtime along with it.
 */
import type { Config } from "../config/types.ts";
import { buildSnapshot, fingerprint, type KubeObjects } from "../discovery/snapshot.ts";
import type { CertificatePair } from "../gateway_api/tls_secret.ts";
import type { Logger } from "../log/logger.ts";
import type { Handler } from "../pipeline/types.ts";
import { RoutingState, type RoutingTable, tableFromConfig } from "../routing/table.ts";

/** What a discovery provider offers the switch. */
export interface RouteProvider {
  /** Whether every watch has listed once: before that its objects are incomplete. */
  readonly synced: boolean;
  /** The provider's current objects (Gateway API and Ingress ones too, when watched). */
  objects(): KubeObjects;
}

/** What one config built: everything but the table. */
export interface SwitchRuntime {
  readonly config: Config;
  /** The route provider of this config, if discovery is on. */
  readonly discovery?: RouteProvider;
  /** Compiles the request handler for one table: each route's chain composed once. */
  handlerFor(table: RoutingTable): Handler;
}

/** One swap's worth of live state: a request reads it once and uses nothing else. */
export interface Snapshot<R extends SwitchRuntime> {
  readonly table: RoutingTable;
  readonly runtime: R;
  readonly handler: Handler;
}

/** Read-only view of the table in force, for the admin endpoints and gauges. */
export interface TableView {
  readonly current: RoutingTable;
  onSwap(listener: (table: RoutingTable) => void): void;
}

/** How a {@linkcode StateSwitch} starts. */
export interface SwitchOptions {
  /** The first table (a worker's, built by the main thread); absent: built from the runtime. */
  readonly table?: RoutingTable;
  /** Whether each swap is logged (`routing_table_swapped`; default true; workers leave it to the main thread). */
  readonly logSwaps?: boolean;
}

/** Holds the live snapshot; the only writer of it. */
export class StateSwitch<R extends SwitchRuntime> {
  #cell: Snapshot<R>;
  readonly #routing: RoutingState;
  readonly #logger: Logger;
  readonly #logSwaps: boolean;
  #lastPrint = "";
  #lastWarnings = new Set<string>();
  #lastRouteWarnings = new Set<string>();
  #certificates: readonly CertificatePair[] = [];
  #certificatePrint = "[]";
  readonly #certificateListeners: ((pairs: readonly CertificatePair[]) => void)[] = [];

  constructor(runtime: R, logger: Logger, options: SwitchOptions = {}) {
    this.#logger = logger;
    this.#logSwaps = options.logSwaps ?? true;
    const table = options.table ?? this.#tableFor(runtime, 1);
    this.#lastPrint = fingerprint(table);
    this.#cell = { table, runtime, handler: runtime.handlerFor(table) };
    this.#routing = new RoutingState(table);
  }

  /** The snapshot new requests pin. */
  get current(): Snapshot<R> {
    return this.#cell;
  }

  /** The table in force, read-only. */
  get routing(): TableView {
    return this.#routing;
  }

  /**
   * The certificates the Gateways' and Ingresses' TLS Secrets hold, as of
   * the table in force (for the TLS listener to serve by SNI).
   */
  get certificates(): readonly CertificatePair[] {
    return this.#certificates;
  }

  /** Called with the whole set whenever the Secret certificates change. */
  onCertificates(listener: (pairs: readonly CertificatePair[]) => void): void {
    this.#certificateListeners.push(listener);
  }

  /**
   * Installs the runtime of a new config: its table (from its config and,
   * with discovery, the provider's objects) and handler go in with it, in
   * one swap, so no request ever sees the new table with the old runtime.
   * A worker passes `table`: the one the main thread built for this runtime's config.
   */
  install(runtime: R, table?: RoutingTable): void {
    this.#swap(runtime, table ?? this.#tableFor(runtime, this.#cell.table.version + 1), true);
  }

  /**
   * A table built elsewhere (by the main thread, for the runtime in force)
   * replaces the current one: a worker thread's only way to get a new table.
   */
  installTable(table: RoutingTable): void {
    this.#swap(this.#cell.runtime, table, true);
  }

  /**
   * A provider's objects changed: rebuild the table for the runtime in
   * force. A provider that no runtime in force uses (one being replaced by a
   * reload, or not yet installed) is ignored.
   */
  refresh(from: RouteProvider): void {
    const runtime = this.#cell.runtime;
    if (runtime.discovery !== from) return;
    this.#swap(runtime, this.#tableFor(runtime, this.#cell.table.version + 1), false);
  }

  #swap(runtime: R, table: RoutingTable, always: boolean): void {
    const print = fingerprint(table);
    // An event that changed nothing the table shows (a resourceVersion bump) swaps nothing.
    if (!always && print === this.#lastPrint) return;
    this.#lastPrint = print;
    this.#cell = { table, runtime, handler: runtime.handlerFor(table) };
    this.#routing.swap(table);
    if (!this.#logSwaps) return;
    this.#logger.info("routing_table_swapped", {
      version: table.version,
      routes: table.routes.length,
      services: table.services.size,
      ready_endpoints: [...new Set(table.services.values())].reduce(
        (n, s) => n + s.ready.length,
        0,
      ),
    });
  }

  #tableFor(runtime: R, version: number): RoutingTable {
    const provider = runtime.discovery;
    if (provider === undefined || !provider.synced) return tableFromConfig(runtime.config, version);
    const { table, warnings, routeWarnings, certificates } = buildSnapshot(
      runtime.config,
      provider.objects(),
      version,
    );
    this.#report(warnings.map((w) => `${w.service}: ${w.message}`));
    this.#reportRoutes(routeWarnings);
    this.#offerCertificates(certificates);
    return table;
  }

  /** Logs each HTTPRoute or Ingress problem once while it lasts. */
  #reportRoutes(warnings: readonly string[]): void {
    const now = new Set(warnings);
    for (const warning of now) {
      if (!this.#lastRouteWarnings.has(warning)) {
        this.#logger.warn("kubernetes_route_problem", { problem: warning });
      }
    }
    this.#lastRouteWarnings = now;
  }

  #offerCertificates(pairs: readonly CertificatePair[]): void {
    const print = JSON.stringify(pairs);
    if (print === this.#certificatePrint) return;
    this.#certificatePrint = print;
    this.#certificates = pairs;
    for (const listener of this.#certificateListeners) listener(pairs);
  }

  /** Logs each invalid Service once, not on every rebuild. */
  #report(warnings: string[]): void {
    const now = new Set(warnings);
    for (const warning of now) {
      if (!this.#lastWarnings.has(warning)) {
        this.#logger.warn("discovery_service_skipped", { problem: warning });
      }
    }
    this.#lastWarnings = now;
  }
}
