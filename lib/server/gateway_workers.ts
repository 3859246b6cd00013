/** The gateway with its proxy in worker threads (`server.workers` above 1). */
import { resolveLogFormat } from "../log/logger.ts";
import { Metrics } from "../admin/metrics.ts";
import { ReloadLog } from "../admin/reload_log.ts";
import type { Config } from "../config/types.ts";
import { type RoutingTable, tableFromConfig } from "../routing/table.ts";
import { StateSwitch, type TableView } from "../snapshot/switch.ts";
import { WorkerPool } from "../workers/pool.ts";
import { ReportedHealth } from "../workers/reported_health.ts";
import { buildControlRuntime, type ControlDeps, type ControlRuntime } from "./runtime.ts";
import { listenFailure, type ProxyListener, startListener } from "./listener.ts";
import { httpsRedirect } from "./redirect.ts";
import { TlsCertificates } from "./tls.ts";

import type { Gateway, GatewayOptions } from "./gateway_types.ts";
import {
  drainListeners,
  internalErrorResponder,
  openAdmin,
  publishEjected,
  refreshTableGauges,
  restartOnlyFields,
} from "./gateway_parts.ts";

/**
 * The gateway with the proxy in `count` worker threads (lib/workers/): this
 * thread builds a control runtime (discovery, active health checks), owns
 * the state switch whose tables the workers get, polls the certificates,
 * serves the admin listener (and the redirect listener) and drains the
 * workers at shutdown.
 */
export async function startWithWorkers(options: GatewayOptions, count: number): Promise<Gateway> {
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
  const reloads = new ReloadLog();
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
      secretCertificates: live.certificates,
      down: health.downUrls(),
    }),
    accessLog: options.accessLog ?? true,
    forwardLogs: options.workerLogs === "logger",
    logFormat: options.logFormat ?? resolveLogFormat(options.config.log.format),
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
    health,
    config: () => built ? runtime.config : options.config,
    discovery: () => built ? runtime.discovery : undefined,
    reloads,
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
    live.onCertificates((pairs) => pool.broadcast({ type: "secret_certificates", pairs }));
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
    reloads,
    get config() {
      return runtime.config;
    },
    reload,
    shutdown: () => stopping ??= shutdown(),
  };
}
