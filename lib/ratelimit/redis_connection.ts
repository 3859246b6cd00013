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
import type { Cluster, Redis, RedisOptions } from "ioredis";
import { keySlot } from "./key_slot.ts";

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
function backoff(attempt: number): number {
  return Math.min(50 * 2 ** attempt, 2000);
}

/** Settings shared by every ioredis client the limiter makes. */
function commonOptions(timeoutMs: number): RedisOptions {
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

function listed(names: readonly string[]): string {
  return names.length <= 3
    ? names.join(", ")
    : `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
}

type BatchCommand = (
  keyCount: number,
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<unknown[]>;

type WithScript<T> = T & { slidingWindowLogBatch: BatchCommand };

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
    this.#nodeName = options.nodeName;
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

/** A failed call or round trip, with the node it is counted against (see `RedisConnection.node`). */
export class NodeCallError extends Error {
  readonly node: string;

  constructor(node: string, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "NodeCallError";
    this.node = node;
  }
}

/** The redirect a cluster error stands for, if any: `MOVED 3999 127.0.0.1:6381` and the like. */
function redirectOf(
  error: unknown,
): { kind: "moved" | "ask" | "tryagain" | "clusterdown"; node?: string } | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const [word, , node] = message.split(" ");
  switch (word) {
    case "MOVED":
      return { kind: "moved", node };
    case "ASK":
      return { kind: "ask", node };
    case "TRYAGAIN":
      return { kind: "tryagain" };
    case "CLUSTERDOWN":
      return { kind: "clusterdown" };
  }
  return undefined;
}

/**
 * A Redis Cluster. Checks are partitioned by the node that owns their slot
 * (per ioredis's slot map); a partition's batch becomes one script call per
 * slot (a script's keys must share a slot, else CROSSSLOT), and those calls
 * go to the node as one pipeline: one round trip per node.
 *
 * Redirects are ioredis's to follow. A call sent alone goes through
 * ioredis's command path, which follows MOVED and ASK and retries TRYAGAIN
 * and CLUSTERDOWN. In a pipeline, ioredis follows a redirect only when every
 * call in it got the same one; a call that got its own MOVED, ASK, TRYAGAIN
 * or CLUSTERDOWN (which means the node did not run it) is sent again alone,
 * through the command path. Every MOVED and ASK answer is reported once: from
 * the pipeline's results, or from `Cluster.handleError` (public, called by
 * ioredis for each redirect it handles), which is wrapped for that.
 */
class ClusterConnection implements RedisConnection {
  readonly address: string;
  readonly clustered = true;
  readonly settled: Promise<void>;
  readonly #cluster: WithScript<Cluster>;
  readonly #events: ConnectionEvents;
  readonly #describe: (error: unknown) => string;
  readonly #labels = new Set<string>();
  /** Nodes whose last call failed: a success, or losing all their slots, ends that. */
  readonly #failing = new Set<string>();

  constructor(
    ClusterClass: typeof Cluster,
    target: RedisClusterTarget,
    options: ConnectionOptions,
  ) {
    this.#events = options;
    this.#describe = options.describe;
    const names = target.nodes.map(({ host, port }) => `${host}:${port}`);
    this.address = `Redis Cluster via ${listed(names)}`;
    const common = commonOptions(options.timeoutMs);
    const cluster = new ClusterClass(
      target.nodes.map(({ host, port }) => ({ host, port })),
      {
        redisOptions: {
          commandTimeout: common.commandTimeout,
          connectTimeout: common.connectTimeout,
          maxRetriesPerRequest: 0,
          password: target.password,
          tls: target.tls ? {} : undefined,
        },
        // As for one server: while the cluster is not ready, a check fails at
        // once. (Each node's own connection keeps ioredis's short queue for
        // the moment it connects, bounded by commandTimeout.)
        enableOfflineQueue: false,
        enableAutoPipelining: false,
        clusterRetryStrategy: backoff,
        // A command whose connection closed fails at once (failure_mode
        // applies) rather than being retried later, after its answer is due.
        retryDelayOnFailover: 0,
        // How soon a promotion is noticed when nothing else (a MOVED, a lost
        // connection) has made ioredis refresh the slot map.
        slotsRefreshInterval: 2000,
        slotsRefreshTimeout: Math.max(1000, options.timeoutMs),
        // With TLS the names given must be kept for certificate checks.
        ...(target.tls ? { dnsLookup: keepHostName } : {}),
        scripts: { slidingWindowLogBatch: { lua: options.lua } },
        lazyConnect: false,
      },
    );
    this.#cluster = cluster as WithScript<Cluster>;
    const handleError = cluster.handleError.bind(cluster);
    cluster.handleError = (error, ttl, handlers) => {
      this.#redirected(error);
      handleError(error, ttl, handlers);
    };
    // ioredis connects to a node at its first command, and with no offline
    // queue the commands that arrive while it connects would fail: connect
    // each node as soon as ioredis knows it (at start, and when a failover
    // brings a new master).
    cluster.on("+node", (node: Redis) => {
      // Replicas get no command from the limiter (reads go to masters too).
      if (node.options.readOnly) return;
      node.connect().catch(() => {/* reported as a node error */});
    });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.settled = promise;
    cluster.on("ready", () => {
      // Settled once the masters' own connections are up too (or failed).
      Promise.all(cluster.nodes("master").map(nodeSettled)).then(() => resolve());
      options.onState?.("ready");
    });
    cluster.on("error", (error: Error) => {
      resolve();
      options.onState?.("error", options.describe(error));
    });
    cluster.on("node error", (error: Error, node: string) => {
      // A master's connection failing is news before any check fails; a
      // replica's is not the limiter's concern.
      if (this.#owners().has(node)) this.#failed(node, error);
    });
    cluster.on("refresh", () => this.#forgetNodesWithoutSlots());
  }

  get connected(): boolean {
    return this.#cluster.status === "ready";
  }

  partition(key: string): string {
    return this.#cluster.slots[keySlot(key)]?.[0] ?? "";
  }

  node(partition: string): string {
    if (partition === "") return "cluster";
    if (this.#labels.has(partition)) return partition;
    if (this.#labels.size >= MAX_NODE_LABELS) return "other";
    this.#labels.add(partition);
    return partition;
  }

  async run(
    partition: string,
    calls: readonly ScriptCall[],
  ): Promise<(unknown[] | NodeCallError)[]> {
    if (partition === "" || calls.length === 1) {
      // No slot map yet (ioredis answers at once that it is not ready), or one call.
      return await Promise.all(calls.map((call) => this.#alone(partition, call)));
    }
    const pipeline = this.#cluster.pipeline() as unknown as WithScript<{
      exec(): Promise<[Error | null, unknown][] | null>;
    }>;
    for (const call of calls) {
      pipeline.slidingWindowLogBatch(call.keys.length, call.keys, call.args);
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      // The slot map changed between partitioning and sending: the slots no
      // longer share a node. Each call then goes alone, to its own node.
      if (/same slots allocation group/.test(String((error as Error)?.message))) {
        return await Promise.all(calls.map((call) => this.#alone(partition, call)));
      }
      throw this.#failed(partition, error);
    }
    if (results === null || results.length !== calls.length) {
      throw this.#failed(
        partition,
        new Error(`a pipeline of ${calls.length} calls got ${results?.length ?? 0} results`),
      );
    }
    let ok = false;
    const out = await Promise.all(results.map(([error, reply], i) => {
      if (error === null) {
        ok = true;
        return reply as unknown[];
      }
      const redirect = redirectOf(error);
      if (redirect === undefined) return this.#failed(partition, error);
      this.#redirected(error);
      return this.#alone(partition, calls[i]);
    }));
    if (ok) this.#answered(partition);
    return out;
  }

  /** One call through ioredis's command path, which follows redirects itself. */
  async #alone(partition: string, call: ScriptCall): Promise<unknown[] | NodeCallError> {
    try {
      const reply = await this.#cluster.slidingWindowLogBatch(
        call.keys.length,
        call.keys,
        call.args,
      );
      // Answered by the slot's owner as ioredis knows it now (a redirect updated it).
      this.#answered(this.#owner(call) ?? partition);
      return reply;
    } catch (error) {
      return this.#failed(this.#owner(call) ?? partition, error);
    }
  }

  #owner(call: ScriptCall): string | undefined {
    return this.#cluster.slots[keySlot(call.keys[0])]?.[0];
  }

  /** The nodes that own a slot in ioredis's slot map now. */
  #owners(): Set<string> {
    const owners = new Set<string>();
    for (const nodes of this.#cluster.slots) if (nodes?.[0] !== undefined) owners.add(nodes[0]);
    return owners;
  }

  failed(partition: string, reason: string): void {
    if (partition !== "") this.#failed(partition, reason);
  }

  #redirected(error: unknown): void {
    const redirect = redirectOf(error);
    if (redirect === undefined || redirect.node === undefined) return;
    if (redirect.kind === "moved" || redirect.kind === "ask") {
      this.#events.onRedirect?.(redirect.kind, this.node(redirect.node));
    }
  }

  /** Records a failure of `node` (a node key, or "" when unknown); returns it as a NodeCallError. */
  #failed(node: string, error: unknown): NodeCallError {
    const name = this.node(node);
    if (node !== "") {
      this.#failing.add(name);
      this.#events.onNode?.(name, "error", this.#describe(error));
    }
    return new NodeCallError(name, error);
  }

  #answered(node: string): void {
    if (this.#failing.size === 0 || node === "") return;
    const name = this.node(node);
    if (this.#failing.delete(name)) this.#events.onNode?.(name, "ready");
  }

  /** After a slot map refresh: a failing node that serves no slot now is done with. */
  #forgetNodesWithoutSlots(): void {
    if (this.#failing.size === 0) return;
    const owners = this.#owners();
    for (const name of [...this.#failing]) {
      if (name !== "other" && name !== "cluster" && !owners.has(name)) {
        this.#failing.delete(name);
        this.#events.onNode?.(name, "gone");
      }
    }
  }

  close(): void {
    this.#cluster.disconnect();
  }
}

/** Resolves once a node's connection is ready, or has failed or closed. */
function nodeSettled(node: Redis): Promise<void> {
  if (node.status === "ready" || node.status === "end") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ["ready", "error", "close", "end"]) node.off(event, done);
      resolve();
    };
    for (const event of ["ready", "error", "close", "end"]) node.once(event, done);
  });
}

/** A DNS lookup that keeps the name: TLS then checks the certificate against it. */
function keepHostName(
  address: string,
  callback: (error: null, address: string) => void,
): void {
  callback(null, address);
}
