/**
 * The Redis limiter's connection to a Redis Cluster (`redis.cluster`, ioredis
 * `Cluster`): checks batched per node, one script call per slot, one pipeline
 * per node, redirects followed by ioredis and counted per node.
 *
 * @module
 */
import type { Cluster, Redis } from "ioredis";
import { keySlot } from "./key_slot.ts";
import {
  backoff,
  commonOptions,
  type ConnectionEvents,
  type ConnectionOptions,
  listed,
  NodeCallError,
  NodeLabels,
  type RedisClusterTarget,
  type RedisConnection,
  type ScriptCall,
  type WithScript,
} from "./redis_types.ts";

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
export class ClusterConnection implements RedisConnection {
  readonly address: string;
  readonly clustered = true;
  readonly settled: Promise<void>;
  readonly #cluster: WithScript<Cluster>;
  readonly #events: ConnectionEvents;
  readonly #describe: (error: unknown) => string;
  readonly #labels = new NodeLabels();
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
    return this.#labels.label(partition);
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
