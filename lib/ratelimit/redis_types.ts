/**
 * The shapes the Redis limiter's connections share (one server, Sentinel,
 * Cluster: lib/ratelimit/redis_connection.ts and redis_cluster.ts) and the
 * ioredis settings every one of them uses.
 *
 * @module
 */
import type { RedisOptions } from "ioredis";

/** A host and port of a Redis node or Sentinel. */
export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
}

/** A Redis Cluster: seed nodes (any few of its nodes; the rest are discovered). */
export interface RedisClusterTarget {
  readonly nodes: readonly RedisEndpoint[];
  /** TLS to every node (`rediss://`). */
  readonly tls: boolean;
  readonly password?: string;
}

/** A master found through Sentinel. */
export interface RedisSentinelTarget {
  readonly sentinels: readonly RedisEndpoint[];
  /** The master group name the Sentinels monitor (`sentinel monitor <name> ...`). */
  readonly name: string;
  /** TLS to the Sentinels and to the master (`rediss://`). */
  readonly tls: boolean;
  /** The password of the master (and replicas). */
  readonly password?: string;
  /** The password of the Sentinels, if they have one. */
  readonly sentinelPassword?: string;
}

/** Where the limiter's Redis is: exactly one of a URL, a cluster and a Sentinel group. */
export type RedisTarget =
  | { readonly url: string; readonly cluster?: never; readonly sentinel?: never }
  | { readonly cluster: RedisClusterTarget; readonly url?: never; readonly sentinel?: never }
  | { readonly sentinel: RedisSentinelTarget; readonly url?: never; readonly cluster?: never };

/** One call of the batch script: its keys (all in one hash slot on a cluster) and arguments. */
export interface ScriptCall {
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
}

/** What a connection reports, besides its results. */
export interface ConnectionEvents {
  /** The connection (the cluster as a whole) is ready, or failed: `reason` in plain words. */
  onState?(state: "ready" | "error", reason?: string): void;
  /**
   * One node of a cluster failed (`error`, with its reason), answered again
   * after failing (`ready`), or no longer serves any slot (`gone`: its slots
   * moved, e.g. to the replica that replaced it).
   */
  onNode?(node: string, state: "ready" | "error" | "gone", reason?: string): void;
  /** A node answered MOVED or ASK; `node` is where it pointed (followed by ioredis). */
  onRedirect?(kind: "moved" | "ask", node: string): void;
}

/** The options every topology takes. */
export interface ConnectionOptions extends ConnectionEvents {
  /** Bounds every command (ioredis's commandTimeout). */
  readonly timeoutMs: number;
  /** The batch script, defined as the command `slidingWindowLogBatch`. */
  readonly lua: string;
  /** Turns an ioredis error into plain words (never credentials). */
  readonly describe: (error: unknown) => string;
}

/** The limiter's view of its Redis. */
export interface RedisConnection {
  /** Where Redis is, for logs: host:port, never a password. */
  readonly address: string;
  /** Whether checks are partitioned by the node that owns their slot (a cluster). */
  readonly clustered: boolean;
  /** Whether commands can be sent now. */
  readonly connected: boolean;
  /**
   * The partition of a storage key: on a cluster the node that owns the
   * key's slot now (each partition is sent to one node), else "".
   */
  partition(key: string): string;
  /**
   * The node a partition's failures are counted against, for metrics and
   * logs: a bounded set of names (host:port, or "other").
   */
  node(partition: string): string;
  /**
   * Runs each call of one partition in one round trip; answers one result
   * per call, a NodeCallError for a call that failed. Rejects with a
   * NodeCallError when the whole round trip failed.
   */
  run(partition: string, calls: readonly ScriptCall[]): Promise<(unknown[] | NodeCallError)[]>;
  /**
   * A partition's checks failed without a call failing (no free call or no
   * answer in time): on a cluster its node counts as failing until it
   * answers again or loses its slots (see `ConnectionEvents.onNode`).
   */
  failed(partition: string, reason: string): void;
  /** Resolves once the first connection attempt has succeeded or failed. */
  readonly settled: Promise<void>;
  close(): void;
}

/** Most distinct node names in metrics and logs; past it, "other" (nodes are few, but bounded). */
export const MAX_NODE_LABELS = 32;

/** Reconnect backoff: 50 ms doubling up to 2 s. */
export function backoff(attempt: number): number {
  return Math.min(50 * 2 ** attempt, 2000);
}

/** Settings shared by every ioredis client the limiter makes. */
export function commonOptions(timeoutMs: number): RedisOptions {
  return {
    // Bounds every script call; the batcher bounds the wait before it.
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(1000, timeoutMs),
    // Fail at once while disconnected instead of queueing: a queued
    // request would wait for Redis, and the gateway never waits on Redis.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // The batcher already makes one command of what arrives together.
    enableAutoPipelining: false,
    retryStrategy: backoff,
    lazyConnect: false,
  };
}

export function listed(names: readonly string[]): string {
  return names.length <= 3
    ? names.join(", ")
    : `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
}

export type BatchCommand = (
  keyCount: number,
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<unknown[]>;

export type WithScript<T> = T & { slidingWindowLogBatch: BatchCommand };

/** A failed call or round trip, with the node it is counted against (see `RedisConnection.node`). */
export class NodeCallError extends Error {
  readonly node: string;

  constructor(node: string, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "NodeCallError";
    this.node = node;
  }
}

/**
 * Node names as metric labels and log fields: the first MAX_NODE_LABELS
 * names seen are kept, later ones are "other". A Sentinel master or a
 * cluster node that comes back on a new address (a rescheduled pod) is a
 * new name, so the set of label values stays bounded however often it does.
 */
export class NodeLabels {
  readonly #seen = new Set<string>();

  label(name: string): string {
    if (this.#seen.has(name)) return name;
    if (this.#seen.size >= MAX_NODE_LABELS) return "other";
    this.#seen.add(name);
    return name;
  }
}
