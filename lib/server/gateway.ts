import { Metrics } from "../admin/metrics.ts";
import { ReloadLog } from "../admin/reload_log.ts";
import type { Config } from "../config/types.ts";
import { Balancer } from "../proxy/balancer.ts";
import { UpstreamHealth } from "../proxy/health.ts";
import { ServiceConcurrency } from "../proxy/in_flight.ts";
import { UpstreamClient } from "../proxy/upstream_client.ts";
import { type RoutingTable, tableFromConfig } from "../routing/table.ts";
import { StateSwitch, type TableView } from "../snapshot/switch.ts";
import { workerCount } from "../workers/count.ts";
import { buildRuntime, releaseRuntime, type Runtime, type RuntimeDeps } from "./runtime.ts";
import {
  type ClientHandler,
  listenFailure,
  type ProxyListener,
  startListener,
} from "./listener.ts";
import { httpsRedirect } from "./redirect.ts";
import { TlsCertificates } from "./tls.ts";

import type { Gateway, GatewayOptions } from "./gateway_types.ts";
import {
  drainListeners,
  internalErrorResponder,
  openAdmin,
  pinnedHandler,
  publishEjected,
  refreshTableGauges,
  restartOnlyFields,
  sleep,
} from "./gateway_parts.ts";
import { startWithWorkers } from "./gateway_workers.ts";

export type { Gateway, GatewayOptions } from "./gateway_types.ts";

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
  const reloads = new ReloadLog();
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
      health,
      config: () => built ? runtime.config : options.config,
      discovery: () => built ? runtime.discovery : undefined,
      reloads,
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
      const tls = new TlsCertificates(listen.tls, {
        logger,
        intervalMs: options.tlsPollIntervalMs,
      });
      tls.setSecretCertificates(live.certificates);
      live.onCertificates((pairs) => tls.setSecretCertificates(pairs));
      certificates = tls;
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
    reloads,
    get config() {
      return runtime.config;
    },
    reload,
    shutdown: () => stopping ??= shutdown(),
  };
}
