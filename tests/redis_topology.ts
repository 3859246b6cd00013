/**
 * Real Redis topologies for tests, on free loopback ports: a Redis Cluster of
 * masters with one replica each (`redis-server --cluster-enabled yes`, joined
 * by `redis-cli --cluster create`), and a master with a replica watched by
 * three Sentinels. Each lives in its own folder under tests/.tmp; stop()
 * kills every process and removes the folder, and a start that fails midway
 * cleans up what it had started before it throws.
 *
 * Timeouts are small (a node or master is judged down after about a second)
 * so that a failover takes a few seconds.
 */
import { join } from "node:path";
import { closedPort, eventually } from "./helpers.ts";

const TMP = join(import.meta.dirname!, ".tmp");
const HOST = "127.0.0.1";

/**
 * Why the Redis Cluster tests cannot run here, or undefined when they can:
 * they need `redis-cli` (for `--cluster create`) besides redis-server, which
 * every Redis test needs (Sentinel runs on redis-server alone).
 */
export async function redisCliMissing(): Promise<string | undefined> {
  try {
    const { success } = await new Deno.Command("redis-cli", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success ? undefined : "redis-cli --version failed";
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return "redis-cli is not installed (Debian: apt-get install redis-tools)";
    }
    // Not allowed to run it (a flag missing) is a mistake, not a reason to skip.
    throw error;
  }
}

/** One redis-server process of a topology. */
export interface RedisNode {
  readonly port: number;
  /** `127.0.0.1:port`, as the servers name each other. */
  readonly address: string;
  /** Whether it still runs (not killed). */
  readonly running: boolean;
  /** SIGKILL, as a crash: no shutdown, nothing flushed to replicas after it. */
  kill(): Promise<void>;
  /** SIGSTOP: it holds its connections and answers nothing (as a stalled host). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

class NodeProcess implements RedisNode {
  readonly port: number;
  readonly address: string;
  #child: Deno.ChildProcess | undefined;

  constructor(port: number, args: string[]) {
    this.port = port;
    this.address = `${HOST}:${port}`;
    this.#child = new Deno.Command("redis-server", { args, stdout: "null", stderr: "null" })
      .spawn();
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }

  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  resume(): void {
    this.#child?.kill("SIGCONT");
  }
}

/** Processes and a folder; released together. */
class Topology {
  readonly dir: string;
  readonly nodes: NodeProcess[] = [];

  constructor(kind: string) {
    this.dir = join(TMP, `${kind}-${crypto.randomUUID().slice(0, 8)}`);
    Deno.mkdirSync(this.dir, { recursive: true });
  }

