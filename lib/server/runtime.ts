/**
 * What one config builds (authentication, the limiter, discovery, the
 * configured middleware, health checks and the chain compiler) and how it is
 * built: everything is released again if a later step fails, so a failed
 * start or reload leaves nothing behind.
 *
 * With `server.workers` above 1 the work splits: the main thread builds a
 * {@linkcode ControlRuntime} (discovery and active health checks; it serves
 * no request) and each worker thread a {@linkcode Runtime} without them
 * (`controlPlane: false`).
 */
import type { Metrics } from "../admin/metrics.ts";
import { Authenticator } from "../auth/authenticator.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import type { Config } from "../config/types.ts";
import {
  discoveryEnabled,
  type DiscoveryTuning,
  KubernetesDiscovery,
} from "../discovery/kubernetes.ts";
import type { Logger } from "../log/logger.ts";
import type { RateLimitBackend } from "../middleware/rate_limit.ts";
import { CidrSet } from "../net/cidr.ts";
import type { Middleware } from "../pipeline/types.ts";
import { buildMiddleware, type PhasedMiddleware } from "../plugins/registry.ts";
import type { Balancer } from "../proxy/balancer.ts";
import type { UpstreamHealth } from "../proxy/health.ts";
import { HealthChecker } from "../proxy/health_check.ts";
import type { ServiceConcurrency } from "../proxy/in_flight.ts";
import { proxy } from "../proxy/proxy.ts";
import { settingsLookup } from "../proxy/settings.ts";
import type { UpstreamClient } from "../proxy/upstream_client.ts";
import { MemoryLimiter } from "../ratelimit/memory.ts";
import { buildRedisLimiter } from "../ratelimit/redis_backend.ts";
import type { RouteEntry } from "../routing/table.ts";
import type { SwitchRuntime } from "../snapshot/switch.ts";
import { tracing } from "../tracing/trace.ts";
import { chainFor } from "./chain.ts";
import { routesThatCannotServe } from "./route_problems.ts";

/** What one config runs in the background: discovery and active health checks. */
export interface ControlRuntime extends SwitchRuntime {
  readonly config: Config;
  readonly discovery?: KubernetesDiscovery;
  /** Active health checks of this config's static services, if any has them. */
  readonly healthChecker?: HealthChecker;
}

/** What one config builds; installed whole on reload, with the table compiled for it. */
export interface Runtime extends ControlRuntime {
  readonly authenticator: Authenticator;
  readonly limiter: RateLimitBackend & { close(): Promise<void> };
  readonly trusted: CidrSet;
  /** Releases what this config's plugin instances registered with `onClose`. */
  closePlugins(): Promise<void>;
}

/** What building a {@linkcode ControlRuntime} uses. */
export interface ControlDeps {
  readonly env: (name: string) => string | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly health: UpstreamHealth;
  readonly discoveryTuning?: Partial<DiscoveryTuning>;
  /** Told when a runtime's discovery has new objects (the state switch rebuilds the table). */
  readonly onDiscoveryChange: (discovery: KubernetesDiscovery) => void;
}

/** What building a runtime uses that outlives runtimes (shared by every config). */
export interface RuntimeDeps extends ControlDeps {
  readonly client: UpstreamClient;
  readonly balancer: Balancer;
  readonly concurrency: ServiceConcurrency;
  readonly readFile?: (path: string) => string;
  readonly now?: () => number;
  readonly jwksPolicy?: JwksCachePolicy;
  readonly accessLog?: boolean;
  readonly middleware?: readonly Middleware[];
  /**
   * Whether this runtime runs discovery and active health checks and reports
   * routes that cannot serve (default true). False in a worker thread: the
   * main thread does all three and sends the tables and the endpoints it
   * marked down.
   */
  readonly controlPlane?: boolean;
}

