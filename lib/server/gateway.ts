import { adminHandler } from "../admin/admin.ts";
import { Metrics } from "../admin/metrics.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { Authenticator } from "../auth/authenticator.ts";
import {
  discoveryEnabled,
  type DiscoveryTuning,
  KubernetesDiscovery,
} from "../discovery/kubernetes.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import { authenticate } from "../middleware/auth.ts";
import { rateLimit, type RateLimitBackend } from "../middleware/rate_limit.ts";
import { FailoverLimiter } from "../ratelimit/failover.ts";
import { MemoryLimiter } from "../ratelimit/memory.ts";
import { RedisLimiter } from "../ratelimit/redis.ts";
import { errorBoundary, errorResponse } from "../middleware/error_boundary.ts";
import { observe } from "../middleware/observe.ts";
import { matchRoute } from "../middleware/route.ts";
import { CidrSet } from "../net/cidr.ts";
import { clientAddress } from "../net/client_address.ts";
import { compose } from "../pipeline/compose.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Handler, Middleware, RequestContext } from "../pipeline/types.ts";
import { Balancer } from "../proxy/balancer.ts";
import { requestIdFor } from "../proxy/headers.ts";
import { proxy } from "../proxy/proxy.ts";
import { UpstreamClient } from "../proxy/upstream_client.ts";
import { RoutingState, type RoutingTable, tableFromConfig } from "../routing/table.ts";

/** How to start a gateway; main.ts passes the real config and logger. */
export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Custom middleware, run after auth and rate limiting, just before the proxy. */
  readonly middleware?: readonly Middleware[];
  /** Overrides for the listen addresses (tests pass port 0). */
  readonly listen?: { port?: number; host?: string; adminPort?: number; adminHost?: string };
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
}

/** A running gateway. */
export interface Gateway {
  readonly proxyAddr: Deno.NetAddr;
  readonly adminAddr: Deno.NetAddr;
  readonly routing: RoutingState;
  readonly metrics: Metrics;
  /** Stops gracefully: readiness 503, no new connections, in-flight requests get the grace period. */
  shutdown(): Promise<void>;
}

/**
 * Declares the chain, in order. This is the one place that says what runs
 * before what; a custom middleware goes in `extra`.
 */
export function buildChain(
  parts: {
    logger: Logger;
    metrics: Metrics;
    accessLog: boolean;
    authenticator: Authenticator;
    limiter: RateLimitBackend;
    extra: readonly Middleware[];
  },
  terminal: Handler,
): Handler {
  return compose([
    observe(parts),
    errorBoundary(parts),
    matchRoute(),
    authenticate(parts),
    rateLimit(parts),
    ...parts.extra,
  ], terminal);
}