  spawn(port: number, args: string[]): NodeProcess {
    const node = new NodeProcess(port, args);
    this.nodes.push(node);
    return node;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

function serverArgs(port: number, dir: string, log: string): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--dir",
    dir,
    "--logfile",
    join(dir, log),
    "--save",
    "",
    "--appendonly",
    "no",
    // Replicas sync at once (the default waits 5 s to batch replicas).
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
  ];
}

/** A Redis Cluster started by {@linkcode startCluster}. */
export interface TestCluster {
  /** Every node, masters first as created (the replica of masters[i] is replicas[i]). */
  readonly masters: readonly RedisNode[];
  readonly replicas: readonly RedisNode[];
  /** `redis://127.0.0.1:port` of each master as created, for `redis.cluster.nodes`. */
  readonly urls: readonly string[];
  /** The node of `cluster-node-timeout`. */
  readonly nodeTimeoutMs: number;
  /** The master serving `slot` now, as a running node sees it. */
  masterOf(slot: number): Promise<RedisNode>;
  /** The slot map now, as a running node sees it: the master of each slot. */
  owners(): Promise<(slot: number) => RedisNode>;
  /** Runs one command on a running node. */
  command(node: RedisNode, ...args: string[]): Promise<Reply>;
  /** Waits until every slot has a reachable master and every running node agrees. */
  settled(ms?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `masters` cluster nodes and as many replicas, joins them with
 * `redis-cli --cluster create --cluster-replicas 1`, and waits until the
 * cluster is `ok` and every replica has synced.
 */
export async function startCluster(
  options: { masters?: number; nodeTimeoutMs?: number } = {},
): Promise<TestCluster> {
  const count = options.masters ?? 3;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  const topology = new Topology("redis-cluster");
  try {
    const all: NodeProcess[] = [];
    for (let i = 0; i < count * 2; i++) {
      const port = closedPort();
      all.push(topology.spawn(port, [
        ...serverArgs(port, topology.dir, `node-${port}.log`),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(topology.dir, `nodes-${port}.conf`),
        // Its own bus port: port + 10000 may be past 65535 for a free port.
        "--cluster-port",
        String(closedPort()),
        "--cluster-node-timeout",
        String(nodeTimeoutMs),
        // The slots of a failed master fail alone; the others keep serving.
        "--cluster-require-full-coverage",
        "no",
        // A replica may take over however long its link was down (tests stall links on purpose).
        "--cluster-replica-validity-factor",
        "0",
      ]));
    }
    await Promise.all(all.map((node) => waitForPing(node.port)));
    // redis-cli makes the first `count` addresses masters and gives each a
    // replica from the rest; which replica follows which master is read back.
    const create = await new Deno.Command("redis-cli", {
      args: [
        "--cluster",
        "create",
        ...all.map((node) => node.address),
        "--cluster-replicas",
        "1",
        "--cluster-yes",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!create.success) {
      throw new Error(
        `redis-cli --cluster create failed: ${new TextDecoder().decode(create.stdout)}${
          new TextDecoder().decode(create.stderr)
        }`,
      );
    }
    const masters = all.slice(0, count);
    const replicas: NodeProcess[] = [];
    await eventually(20_000, "the cluster to be ok with every replica synced", async () => {
      replicas.length = 0;
      for (const master of masters) {
        const info = String(await command(master.port, "INFO", "replication"));
        const line = /^slave0:ip=[^,]+,port=(\d+),state=online/m.exec(info);
        const replica = line && all.find((node) => node.port === Number(line[1]));
        if (!replica) return false;
        replicas.push(replica);
      }
      return await clusterOk(all, 16384);
    });
    const cluster: TestCluster = {
      masters,
      replicas,
      urls: masters.map((node) => `redis://${node.address}`),
      nodeTimeoutMs,
      async masterOf(slot) {
        for (const node of all) {
          if (!node.running) continue;
          const port = await slotOwner(node.port, slot).catch(() => undefined);
          const owner = all.find((candidate) => candidate.port === port);
          if (owner !== undefined) return owner;
        }
        throw new Error(`no running node knows the master of slot ${slot}`);
      },
      async owners() {
        for (const node of all) {
          if (!node.running) continue;
          const slots = await command(node.port, "CLUSTER", "SLOTS").catch(() => undefined);
          if (!Array.isArray(slots)) continue;
          const owner = new Array<NodeProcess | undefined>(16384);
          for (const range of slots as Reply[][]) {
            const master = all.find((n) => n.port === Number((range[2] as Reply[])[1]));
            for (let slot = Number(range[0]); slot <= Number(range[1]); slot++) {
              owner[slot] = master;
            }
          }
          return (slot: number) => {
            const found = owner[slot];
            if (found === undefined) throw new Error(`slot ${slot} has no master`);
            return found;
          };
        }
        throw new Error("no running node answered CLUSTER SLOTS");
      },
      command: (node, ...args) => command(node.port, ...args),
      async settled(ms = 20_000) {
        await eventually(ms, "every slot to have a running master", async () => {
          for (const node of all) {
            if (!node.running) continue;
            const slots = await command(node.port, "CLUSTER", "SLOTS").catch(() => undefined);
            if (!Array.isArray(slots)) return false;
            let covered = 0;
            for (const range of slots as Reply[][]) {
              const master = all.find((n) => n.port === Number((range[2] as Reply[])[1]));
              if (master === undefined || !master.running) return false;
              covered += Number(range[1]) - Number(range[0]) + 1;
            }
            if (covered !== 16384) return false;
          }
          return await clusterOk(all.filter((node) => node.running), 16384);
        });
      },
      stop: () => topology.stop(),
    };
    return cluster;
  } catch (error) {
    await topology.stop();
    throw error;
  }
}

async function clusterOk(nodes: readonly NodeProcess[], slots: number): Promise<boolean> {
  for (const node of nodes) {
    if (!node.running) continue;
    const info = String(await command(node.port, "CLUSTER", "INFO").catch(() => ""));
    if (!/^cluster_state:ok/m.test(info)) return false;
    if (!new RegExp(`^cluster_slots_ok:${slots}\\b`, "m").test(info)) return false;
  }
  return true;
}

async function slotOwner(port: number, slot: number): Promise<number | undefined> {
  const slots = await command(port, "CLUSTER", "SLOTS");
  if (!Array.isArray(slots)) return undefined;
  for (const range of slots as Reply[][]) {
    if (slot >= Number(range[0]) && slot <= Number(range[1])) {
      return Number((range[2] as Reply[])[1]);
    }
  }
  return undefined;
}

/** A master, its replica and three Sentinels started by {@linkcode startSentinel}. */
export interface TestSentinel {
  readonly name: string;
  readonly master: RedisNode;
  readonly replica: RedisNode;
  readonly sentinels: readonly RedisNode[];
  /** `redis://127.0.0.1:port` of each Sentinel, for `redis.sentinel.sentinels`. */
  readonly urls: readonly string[];
  /** The master's port as the Sentinels report it now. */
  currentMaster(): Promise<number>;
  command(node: RedisNode, ...args: string[]): Promise<Reply>;
  stop(): Promise<void>;
}

/**
 * Starts a master, a replica of it and three Sentinels (quorum 2,
 * `down-after-milliseconds` 1000) and waits until every Sentinel knows the
 * replica and the other Sentinels, so a failover can be voted.
 */
export async function startSentinel(name = "mymaster"): Promise<TestSentinel> {
  const topology = new Topology("redis-sentinel");
  try {
    const masterPort = closedPort();
    const master = topology.spawn(masterPort, serverArgs(masterPort, topology.dir, "master.log"));
    await waitForPing(masterPort);
    const replicaPort = closedPort();
    const replica = topology.spawn(replicaPort, [
      ...serverArgs(replicaPort, topology.dir, "replica.log"),
      "--replicaof",
      HOST,
      String(masterPort),
    ]);
    await waitForPing(replicaPort);
    const sentinels: NodeProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const port = closedPort();
      const file = join(topology.dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its config file, so each has its own.
      Deno.writeTextFileSync(
        file,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${topology.dir}`,
          `logfile ${join(topology.dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${name} ${HOST} ${masterPort} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          "",
        ].join("\n"),
      );
      sentinels.push(topology.spawn(port, [file, "--sentinel"]));
    }
    await Promise.all(sentinels.map((node) => waitForPing(node.port)));
    await eventually(
      30_000,
      "the replica to sync and every Sentinel to know the others",
      async () => {
        const info = String(await command(replicaPort, "INFO", "replication"));
        if (!/^master_link_status:up/m.test(info)) return false;
        for (const sentinel of sentinels) {
          const fields = pairs(await command(sentinel.port, "SENTINEL", "MASTER", name));
          if (fields["num-slaves"] !== "1" || fields["num-other-sentinels"] !== "2") return false;
        }
        return true;
      },
    );
    return {
      name,
      master,
      replica,
      sentinels,
      urls: sentinels.map((node) => `redis://${node.address}`),
      async currentMaster() {
        for (const sentinel of sentinels) {
          if (!sentinel.running) continue;
          const reply = await command(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name);
          if (Array.isArray(reply)) return Number(reply[1]);
        }
        throw new Error("no Sentinel answered");
      },
      command: (node, ...args) => command(node.port, ...args),
      stop: () => topology.stop(),
    };
  } catch (error) {
    await topology.stop();
    throw error;
  }
}

function pairs(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

async function waitForPing(port: number): Promise<void> {
  await eventually(10_000, `redis-server on port ${port}`, async () => {
    return await command(port, "PING").then((reply) => reply === "PONG", () => false);
  });
}

/** A RESP reply: a string, an integer, null, a list, or an Error for an error reply. */
export type Reply = string | number | null | Error | Reply[];

/**
 * Sends one command on a fresh connection and reads its reply: a minimal
 * RESP2 client, so admin commands in tests need no client library with its
 * own reconnects and queues. Rejects when the server cannot be reached or
 * answers nothing within 2 s.
 */
export async function command(port: number, ...args: string[]): Promise<Reply> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const timer = setTimeout(() => conn.close(), 2000);
  try {
    const encoder = new TextEncoder();
    let out = `*${args.length}\r\n`;
    for (const arg of args) out += `$${encoder.encode(arg).length}\r\n${arg}\r\n`;
    await conn.write(encoder.encode(out));
    const reader = new RespReader(conn);
    return await reader.reply();
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

class RespReader {
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async reply(): Promise<Reply> {
    const line = await this.#line();
    const rest = line.slice(1);
    switch (line[0]) {
      case "+":
        return rest;
      case "-":
        return new Error(rest);
      case ":":
        return Number(rest);
      case "$": {
        const length = Number(rest);
        if (length < 0) return null;
        const bytes = await this.#take(length + 2);
        return new TextDecoder().decode(bytes.subarray(0, length));
      }
      case "*": {
        const count = Number(rest);
        if (count < 0) return null;
        const items: Reply[] = [];
        for (let i = 0; i < count; i++) items.push(await this.reply());
        return items;
      }
    }
    throw new Error(`unexpected RESP line ${JSON.stringify(line)}`);
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.findIndex((byte, i) => byte === 13 && this.#buffer[i + 1] === 10);
      if (end !== -1) {
        const line = new TextDecoder().decode(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.subarray(end + 2);
        return line;
      }
      await this.#fill();
    }
  }

  async #take(length: number): Promise<Uint8Array> {
    while (this.#buffer.length < length) await this.#fill();
    const bytes = this.#buffer.subarray(0, length);
    this.#buffer = this.#buffer.subarray(length);
    return bytes;
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(65536);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("connection closed before the reply");
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
  }
}
