/**
 * The Redis limiter a `redis:` section asks for, with its failure mode
 * around it: the target resolved (URL or passwords read from the
 * environment), connection events turned into log lines and metrics.
 *
 * @module
 */
import type { Metrics } from "../admin/metrics.ts";
import type { RedisConfig, RedisNodeConfig } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { FailoverLimiter } from "./failover.ts";
import type { Limiter } from "./limiter.ts";
import { RedisLimiter } from "./redis.ts";
import type { RedisEndpoint, RedisTarget } from "./redis_connection.ts";

/** What {@linkcode buildRedisLimiter} uses. */
export interface RedisBackendDeps {
  /** Reads an environment variable (`url_env`, `password_env`). */
  readonly env: (name: string) => string | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The in-memory limiter for `failure_mode: local`. */
  readonly fallback: Limiter;
}

/** The connection target a `redis:` section describes, secrets read from the environment. */
export function redisTarget(
  config: RedisConfig,
  env: (name: string) => string | undefined,
): RedisTarget {
  const secret = (name: string | undefined) => name === undefined ? undefined : env(name);
  if (config.cluster !== undefined) {
    const { nodes, passwordEnv } = config.cluster;
    return {
      cluster: {
        nodes: nodes.map(endpoint),
        tls: nodes[0]?.tls ?? false,
        password: secret(passwordEnv),
      },
    };
  }
  if (config.sentinel !== undefined) {
    const { sentinels, name, passwordEnv, sentinelPasswordEnv } = config.sentinel;
    return {
      sentinel: {
        sentinels: sentinels.map(endpoint),
        name,
        tls: sentinels[0]?.tls ?? false,
        password: secret(passwordEnv),
        sentinelPassword: secret(sentinelPasswordEnv),
      },
    };
  }
  return { url: config.url ?? secret(config.urlEnv) ?? "" };
}

function endpoint(node: RedisNodeConfig): RedisEndpoint {
  return { host: node.host, port: node.port };
}

/**
 * Creates the Redis limiter and the failure mode around it; waits briefly
 * for the first connection attempt (a Redis that refuses is reported before
 * gateway_started, and a reachable one is ready for the first request). The
 * gateway starts either way: failure_mode applies.
 */
export async function buildRedisLimiter(
  config: RedisConfig,
  deps: RedisBackendDeps,
): Promise<FailoverLimiter> {
  let connectedOnce = false;
  // Connection events may come before the failover limiter exists.
  let failover: FailoverLimiter | undefined = undefined;
  let earlyFailure: string | undefined;
  let address = "";
  const primary = await RedisLimiter.create({
    ...redisTarget(config, deps.env),
    timeoutMs: config.timeoutMs,
    onState(state, reason) {
      if (state === "ready") {
        // Logged as host:port only: a URL may carry the password.
        deps.logger.info("redis_connected", { address, reconnect: connectedOnce });
        connectedOnce = true;
        failover?.reportAvailable();
      } else if (failover !== undefined) {
        failover.reportUnavailable(reason ?? "connection failed");
      } else {
        earlyFailure ??= reason;
      }
    },
    onNode(node, state, reason) {
      if (state === "error") failover?.reportUnavailable(reason ?? "connection failed", node);
      else failover?.reportAvailable(node, state === "gone" ? "gone" : "answered");
    },
    onRedirect(kind, node) {
      deps.metrics.redisRedirects.inc({ node, kind });
    },
  });
  address = primary.address;
  failover = new FailoverLimiter({
    primary,
    fallback: deps.fallback,
    mode: config.failureMode,
    logger: deps.logger,
    metrics: deps.metrics,
    address,
    byNode: primary.clustered,
  });
  if (earlyFailure !== undefined) failover.reportUnavailable(earlyFailure);
  await primary.firstAttempt(Math.max(1000, config.timeoutMs) + 250);
  return failover;
}
