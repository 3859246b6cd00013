import { type AdminDeps, adminHandler } from "../admin/admin.ts";
import { Metrics } from "../admin/metrics.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { type DiscoveryTuning } from "../discovery/kubernetes.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import { errorResponse } from "../middleware/error_boundary.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware } from "../pipeline/types.ts";
import { Balancer } from "../proxy/balancer.ts";
import { UpstreamHealth } from "../proxy/health.ts";
import { ServiceConcurrency } from "../proxy/in_flight.ts";
import { UpstreamClient } from "../proxy/upstream_client.ts";
import { type RoutingTable, tableFromConfig } from "../routing/table.ts";
import { StateSwitch, type TableView } from "../snapshot/switch.ts";
import { workerCount } from "../workers/count.ts";
import { WorkerPool, type WorkerTuning } from "../workers/pool.ts";
import { ReportedHealth } from "../workers/reported_health.ts";
import {
  buildControlRuntime,
  buildRuntime,
  type ControlDeps,
  type ControlRuntime,
  releaseRuntime,
  type Runtime,
  type RuntimeDeps,
} from "./runtime.ts";
import { newContext } from "./context.ts";
import {
  type ClientHandler,
  listenFailure,
  type ProxyListener,
  startListener,
} from "./listener.ts";
import { httpsRedirect } from "./redirect.ts";
import { TlsCertificates } from "./tls.ts";

/** How to start a gateway; main.ts passes the real config and logger. */
export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Custom middleware, run after auth and rate limiting, just before the proxy. */
  readonly middleware?: readonly Middleware[];
  /** Overrides for the listen addresses (tests pass port 0). */
  readonly listen?: {
    port?: number;
    host?: string;
    adminPort?: number;
    adminHost?: string;
    redirectPort?: number;
  };
  /** One JSON line per request (default true). */
  readonly accessLog?: boolean;
  /** Environment lookup for secrets named in the config (default Deno.env.get). */
  readonly env?: (name: string) => string | undefined;
  /** File reader for key files (default Deno.readTextFileSync). */
  readonly readFile?: (path: string) => string;
  /** Wall clock in milliseconds (default Date.now); tests move it. */
  readonly now?: () => number;
  /** JWKS caching (default DEFAULT_JWKS_POLICY). */
  readonly jwksPolicy?: JwksCachePolicy;
  /** Kubernetes watch timing (tests shrink it). */
  readonly discoveryTuning?: Partial<DiscoveryTuning>;
  /** How often the `server.tls` files are re-read, in milliseconds (default 2000). */
  readonly tlsPollIntervalMs?: number;
  /**
   * Where worker threads (`server.workers` above 1) write their log lines:
   * `stdout` (default: each its own, tagged `worker`) or `logger` (posted
   * to this thread and written by `logger`; tests read them from memory).
   */
  readonly workerLogs?: "stdout" | "logger";
  /** Worker pool timing (tests shrink it). */
  readonly workerTuning?: Partial<WorkerTuning>;
}

/** A running gateway. */
export interface Gateway {
  readonly proxyAddr: Deno.NetAddr;
  readonly adminAddr: Deno.NetAddr;
  /** The `server.http_redirect_port` listener's address, when there is one. */
  readonly redirectAddr?: Deno.NetAddr;
  /** The table in force (read-only: the state switch is its one writer). */
  readonly routing: TableView;
  /** This thread's registry; with worker threads /metrics merges theirs into it. */
  readonly metrics: Metrics;
  /** The config now in force. */
  readonly config: Config;
  /**
   * Applies a new, already validated config without dropping a request:
   * everything is built first and swapped in at once; on any failure the
   * running config stays. Listen addresses change only on restart.
   */
  reload(config: Config): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Stops gracefully: readiness 503, no new connections, in-flight requests get the grace period. */
  shutdown(): Promise<void>;
}

/**
 * Starts the proxy and admin listeners: in this thread (`server.workers:
 * 1`, the default), or with the proxy in worker threads sharing the port
 * while this thread keeps config, discovery, health checks, certificates
 * and the admin listener.
 */