/** Starts the proxy and admin listeners. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, logger } = options;
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const authenticator = await Authenticator.create(config.auth, {
    env,
    readFile: options.readFile ?? ((path) => Deno.readTextFileSync(path)),
    now: options.now ?? Date.now,
    logger,
    jwksPolicy: options.jwksPolicy,
  });
  const server = config.server;
  const metrics = new Metrics();
  const limiter = await buildLimiter(config, { env, logger, metrics });
  const routing = new RoutingState(tableFromConfig(config));
  const refreshGauges = (table: RoutingTable) => {
    metrics.serviceEndpoints.reset();
    // A Service in the default namespace is in the table twice (name and name.namespace).
    for (const service of new Set(table.services.values())) {
      metrics.serviceEndpoints.set({ service: service.name }, service.ready.length);
    }
    metrics.tableVersion.set({}, table.version);
  };
  refreshGauges(routing.current);
  routing.onSwap(refreshGauges);
  const discovery = discoveryEnabled(config, env)
    ? await KubernetesDiscovery.start({
      config,
      routing,
      logger,
      metrics,
      env,
      tuning: options.discoveryTuning,
    })
    : undefined;

  const client = new UpstreamClient();
  const trusted = new CidrSet(server.trustedProxies);
  const handler = buildChain(
    {
      logger,
      metrics,
      accessLog: options.accessLog ?? true,
      authenticator,
      limiter,
      extra: options.middleware ?? [],
    },
    proxy({
      client,
      balancer: new Balancer(),
      metrics,
      logger,
      maxBodyBytes: server.maxBodyBytes,
      upstreamTimeoutMs: server.upstreamTimeoutMs,
    }),
  );

  let draining = false;
  const proxyServer = Deno.serve({
    port: options.listen?.port ?? server.port,
    hostname: options.listen?.host ?? server.host,
    onListen() {},
    onError(error) {
      logger.error("internal_error", { error });
      return errorResponse(
        { requestId: crypto.randomUUID() },
        new GatewayError(500, "internal_error", "The gateway failed to handle this request"),
      );
    },
  }, function serve(request, info) {
    const ctx = newContext(request, info.remoteAddr, routing.current, trusted);
    return handler(ctx);
  });

  const adminServer = Deno.serve(
    {
      port: options.listen?.adminPort ?? server.adminPort,
      hostname: options.listen?.adminHost ?? server.adminHost,
      onListen() {},
    },
    adminHandler({
      metrics,
      routing,
      isReady: () => discovery?.synced ?? true,
      isDraining: () => draining,
    }),
  );

  logger.info("gateway_started", {
    proxy: `${proxyServer.addr.hostname}:${proxyServer.addr.port}`,
    admin: `${adminServer.addr.hostname}:${adminServer.addr.port}`,
    routes: routing.current.routes.length,
    config: config.file,
  });

  let stopping: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    draining = true;
    logger.info("shutdown_started", { grace_seconds: server.shutdownGraceSeconds });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), server.shutdownGraceSeconds * 1000);
    });
    const result = await Promise.race([
      proxyServer.shutdown().then(() => "drained" as const),
      graceOver,
    ]);
    clearTimeout(timer);
    if (result === "timeout") logger.warn("shutdown_grace_expired", {});
    client.close();
    await discovery?.stop();
    await authenticator.close();
    await limiter.close();
    await adminServer.shutdown();
    logger.info("shutdown_complete", { drained: result === "drained" });
  }

  return {
    proxyAddr: proxyServer.addr,
    adminAddr: adminServer.addr,
    routing,
    metrics,
    shutdown: () => stopping ??= shutdown(),
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
  const local = new MemoryLimiter();
  const redis = config.redis;
  if (redis === undefined) return local;
  const url = redis.url ?? deps.env(redis.urlEnv!) ?? "";
  let connectedOnce = false;
  const primary = await RedisLimiter.create({
    url,
    timeoutMs: redis.timeoutMs,
    onState(state) {
      if (state === "ready") {
        deps.logger.info("redis_connected", { reconnect: connectedOnce });
        connectedOnce = true;
      }
    },
  });
  return new FailoverLimiter({
    primary,
    fallback: local,
    mode: redis.failureMode,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}

function newContext(
  request: Request,
  peer: Deno.NetAddr,
  table: RoutingTable,
  trusted: CidrSet,
): RequestContext {
  const url = request.url;
  // request.url keeps the request target as sent (dot-segments, escapes and
  // all); the WHATWG URL parser would resolve them before we could refuse them.
  const authorityStart = url.indexOf("://") + 3;
  const pathStart = url.indexOf("/", authorityStart);
  let rawPath = "/";
  let query = "";
  if (pathStart !== -1) {
    const hash = url.indexOf("#", pathStart);
    const end = hash === -1 ? url.length : hash;
    const q = url.indexOf("?", pathStart);
    if (q !== -1 && q < end) {
      rawPath = url.slice(pathStart, q);
      query = url.slice(q, end);
    } else {
      rawPath = url.slice(pathStart, end);
    }
  }
  const peerAddress = peer.hostname;
  const peerTrusted = trusted.contains(peerAddress);
  return {
    request,
    startedAt: performance.now(),
    requestId: requestIdFor(request.headers.get("x-request-id")),
    peerAddress,
    peerTrusted,
    clientAddress: peerTrusted
      ? clientAddress(peerAddress, trusted, request.headers.get("x-forwarded-for"))
      : peerAddress,
    table,
    rawPath,
    query,
    path: rawPath,
    encodedPath: rawPath,
    bytesIn: 0,
  };
}