/** Builds what `config` needs, reusing what an unchanged part of `previous` already has. */
export async function buildRuntime(
  config: Config,
  previous: Runtime | undefined,
  deps: RuntimeDeps,
): Promise<Runtime> {
  const { env, logger, metrics, client, balancer, health, concurrency } = deps;
  // What this build starts is released again when a later step fails, so
  // a failed start or reload leaves no connection or timer behind.
  await using undo = new AsyncDisposableStack();
  const onFailure = (release: () => Promise<unknown>) =>
    undo.defer(() => release().then(() => {}, () => {}));
  const authenticator = await Authenticator.create(config.auth, {
    env,
    readFile: deps.readFile ?? ((path) => Deno.readTextFileSync(path)),
    now: deps.now ?? Date.now,
    logger,
    jwksPolicy: deps.jwksPolicy,
  });
  onFailure(() => authenticator.close());
  const sameRedis = previous !== undefined &&
    JSON.stringify(previous.config.redis) === JSON.stringify(config.redis);
  const limiter = sameRedis
    ? previous.limiter
    : await buildLimiter(config, { env, logger, metrics });
  if (!sameRedis) onFailure(() => limiter.close());
  const controlPlane = deps.controlPlane ?? true;
  const discovery = controlPlane ? await startDiscovery(config, previous, deps) : undefined;
  if (discovery !== undefined && discovery !== previous?.discovery) {
    onFailure(() => discovery.stop());
  }
  if (controlPlane) reportRoutesThatCannotServe(config, deps);
  const server = config.server;
  // What plugin instances register to release themselves: run on retirement, or on failure below.
  const plugins = new AsyncDisposableStack();
  onFailure(() => plugins.disposeAsync());
  const middlewareFor = await configuredMiddleware(config, logger, (release) => {
    plugins.defer(async () => {
      try {
        await release();
      } catch (error) {
        logger.warn("plugin_close_failed", { error });
      }
    });
  });
  const handlerFor = chainFor(
    {
      logger,
      metrics,
      accessLog: (deps.accessLog ?? true) && config.server.accessLog,
      accessLogSample: config.server.accessLogSample,
      authenticator,
      limiter,
      middlewareFor,
      tracing: optionalEnv(env, "OTEL_DENO") === "true" ? await tracing() : undefined,
      extra: deps.middleware ?? [],
    },
    proxy({
      client,
      balancer,
      metrics,
      logger,
      maxBodyBytes: server.maxBodyBytes,
      upstreamTimeoutMs: server.upstreamTimeoutMs,
      upstreamBodyTimeoutMs: server.upstreamBodyTimeoutMs,
      retryBufferBytes: server.retryBufferBytes,
      health,
      concurrency,
      settingsFor: settingsLookup(config),
    }),
  );
  const built: Runtime = {
    config,
    authenticator,
    limiter,
    discovery,
    trusted: new CidrSet(server.trustedProxies),
    handlerFor,
    closePlugins: () => plugins.disposeAsync(),
    // Last: nothing after it can fail and leave its timers running.
    healthChecker: controlPlane
      ? HealthChecker.start(config, { health, metrics, logger })
      : undefined,
  };
  undo.move(); // built: nothing to release
  return built;
}

/**
 * What the main thread builds for a config when worker threads serve:
 * discovery and active health checks, no request handling (its handler
 * compiler only satisfies the state switch, which builds the tables the
 * workers get).
 */
export async function buildControlRuntime(
  config: Config,
  previous: ControlRuntime | undefined,
  deps: ControlDeps,
): Promise<ControlRuntime> {
  const discovery = await startDiscovery(config, previous, deps);
  reportRoutesThatCannotServe(config, deps);
  return {
    config,
    discovery,
    handlerFor: () =>
      function ownerServesNothing(): Promise<Response> {
        return Promise.reject(new Error("The main thread serves no request: the workers do"));
      },
    healthChecker: HealthChecker.start(config, deps),
  };
}

/**
 * Releases what `old` holds that `next` does not reuse (plugins, the
 * authenticator, the limiter when Redis changed); its health checks and
 * discovery are stopped by the caller.
 */