export function startGateway(options: GatewayOptions): Promise<Gateway> {
  const count = workerCount(options.config.server.workers);
  return count === 1 ? startInThisThread(options) : startWithWorkers(options, count);
}

/** The whole gateway in this thread: no worker, nothing in between. */
async function startInThisThread(options: GatewayOptions): Promise<Gateway> {
  const { logger } = options;
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const metrics = new Metrics();
  // The live state's one owner; set once the first config is built.
  let live!: StateSwitch<Runtime>;
  const routing: TableView = {
    get current() {
      return live?.routing.current ?? tableFromConfig(options.config);
    },
    onSwap: (listener) => swapListeners.push(listener),
  };
  const swapListeners: ((table: RoutingTable) => void)[] = [];
  const refreshGauges = (table: RoutingTable) => refreshTableGauges(metrics, table);
  routing.onSwap(refreshGauges);
  const client = new UpstreamClient();
  // Health and in-flight counts are keyed by endpoint URL and service name: they outlive reloads.
  const health = new UpstreamHealth();
  const balancer = new Balancer({ health });
  const concurrency = new ServiceConcurrency();
  publishEjected(metrics, routing, health);

  const runtimeDeps: RuntimeDeps = {
    env,
    logger,
    metrics,
    client,
    balancer,
    health,
    concurrency,
    readFile: options.readFile,
    now: options.now,
    jwksPolicy: options.jwksPolicy,
    discoveryTuning: options.discoveryTuning,
    accessLog: options.accessLog,
    middleware: options.middleware,
    onDiscoveryChange: (discovery) => live?.refresh(discovery),
  };
  const build = (config: Config, previous?: Runtime) => buildRuntime(config, previous, runtimeDeps);

  const listen = options.config.server;
  let draining = false;
  // Built once the first config is (with discovery: once its first sync is done).
  let runtime!: Runtime;
  let built = false;

  // The admin listener opens first, so /healthz answers (and /readyz says
  // 503) while the first build waits for the cluster.
  let adminServer: Deno.HttpServer<Deno.NetAddr>;
  try {
    adminServer = openAdmin(options, {
      metrics,
      routing,
      isReady: () => built && (runtime.discovery?.synced ?? true),
      isDraining: () => draining,
    });
  } catch (error) {
    client.close();
    throw error;
  }
  try {
    runtime = await build(options.config);
    live = new StateSwitch(runtime, logger);
    live.routing.onSwap((table) => swapListeners.forEach((listener) => listener(table)));
    refreshGauges(live.routing.current);
  } catch (error) {
    client.close();
    await adminServer.shutdown();
    throw error;
  }
  built = true;

  let proxyServer: ProxyListener;
  let opened: ProxyListener | undefined;
  let redirectServer: ProxyListener | undefined;
  let certificates: TlsCertificates | undefined;
  const onError = internalErrorResponder(logger);
  try {
    if (listen.tls !== undefined) {
      certificates = new TlsCertificates(listen.tls, {
        logger,
        intervalMs: options.tlsPollIntervalMs,
      });
    }
    const proxyAt = {
      hostname: options.listen?.host ?? listen.host,
      port: options.listen?.port ?? listen.port,
      hostKey: "server.host",
      portKey: "server.port",
    };
    // Bounded client connections (head and idle timeouts, a cap), for the
    // proxy and the redirect listener alike; see listener.ts.
    const bounded = (
      at: typeof proxyAt,
      handler: ClientHandler,
      tls?: TlsCertificates,
    ): ProxyListener => {
      try {
        return startListener({
          hostname: at.hostname,
          port: at.port,
          requestHeadTimeoutMs: listen.requestHeadTimeoutMs,
          idleTimeoutMs: listen.idleTimeoutMs,
          maxConnections: listen.maxConnections,
          logger,
          metrics,
          onError,
          tls,
        }, handler);
      } catch (error) {
        throw listenFailure(error, at);
      }
    };
    proxyServer = bounded(proxyAt, pinnedHandler(live), certificates);
    opened = proxyServer;
    const redirectPort = options.listen?.redirectPort ?? listen.httpRedirectPort;
    if (redirectPort !== undefined) {
      const tlsPort = proxyServer.addr.port;
      redirectServer = bounded(
        {
          hostname: proxyAt.hostname,
          port: redirectPort,
          hostKey: "server.host",
          portKey: "server.http_redirect_port",
        },
        httpsRedirect({ tlsPort: () => tlsPort }),
      );
    }
  } catch (error) {
    // A port in use, say: undo what build() started, then say why.
    certificates?.stop();
    await opened?.close();
    client.close();
    await runtime.healthChecker?.stop();
    await runtime.discovery?.stop();
    await runtime.authenticator.close();
    await runtime.limiter.close();
    await adminServer.shutdown();
    throw error;
  }

  logger.info("gateway_started", {
    proxy: `${proxyServer.addr.hostname}:${proxyServer.addr.port}`,
    admin: `${adminServer.addr.hostname}:${adminServer.addr.port}`,
    tls: certificates !== undefined,
    ...(redirectServer &&
      { redirect: `${redirectServer.addr.hostname}:${redirectServer.addr.port}` }),
    routes: routing.current.routes.length,
    config: options.config.file,
  });

  /** Closes what `old` had that `next` does not reuse, once in-flight requests had time to finish. */
  async function retire(old: Runtime, next: Runtime | undefined, delayMs: number): Promise<void> {
    await old.healthChecker?.stop();
    // Once shutting down, nothing waits: the drain already gave requests their time.
    if (delayMs > 0 && !draining) await sleep(delayMs, pendingSleeps);
    await releaseRuntime(old, next);
  }
  const pendingSleeps = new Set<() => void>();

  let reloading: Promise<unknown> = Promise.resolve();
  let retiring: Promise<void> = Promise.resolve();
  function reload(config: Config): Promise<{ ok: true } | { ok: false; reason: string }> {
    const attempt = reloading.then(async () => {
      const old = runtime;
      const moved = restartOnlyFields(config, old.config);
      let commitTls = () => {};
      if (certificates !== undefined && config.server.tls !== undefined) {
        try {
          commitTls = certificates.stage(config.server.tls);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          logger.error("config_reload_failed", { file: config.file, reason });
          return { ok: false as const, reason };
        }
      }
      if (moved.length > 0) {
        logger.warn("config_reload_partial", {
          message: "Listen addresses change only on restart; the rest of the new config applies",
          fields: moved,
        });
      }
      let next: Runtime;
      try {
        next = await build(config, old);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        logger.error("config_reload_failed", { file: config.file, reason });
        return { ok: false as const, reason };
      }
      if (next.discovery === old.discovery) next.discovery?.reconfigure(config);
      // One swap: the new runtime with the table built for it.
      runtime = next;
      live.install(next);
      commitTls();
      // Head and idle timeouts and the connection cap apply to open connections too.
      proxyServer.setBounds(config.server);
      redirectServer?.setBounds(config.server);
      // Checks serve no in-flight request: two checkers would only probe twice.
      await old.healthChecker?.stop();
      // The old discovery's events are ignored from now on; stop its watches.
      if (old.discovery !== undefined && old.discovery !== next.discovery) {
        await old.discovery.stop();
      }
      logger.info("config_reloaded", {
        file: config.file,
        routes: config.routes.length,
        version: routing.current.version,
      });
      // Requests that started on the old runtime may still use its limiter.
      retiring = retiring.then(() => retire(old, next, 5000));
      return { ok: true as const };
    });
    reloading = attempt;
    return attempt;
  }

  let stopping: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    draining = true;
    await reloading;
    const grace = runtime.config.server.shutdownGraceSeconds;
    logger.info("shutdown_started", { grace_seconds: grace });
    certificates?.stop();
    const drained = await drainListeners([proxyServer, redirectServer], grace, logger);
    client.close();
    for (const wake of pendingSleeps) wake();
    await retiring;
    await runtime.discovery?.stop();
    await retire(runtime, undefined, 0);
    await adminServer.shutdown();
    logger.info("shutdown_complete", { drained });
  }

  return {
    proxyAddr: proxyServer.addr,
    adminAddr: adminServer.addr,
    redirectAddr: redirectServer?.addr,
    routing,
    metrics,
    get config() {
      return runtime.config;
    },
    reload,
    shutdown: () => stopping ??= shutdown(),
  };
}

