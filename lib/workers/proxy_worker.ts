/**
 * One proxy worker thread (`server.workers` above 1): its own runtime
 * (authentication, in-memory limiter or Redis client, plugins, chains), its
 * own upstream connection pools, passive health, balancer and metrics, and
 * its own proxy listener on the shared port (SO_REUSEPORT: the kernel
 * spreads new connections over the workers). It runs no discovery and no
 * active health check: the main thread sends the tables it builds and the
 * endpoints its checks mark down, and this thread's state switch installs
 * them (still the one writer of this thread's live cell).
 *
 * @module
 */
import { Metrics } from "../admin/metrics.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { Balancer } from "../proxy/balancer.ts";
import { UpstreamHealth } from "../proxy/health.ts";
import { ServiceConcurrency } from "../proxy/in_flight.ts";
import { UpstreamClient } from "../proxy/upstream_client.ts";
import { RoutingTable, type TableData } from "../routing/table.ts";
import {
  drainListeners,
  internalErrorResponder,
  pinnedHandler,
  publishEjected,
  sleep,
} from "../server/gateway_parts.ts";
import { listenFailure, type ProxyListener, startListener } from "../server/listener.ts";
import { buildRuntime, releaseRuntime, type Runtime, type RuntimeDeps } from "../server/runtime.ts";
import { TlsCertificates } from "../server/tls.ts";
import { StateSwitch } from "../snapshot/switch.ts";
import type { FromWorker, ToWorker, WorkerStart } from "./protocol.ts";
import { downSetApplier } from "./reported_health.ts";
import { workerLogger } from "./worker_logger.ts";

/** Old runtimes are released this long after a reload, when requests that began on them are done. */
const RETIRE_DELAY_MS = 5000;

/** A started worker: it takes the main thread's messages. */
export class ProxyWorker {
  readonly #post: (message: FromWorker) => void;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #client: UpstreamClient;
  readonly #deps: RuntimeDeps;
  readonly #live: StateSwitch<Runtime>;
  readonly #listener: ProxyListener;
  readonly #certificates: TlsCertificates | undefined;
  readonly #applyDown: (urls: readonly string[]) => void;
  #runtime: Runtime;
  /** A reload's runtime, built and waiting for the commit. */
  #prepared: { id: number; runtime: Runtime; commitTls: () => void } | undefined;
  /** Reload steps and shutdown, in order (a commit never overtakes its prepare). */
  #steps: Promise<void> = Promise.resolve();
  #retiring: Promise<void> = Promise.resolve();
  readonly #wakers = new Set<() => void>();
  #stopping = false;

  private constructor(parts: {
    post: (message: FromWorker) => void;
    logger: Logger;
    metrics: Metrics;
    client: UpstreamClient;
    deps: RuntimeDeps;
    live: StateSwitch<Runtime>;
    listener: ProxyListener;
    certificates: TlsCertificates | undefined;
    applyDown: (urls: readonly string[]) => void;
    runtime: Runtime;
  }) {
    this.#post = parts.post;
    this.#logger = parts.logger;
    this.#metrics = parts.metrics;
    this.#client = parts.client;
    this.#deps = parts.deps;
    this.#live = parts.live;
    this.#listener = parts.listener;
    this.#certificates = parts.certificates;
    this.#applyDown = parts.applyDown;
    this.#runtime = parts.runtime;
  }

  /** Builds the runtime of `start.config` and listens; throws why it cannot (all released). */
  static async start(
    start: WorkerStart,
    post: (message: FromWorker) => void,
  ): Promise<ProxyWorker> {
    const { config } = start;
    const logger = workerLogger(start.index, {
      forward: start.forwardLogs ? post : undefined,
      format: start.logFormat,
    });
    const metrics = new Metrics();
    const client = new UpstreamClient();
    const health = new UpstreamHealth();
    const applyDown = downSetApplier(health);
    applyDown(start.down);
    const deps: RuntimeDeps = {
      env: (name) => Deno.env.get(name),
      logger,
      metrics,
      client,
      balancer: new Balancer({ health }),
      health,
      concurrency: new ServiceConcurrency(),
      jwksPolicy: start.jwksPolicy,
      accessLog: start.accessLog,
      controlPlane: false,
      onDiscoveryChange() {},
    };
    let runtime: Runtime;
    try {
      runtime = await buildRuntime(config, undefined, deps);
    } catch (error) {
      client.close();
      throw error;
    }
    const live = new StateSwitch(runtime, logger, {
      table: RoutingTable.fromData(start.table),
      logSwaps: false,
    });
    publishEjected(metrics, live.routing, health);
    let certificates: TlsCertificates | undefined;
    let listener: ProxyListener;
    const server = config.server;
    const at = {
      ...start.listen,
      hostKey: "server.host",
      portKey: "server.port",
    };
    try {
      if (server.tls !== undefined) {
        // Read here, polled by the main thread: it says when the files changed.
        certificates = new TlsCertificates(server.tls, { logger });
        certificates.stop();
        certificates.setSecretCertificates(start.secretCertificates);
      }
      try {
        listener = startListener({
          hostname: at.hostname,
          port: at.port,
          requestHeadTimeoutMs: server.requestHeadTimeoutMs,
          idleTimeoutMs: server.idleTimeoutMs,
          maxConnections: server.maxConnections,
          logger,
          metrics,
          onError: internalErrorResponder(logger),
          tls: certificates,
          reusePort: true,
        }, pinnedHandler(live));
      } catch (error) {
        throw listenFailure(error, at);
      }
    } catch (error) {
      client.close();
      await releaseRuntime(runtime, undefined);
      throw error;
    }
    logger.info("gateway_started", {
      proxy: `${listener.addr.hostname}:${listener.addr.port}`,
      tls: certificates !== undefined,
      routes: live.routing.current.routes.length,
    });
    post({ type: "listening", hostname: listener.addr.hostname, port: listener.addr.port });
    return new ProxyWorker({
      post,
      logger,
      metrics,
      client,
      deps,
      live,
      listener,
      certificates,
      applyDown,
      runtime,
    });
  }