export async function releaseRuntime(old: Runtime, next: Runtime | undefined): Promise<void> {
  await old.closePlugins();
  await old.authenticator.close();
  if (old.limiter !== next?.limiter) await old.limiter.close();
}

/**
 * The discovery `config` needs: the previous runtime's when it serves this
 * config too, else a new one that has synced (its failure stops it again);
 * undefined when discovery is off. A caller that fails later stops a new one.
 */
async function startDiscovery(
  config: Config,
  previous: ControlRuntime | undefined,
  deps: ControlDeps,
): Promise<KubernetesDiscovery | undefined> {
  const { env, logger, metrics } = deps;
  if (!discoveryEnabled(config, env)) return undefined;
  if (previous?.discovery?.serves(config)) return previous.discovery;
  const started: KubernetesDiscovery = await KubernetesDiscovery.start({
    config,
    // A provider only says that its objects changed; the switch ignores
    // one that the runtime in force does not use.
    onChange: () => deps.onDiscoveryChange(started),
    logger,
    metrics,
    env,
    tuning: deps.discoveryTuning,
  });
  try {
    // The first lists must succeed before this config serves. At start-up
    // within DiscoveryTuning.firstSyncTimeoutMs (10 s): a gateway that
    // cannot see its cluster says why and does not start, instead of
    // answering 503 on /readyz forever. On reload within 30 s, while the
    // old runtime keeps serving; a failure keeps it.
    await started.untilSynced(previous === undefined ? undefined : RELOAD_SYNC_TIMEOUT_MS);
  } catch (error) {
    await started.stop().catch(() => {});
    throw error;
  }
  return started;
}

function reportRoutesThatCannotServe(config: Config, deps: ControlDeps): void {
  const discoveryOn = discoveryEnabled(config, deps.env);
  for (const problem of routesThatCannotServe(config, { discoveryOn })) {
    deps.logger.warn("route_cannot_serve", {
      route: problem.route,
      reasons: problem.reasons,
      message: problem.message,
    });
  }
}

const RELOAD_SYNC_TIMEOUT_MS = 30_000;

/** An environment switch that may be read only with --allow-env: unreadable counts as unset. */
function optionalEnv(env: (name: string) => string | undefined, name: string): string | undefined {
  try {
    return env(name);
  } catch {
    return undefined;
  }
}

/**
 * The config's middleware, built once per config: for each config route
 * the global ones then its own, by phase; routes from Service annotations
 * get the global ones only. The snapshot composes them into each route's
 * chain, so no request looks anything up.
 */
async function configuredMiddleware(
  config: Config,
  logger: Logger,
  onClose: (release: () => void | Promise<void>) => void,
): Promise<(route: RouteEntry) => PhasedMiddleware> {
  const deps = { logger, trustedProxies: config.server.trustedProxies, onClose };
  const global = await buildMiddleware(config.middleware, deps);
  const byRoute = new Map<string, PhasedMiddleware>();
  for (const route of config.routes) {
    if (route.middleware.length === 0) continue;
    const own = await buildMiddleware(route.middleware, deps);
    byRoute.set(route.id, {
      beforeAuth: [...global.beforeAuth, ...own.beforeAuth],
      afterAuth: [...global.afterAuth, ...own.afterAuth],
    });
  }
  return function middlewareFor(route) {
    return (route.source === "config" ? byRoute.get(route.id) : undefined) ?? global;
  };
}

/**
 * Redis when configured (with the failure mode around it), else the
 * in-memory limiter, which is exact for this instance only.
 */
async function buildLimiter(
  config: Config,
  deps: { env: (name: string) => string | undefined; logger: Logger; metrics: Metrics },
): Promise<RateLimitBackend & { close(): Promise<void> }> {
  const local = new MemoryLimiter({
    maxBytes: config.server.memoryLimiterMaxBytes,
    metrics: deps.metrics,
  });
  if (config.redis === undefined) return local;
  return await buildRedisLimiter(config.redis, { ...deps, fallback: local });
}