/**
 * The gateway with the proxy in `count` worker threads (lib/workers/): this
 * thread builds a control runtime (discovery, active health checks), owns
 * the state switch whose tables the workers get, polls the certificates,
 * serves the admin listener (and the redirect listener) and drains the
 * workers at shutdown.
 */
async function startWithWorkers(options: GatewayOptions, count: number): Promise<Gateway> {
  const { logger } = options;
  const injected = (["middleware", "env", "readFile", "now"] as const).filter((key) =>
    key === "middleware" ? (options.middleware?.length ?? 0) > 0 : options[key] !== undefined
  );
  if (injected.length > 0) {
    throw new Error(
      `server.workers is ${count}: GatewayOptions.${
        injected.join(", ")
      } cannot reach worker threads (only plain data crosses threads); use server.workers: 1`,
    );
  }
  const env = (name: string) => Deno.env.get(name);
  const metrics = new Metrics();
  // Marks of the active checks, sent to every worker when they change.
  const health = new ReportedHealth();
  let live!: StateSwitch<ControlRuntime>;
  let runtime!: ControlRuntime;
  let built = false;
  let draining = false;
  // Set while a reload installs: its table goes to the workers with the commit, not before.
  let installing = false;
  const swapListeners: ((table: RoutingTable) => void)[] = [];
  const routing: TableView = {
    get current() {
      return live?.routing.current ?? tableFromConfig(options.config);
    },
    onSwap: (listener) => swapListeners.push(listener),
  };
  routing.onSwap((table) => refreshTableGauges(metrics, table));
  publishEjected(metrics, routing, health);
  const deps: ControlDeps = {
    env,
    logger,
    metrics,
    health,
    discoveryTuning: options.discoveryTuning,
    onDiscoveryChange: (discovery) => live?.refresh(discovery),
  };
  const listen = options.config.server;
  const pool = new WorkerPool({
    count,
    logger,
    metrics,
    listen: {
      hostname: options.listen?.host ?? listen.host,
      port: options.listen?.port ?? listen.port,
    },
    current: () => ({
      config: runtime.config,
      table: live.routing.current.toData(),
      down: health.downUrls(),
    }),
    accessLog: options.accessLog ?? true,
    forwardLogs: options.workerLogs === "logger",
    jwksPolicy: options.jwksPolicy,
    tuning: options.workerTuning,
  });

  const adminServer = openAdmin(options, {
    metrics,
    routing,
    isReady: () => built && (runtime.discovery?.synced ?? true) && pool.serving > 0,
    isDraining: () => draining,
    gather: () => pool.snapshots(),
    workers: () => ({ serving: pool.serving, configured: pool.size }),
  });
  let certificates: TlsCertificates | undefined;
  let redirectServer: ProxyListener | undefined;
  try {
    runtime = await buildControlRuntime(options.config, undefined, deps);
    live = new StateSwitch(runtime, logger);
    live.routing.onSwap((table) => {
      swapListeners.forEach((listener) => listener(table));
      if (!installing) pool.broadcast({ type: "table", table: table.toData() });
    });
    refreshTableGauges(metrics, live.routing.current);
    health.onDownChange((urls) => pool.broadcast({ type: "down", urls }));
    if (listen.tls !== undefined) {
      certificates = new TlsCertificates(listen.tls, {
        logger,
        intervalMs: options.tlsPollIntervalMs,
      });
      // The workers read the files again; each keeps its certificates if they turn out bad.
      certificates.onChange(() => pool.broadcast({ type: "tls_changed" }));
    }
    await pool.start();
    const redirectPort = options.listen?.redirectPort ?? listen.httpRedirectPort;
    if (redirectPort !== undefined) {
      const at = {
        hostname: pool.addr.hostname,
        port: redirectPort,
        hostKey: "server.host",
        portKey: "server.http_redirect_port",
      };
      const tlsPort = pool.addr.port;
      try {
        redirectServer = startListener({
          hostname: at.hostname,
          port: at.port,
          requestHeadTimeoutMs: listen.requestHeadTimeoutMs,
          idleTimeoutMs: listen.idleTimeoutMs,
          maxConnections: listen.maxConnections,
          logger,
          metrics,
          onError: internalErrorResponder(logger),
        }, httpsRedirect({ tlsPort: () => tlsPort }));
      } catch (error) {
        throw listenFailure(error, at);
      }
    }
  } catch (error) {
    certificates?.stop();
    await pool.shutdown(0);
    await runtime?.healthChecker?.stop();
    await runtime?.discovery?.stop();
    await adminServer.shutdown();
    throw error;
  }
  built = true;

  logger.info("gateway_started", {
    proxy: `${pool.addr.hostname}:${pool.addr.port}`,
    admin: `${adminServer.addr.hostname}:${adminServer.addr.port}`,
    tls: certificates !== undefined,
    ...(redirectServer &&
      { redirect: `${redirectServer.addr.hostname}:${redirectServer.addr.port}` }),
    routes: routing.current.routes.length,
    config: options.config.file,
    workers: count,
  });

  let reloading: Promise<unknown> = Promise.resolve();
  function reload(config: Config): Promise<{ ok: true } | { ok: false; reason: string }> {
    const attempt = reloading.then(async () => {
      const old = runtime;
      const failed = (reason: string) => {
        logger.error("config_reload_failed", { file: config.file, reason });
        return { ok: false as const, reason };
      };
      const moved = restartOnlyFields(config, old.config);
      let commitTls = () => {};
      if (certificates !== undefined && config.server.tls !== undefined) {
        try {
          commitTls = certificates.stage(config.server.tls);
        } catch (error) {
          return failed(error instanceof Error ? error.message : String(error));
        }
      }
      if (moved.length > 0) {
        logger.warn("config_reload_partial", {
          message: "Listen addresses and the number of workers change only on restart; " +
            "the rest of the new config applies",
          fields: moved,
        });
      }
      // Workers build first (what fails most: secrets, plugins, Redis), then this thread
      // (discovery); only when all have built does anything change.
      const applied = await pool.exclusive(async () => {
        const prepared = await pool.prepare(config);
        if (!prepared.ok) return prepared;
        let next: ControlRuntime;
        try {
          next = await buildControlRuntime(config, old, deps);
        } catch (error) {
          pool.abort();
          return {
            ok: false as const,
            reason: error instanceof Error ? error.message : String(error),
          };
        }
        if (next.discovery === old.discovery) next.discovery?.reconfigure(config);
        runtime = next;
        installing = true;
        try {
          live.install(next);
        } finally {
          installing = false;
        }
        await pool.commit(live.routing.current.toData());
        return { ok: true as const };
      });
      if (!applied.ok) return failed(applied.reason);
      commitTls();
      redirectServer?.setBounds(config.server);
      await old.healthChecker?.stop();
      if (old.discovery !== undefined && old.discovery !== runtime.discovery) {
        await old.discovery.stop();
      }
      logger.info("config_reloaded", {
        file: config.file,
        routes: config.routes.length,
        version: routing.current.version,
        workers: pool.serving,
      });
      return { ok: true as const };
    });
    reloading = attempt;
    return attempt;
  }

  async function shutdown(): Promise<void> {
    draining = true;
    await reloading;
    const grace = runtime.config.server.shutdownGraceSeconds;
    logger.info("shutdown_started", { grace_seconds: grace, workers: pool.size });
    certificates?.stop();
    const [workersDrained, redirectDrained] = await Promise.all([
      pool.shutdown(grace),
      drainListeners([redirectServer], grace, logger),
    ]);
    await runtime.healthChecker?.stop();
    await runtime.discovery?.stop();
    await adminServer.shutdown();
    logger.info("shutdown_complete", { drained: workersDrained && redirectDrained });
  }

  let stopping: Promise<void> | undefined;
  return {
    proxyAddr: pool.addr,
    adminAddr: adminServer.addr,
    redirectAddr: redirectServer?.addr,
    routing,
    metrics,
    get config() {
      return runtime.config;
    },
    reload,
    shutdown: () => stopping ??= shutdown(),
  };
}

