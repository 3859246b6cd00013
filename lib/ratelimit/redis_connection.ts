/**
 * The ioredis client of the Redis limiter, for each way Redis can be run: one
 * server (`redis.url`), a Redis Cluster (`redis.cluster`, ioredis `Cluster`:
 * it follows MOVED and ASK redirects and refreshes the slot map itself) or a
 * master found through Sentinel (`redis.sentinel`, ioredis's Sentinel
 * connector: it asks the Sentinels for the master and reconnects when they
 * announce a new one). The limiter sees one shape: script calls grouped by
 * partition, answered one result per call.
 *
 * ioredis is imported only when a connection is made, so a gateway without
 * Redis never loads it (its `debug` dependency reads the whole environment).
 *
 * @module
 */

import type { Redis } from "ioredis";
import { ClusterConnection } from "./redis_cluster.ts";
import {
  backoff,
  commonOptions,
  type ConnectionOptions,
  listed,
  NodeCallError,
  NodeLabels,
  type RedisConnection,
  type RedisTarget,
  type ScriptCall,
  type WithScript,
} from "./redis_types.ts";

export {
  type ConnectionEvents,
  type ConnectionOptions,
  MAX_NODE_LABELS,
  NodeCallError,
  type RedisClusterTarget,
  type RedisConnection,
  type RedisEndpoint,
  type RedisSentinelTarget,
  type RedisTarget,
  type ScriptCall,
} from "./redis_types.ts";

/** Opens the connection `target` describes; connecting continues in the background. */
export async function connectRedis(
  target: RedisTarget,
  options: ConnectionOptions,
): Promise<RedisConnection> {
  const ioredis = await import("ioredis");
  if (target.cluster !== undefined) {
    return new ClusterConnection(ioredis.Cluster, target.cluster, options);
  }
  if (target.sentinel !== undefined) {
    const sentinel = target.sentinel;
    const tls = sentinel.tls ? {} : undefined;
    const redis = new ioredis.Redis({
      ...commonOptions(options.timeoutMs),
      sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
      name: sentinel.name,
      password: sentinel.password,
      sentinelPassword: sentinel.sentinelPassword,
      sentinelTLS: tls,
      tls,
      enableTLSForSentinelMode: sentinel.tls,
      sentinelCommandTimeout: Math.max(1000, options.timeoutMs),
      // Asking the Sentinels again after all failed: same backoff as a reconnect.
      sentinelRetryStrategy: backoff,
      // Subscribes to +switch-master: a promotion reconnects at once rather
      // than when the old master's connection happens to fail.
      failoverDetector: true,
    });
    const names = sentinel.sentinels.map(({ host, port }) => `${host}:${port}`);
    return new SingleConnection(redis, {
      ...options,
      address: `Sentinel master "${sentinel.name}" via ${listed(names)}`,
      // The master's address, once connected: the node that failures are counted against.
      nodeName: () => {
        const stream = redis.stream as { remoteAddress?: string; remotePort?: number } | undefined;
        return stream?.remoteAddress !== undefined
          ? `${stream.remoteAddress}:${stream.remotePort}`
          : `sentinel:${sentinel.name}`;
      },
    });
  }
  const redis = new ioredis.Redis(target.url, commonOptions(options.timeoutMs));
  const address = redisAddress(target.url);
  return new SingleConnection(redis, { ...options, address, nodeName: () => address });
}

/**
 * `host:port` of a Redis URL, for logs: never the user, password or
 * database. The URL itself must not be logged: it may carry the password.
 */
export function redisAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || "127.0.0.1"}:${parsed.port || "6379"}`;
  } catch {
    return "an unparsable Redis URL";
  }
}

/** One server, directly or as the master Sentinel names: one partition, one call per batch. */
class SingleConnection implements RedisConnection {
  readonly address: string;
  readonly clustered = false;
  readonly settled: Promise<void>;
  readonly #redis: WithScript<Redis>;
  readonly #nodeName: () => string;

  constructor(
    redis: Redis,
    options: ConnectionOptions & { address: string; nodeName: () => string },
  ) {
    this.address = options.address;
    const labels = new NodeLabels();
    // A Sentinel master's address changes at each failover: bounded like a cluster's nodes.
    this.#nodeName = () => labels.label(options.nodeName());
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (after
    // a restart or SCRIPT FLUSH). Without numberOfKeys, each call gives its
    // own key count first.
    redis.defineCommand("slidingWindowLogBatch", { lua: options.lua });
    this.#redis = redis as WithScript<Redis>;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.settled = promise;
    redis.on("ready", () => {
      resolve();
      options.onState?.("ready");
    });
    redis.on("error", (error: Error) => {
      resolve();
      options.onState?.("error", options.describe(error));
    });
  }

  get connected(): boolean {
    return this.#redis.status === "ready";
  }

  partition(): string {
    return "";
  }

  node(): string {
    return this.#nodeName();
  }

  failed(): void {
    // One server: its outage is the connection's, reported by the limiter's checks.
  }

  async run(
    _partition: string,
    calls: readonly ScriptCall[],
  ): Promise<(unknown[] | NodeCallError)[]> {
    // The limiter makes one call per batch here: every key may share a script.
    try {
      return await Promise.all(
        calls.map((call) =>
          this.#redis.slidingWindowLogBatch(call.keys.length, call.keys, call.args)
        ),
      );
    } catch (error) {
      throw new NodeCallError(this.#nodeName(), error);
    }
  }

  close(): void {
    this.#redis.disconnect();
  }
}
