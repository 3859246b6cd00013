/**
 * What one config builds (authentication, the limiter, discovery, the
 * configured middleware, health checks and the chain compiler) and how it is
 * built: everything is released again if a later step fails, so a failed
 * start or reload leaves nothing behind.
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
import { FailoverLimiter } from "../ratelimit/failover.ts";
import { MemoryLimiter } from "../ratelimit/memory.ts";
import { redisAddress, RedisLimiter } from "../ratelimit/redis.ts";
import type { RouteEntry } from "../routing/table.ts";
import type { SwitchRuntime } from "../snapshot/switch.ts";
import { tracing } from "../tracing/trace.ts";
import { chainFor } from "./chain.ts";
import { routesThatCannotServe } from "./route_problems.ts";

/** What one config builds; installed whole on reload, with the table compiled for it. */
export interface Runtime extends SwitchRuntime {
  readonly config: Config;
  readonly authenticator: Authenticator;
  readonly limiter: RateLimitBackend & { close(): Promise<void> };
  readonly discovery?: KubernetesDiscovery;
  readonly trusted: CidrSet;
  /** Active health checks of this config's static services, if any has them. */
  readonly healthChecker?: HealthChecker;
  /** Releases what this config's plugin instances registered with `onClose`. */
  closePlugins(): Promise<void>;
}

/** What building a runtime uses that outlives runtimes (shared by every config). */
export interface RuntimeDeps {
  readonly env: (name: string) => string | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly client: UpstreamClient;
  readonly balancer: Balancer;
  readonly health: UpstreamHealth;
  readonly concurrency: ServiceConcurrency;
  readonly readFile?: (path: string) => string;
  readonly now?: () => number;
  readonly jwksPolicy?: JwksCachePolicy;
  readonly discoveryTuning?: Partial<DiscoveryTuning>;
  readonly accessLog?: boolean;
  readonly middleware?: readonly Middleware[];
  /** Told when a runtime's discovery has new objects (the state switch rebuilds the table). */
  readonly onDiscoveryChange: (discovery: KubernetesDiscovery) => void;
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
  const discoveryOn = discoveryEnabled(config, env);
  let discovery: KubernetesDiscovery | undefined;
  if (discoveryOn) {
    if (previous?.discovery?.serves(config)) {
      discovery = previous.discovery;
    } else {
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
      onFailure(() => started.stop());
      // The first lists must succeed before this config serves. At start-up
      // within DiscoveryTuning.firstSyncTimeoutMs (10 s): a gateway that
      // cannot see its cluster says why and does not start, instead of
      // answering 503 on /readyz forever. On reload within 30 s, while the
      // old runtime keeps serving; a failure keeps it.
      await started.untilSynced(previous === undefined ? undefined : RELOAD_SYNC_TIMEOUT_MS);
      discovery = started;
    }
  }
  for (const problem of routesThatCannotServe(config, { discoveryOn })) {
    logger.warn("route_cannot_serve", {
      route: problem.route,
      reasons: problem.reasons,
      message: problem.message,
    });
  }
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
    healthChecker: HealthChecker.start(config, { health, metrics, logger }),
  };
  undo.move(); // built: nothing to release
  return built;
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
  const redis = config.redis;
  if (redis === undefined) return local;
  const url = redis.url ?? deps.env(redis.urlEnv!) ?? "";
  // Logged as host:port only: the URL may carry the password.
  const address = redisAddress(url);
  let connectedOnce = false;
  // Connection events may come before the failover limiter exists.
  let failover: FailoverLimiter | undefined = undefined;
  let earlyFailure: string | undefined;
  const primary = await RedisLimiter.create({
    url,
    timeoutMs: redis.timeoutMs,
    onState(state, reason) {
      if (state === "ready") {
        deps.logger.info("redis_connected", { address, reconnect: connectedOnce });
        connectedOnce = true;
        failover?.reportAvailable();
      } else if (failover !== undefined) {
        failover.reportUnavailable(reason ?? "connection failed");
      } else {
        earlyFailure ??= reason;
      }
    },
  });
  failover = new FailoverLimiter({
    primary,
    fallback: local,
    mode: redis.failureMode,
    logger: deps.logger,
    metrics: deps.metrics,
    address,
  });
  if (earlyFailure !== undefined) failover.reportUnavailable(earlyFailure);
  // A short, bounded wait: a Redis that refuses is reported before
  // gateway_started (not at the first request), and a reachable one is ready
  // for the first request. The gateway starts either way: failure_mode applies.
  await primary.firstAttempt(Math.max(1000, redis.timeoutMs) + 250);
  return failover;
}