/**
 * The proxy listener's handler: one read of the live cell per request, so
 * a request runs entirely on the config and table it arrived under (this
 * thread's switch, or a worker's).
 */
export function pinnedHandler(live: StateSwitch<Runtime>): ClientHandler {
  return function serve(request, client) {
    const snapshot = live.current;
    const ctx = newContext(request, client, snapshot.table, snapshot.runtime.trusted);
    return snapshot.handler(ctx);
  };
}

/** Answers a request whose handler threw: logged with the error, a generic 500 to the client. */
export function internalErrorResponder(logger: Logger): (error: unknown) => Response {
  return function internalError(error) {
    logger.error("internal_error", { error });
    return errorResponse(
      { requestId: crypto.randomUUID() },
      new GatewayError(500, "internal_error", "The gateway failed to handle this request"),
    );
  };
}

/**
 * Lets `listeners` drain (no new connections, requests in flight finish)
 * for at most `graceSeconds`, then closes what is left. True when all
 * drained in time.
 */
export async function drainListeners(
  listeners: readonly (ProxyListener | undefined)[],
  graceSeconds: number,
  logger: Logger,
): Promise<boolean> {
  const open = listeners.filter((listener): listener is ProxyListener => listener !== undefined);
  if (open.length === 0) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const graceOver = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceSeconds * 1000);
  });
  const result = await Promise.race([
    Promise.all(open.map((listener) => listener.shutdown())).then(() => "drained" as const),
    graceOver,
  ]);
  clearTimeout(timer);
  if (result === "timeout") logger.warn("shutdown_grace_expired", {});
  // Requests still running after the grace period are cut off.
  for (const listener of open) await listener.close();
  return result === "drained";
}