  /** Acts on one message of the main thread. */
  handle(message: ToWorker): void {
    switch (message.type) {
      case "table":
        this.#live.installTable(RoutingTable.fromData(message.table));
        return;
      case "down":
        this.#applyDown(message.urls);
        return;
      case "tls_changed":
        this.#certificates?.check();
        return;
      case "secret_certificates":
        this.#certificates?.setSecretCertificates(message.pairs);
        return;
      case "metrics":
        this.#post({ type: "metrics", id: message.id, snapshot: this.#metrics.snapshot() });
        return;
      case "ping":
        this.#post({ type: "pong", id: message.id });
        return;
      case "prepare":
        this.#step(() => this.#prepare(message.id, message.config));
        return;
      case "commit":
        this.#step(() => Promise.resolve(this.#commit(message.id, message.table)));
        return;
      case "abort":
        this.#step(() => this.#abort(message.id));
        return;
      case "shutdown":
        this.#step(() => this.#shutdown(message.graceSeconds));
        return;
      case "start":
        return; // started already
    }
  }

  #step(task: () => Promise<void>): void {
    this.#steps = this.#steps.then(task).catch((error) => {
      this.#logger.error("internal_error", { error });
    });
  }

  async #prepare(id: number, config: Config): Promise<void> {
    if (this.#stopping) return;
    if (this.#prepared !== undefined) await this.#abort(this.#prepared.id);
    let commitTls = () => {};
    let next: Runtime;
    try {
      if (this.#certificates !== undefined && config.server.tls !== undefined) {
        commitTls = this.#certificates.stage(config.server.tls);
      }
      next = await buildRuntime(config, this.#runtime, this.#deps);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#post({ type: "prepare_failed", id, reason });
      return;
    }
    this.#prepared = { id, runtime: next, commitTls };
    this.#post({ type: "prepared", id });
  }

  #commit(id: number, table: TableData): void {
    const prepared = this.#prepared;
    if (prepared === undefined || prepared.id !== id) return;
    this.#prepared = undefined;
    const old = this.#runtime;
    const next = prepared.runtime;
    // One swap: the new runtime with the table the main thread built for its config.
    this.#runtime = next;
    this.#live.install(next, RoutingTable.fromData(table));
    prepared.commitTls();
    this.#listener.setBounds(next.config.server);
    this.#post({ type: "committed", id });
    // Requests that started on the old runtime may still use its limiter.
    this.#retiring = this.#retiring.then(async () => {
      if (!this.#stopping) await sleep(RETIRE_DELAY_MS, this.#wakers);
      await releaseRuntime(old, next);
    });
  }

  async #abort(id: number): Promise<void> {
    const prepared = this.#prepared;
    if (prepared === undefined || prepared.id !== id) return;
    this.#prepared = undefined;
    // What the prepared runtime has that the one in force does not share.
    await releaseRuntime(prepared.runtime, this.#runtime);
  }

  async #shutdown(graceSeconds: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#prepared !== undefined) await this.#abort(this.#prepared.id);
    const drained = await drainListeners([this.#listener], graceSeconds, this.#logger);
    this.#client.close();
    for (const wake of this.#wakers) wake();
    await this.#retiring;
    await releaseRuntime(this.#runtime, undefined);
    this.#logger.info("worker_stopped", { drained });
    this.#logger.flush();
    this.#post({ type: "stopped", drained });
  }
}