/** Keeps `vanguard_upstream_ejected_endpoints` current: computed before each scrape. */
export function publishEjected(metrics: Metrics, routing: TableView, health: UpstreamHealth): void {
  metrics.beforeRender(() => {
    metrics.upstreamEjected.reset();
    for (const service of new Set(routing.current.services.values())) {
      const out = service.ready.filter((endpoint) => !health.available(endpoint.url)).length;
      metrics.upstreamEjected.set({ service: service.name }, out);
    }
  });
}

/** The gauges that describe the table in force: ready endpoints per service, the version. */
function refreshTableGauges(metrics: Metrics, table: RoutingTable): void {
  metrics.serviceEndpoints.reset();
  // A Service in the default namespace is in the table twice (name and name.namespace).
  for (const service of new Set(table.services.values())) {
    metrics.serviceEndpoints.set({ service: service.name }, service.ready.length);
  }
  metrics.tableVersion.set({}, table.version);
}

/** Opens the admin listener; throws what an operator needs to know when it cannot. */
function openAdmin(options: GatewayOptions, deps: AdminDeps): Deno.HttpServer<Deno.NetAddr> {
  const listen = options.config.server;
  const at = {
    hostname: options.listen?.adminHost ?? listen.adminHost,
    port: options.listen?.adminPort ?? listen.adminPort,
    hostKey: "server.admin_host",
    portKey: "server.admin_port",
  };
  try {
    return Deno.serve({ port: at.port, hostname: at.hostname, onListen() {} }, adminHandler(deps));
  } catch (error) {
    throw listenFailure(error, at);
  }
}

/** The fields of a reloaded config that only a restart applies (listen addresses, TLS on/off, workers). */
function restartOnlyFields(config: Config, old: Config): string[] {
  const moved = ["port", "host", "adminPort", "adminHost", "httpRedirectPort", "workers"].filter((
    key,
  ) =>
    config.server[key as keyof typeof config.server] !==
      old.server[key as keyof typeof old.server]
  );
  // Turning TLS on or off changes what the listener is: a restart does it.
  if ((config.server.tls === undefined) !== (old.server.tls === undefined)) moved.push("tls");
  return moved;
}

/** Resolves after `ms`, or at once when woken through `wakers` (shutdown). */
function sleep(ms: number, wakers?: Set<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      wakers?.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    wakers?.add(wake);
  });
}
