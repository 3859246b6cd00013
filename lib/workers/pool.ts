/**
 * The main thread's side of the proxy worker threads (`server.workers`
 * above 1): starting them on one shared port, sending them what changes
 * (tables, endpoints marked down, certificate changes, new configs),
 * collecting their metrics, restarting one that dies, draining them at
 * shutdown. The workers' side is `proxy_worker.ts`; the messages are in
 * `protocol.ts`.
 *
 * @module
 */
import type { LogLineFormat } from "../log/logger.ts";
import type { CertificatePair } from "../gateway_api/tls_secret.ts";
import type { Metrics, MetricsSnapshot } from "../admin/metrics.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { TableData } from "../routing/table.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

/** Timing of the pool (tests shrink it). */
export interface WorkerTuning {
  /** A worker that has not listened by then failed to start (default 30 s). */
  readonly startTimeoutMs: number;
  /** How often each worker is pinged (default 2 s). */
  readonly pingIntervalMs: number;
  /** A worker silent this long is taken for hung: terminated and restarted (default 15 s). */
  readonly unresponsiveMs: number;
  /** First restart delay after an exit; doubles with each exit in a row (default 250 ms). */
  readonly restartBaseMs: number;
  /** Upper bound of the restart delay (default 30 s). */
  readonly restartMaxMs: number;
  /** A worker that served this long before it exited restarts after restartBaseMs again (default 60 s). */
  readonly restartResetMs: number;
  /** How long /metrics waits for a worker's snapshot before using its last one (default 1 s). */
  readonly metricsTimeoutMs: number;
  /** How long a reload waits for a worker to build the new config (default 60 s). */
  readonly prepareTimeoutMs: number;
}

const DEFAULT_TUNING: WorkerTuning = {
  startTimeoutMs: 30_000,
  pingIntervalMs: 2_000,
  unresponsiveMs: 15_000,
  restartBaseMs: 250,
  restartMaxMs: 30_000,
  restartResetMs: 60_000,
  metricsTimeoutMs: 1_000,
  prepareTimeoutMs: 60_000,
};

/** What a (re)started worker starts from: the state in force on the main thread. */
export interface PoolState {
  readonly config: Config;
  readonly table: TableData;
  readonly down: readonly string[];
  /** The Gateways' and Ingresses' TLS Secret certificates in force. */
  readonly secretCertificates: readonly CertificatePair[];
}

/** How to run the pool. */
export interface WorkerPoolOptions {
  readonly count: number;
  readonly logger: Logger;
  /** The main thread's registry (vanguard_workers_serving, vanguard_worker_exits_total). */
  readonly metrics: Metrics;
  /** The proxy address; port 0 means the first worker picks one and the others share it. */
  readonly listen: { readonly hostname: string; readonly port: number };
  readonly current: () => PoolState;
  readonly accessLog: boolean;
  /** Worker log records go to `logger` instead of each worker's stdout. */
  readonly forwardLogs: boolean;
  /** The format of the lines workers write themselves (fixed at start, as the main thread's). */
  readonly logFormat: LogLineFormat;
  readonly jwksPolicy?: JwksCachePolicy;
  readonly tuning?: Partial<WorkerTuning>;
}

/** Why a worker was replaced (`vanguard_worker_exits_total{reason}`). */
type ExitReason = "crashed" | "unresponsive" | "start_failed";

/** One worker thread and what the pool knows of it. */
class WorkerThread {
  readonly index: number;
  readonly worker: Worker;
  /** Listening and not exited. */
  serving = false;
  exited = false;
  startedAt = 0;
  lastSeen = performance.now();
  lastSnapshot: MetricsSnapshot | undefined;
  addr: Deno.NetAddr | undefined;
  readonly #replies = new Map<number, (reply: FromWorker | undefined) => void>();
  #stopped: ((drained: boolean) => void) | undefined;
  #started: { resolve(): void; reject(reason: string): void } | undefined;

  constructor(index: number, worker: Worker) {
    this.index = index;
    this.worker = worker;
  }

  post(message: ToWorker): void {
    if (!this.exited) this.worker.postMessage(message);
  }

  /** Resolves once the worker listens; rejects with its reason when it cannot start. */
  untilListening(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => this.#started?.reject(`did not start within ${timeoutMs} ms`),
        timeoutMs,
      );
      this.#started = {
        resolve: () => {
          clearTimeout(timer);
          this.#started = undefined;
          resolve();
        },
        reject: (reason) => {
          clearTimeout(timer);
          this.#started = undefined;
          reject(new Error(reason));
        },
      };
    });
  }

  /** Sends a message that carries `id` and waits for the reply with that id (undefined: none in time). */
  request(message: ToWorker & { id: number }, timeoutMs: number): Promise<FromWorker | undefined> {
    if (this.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (reply: FromWorker | undefined) => {
        clearTimeout(timer);
        this.#replies.delete(message.id);
        resolve(reply);
      };
      this.#replies.set(message.id, done);
      this.post(message);
    });
  }

  /** Asks the worker to drain; resolves with whether it drained, false when it did not answer. */
  stop(graceSeconds: number, timeoutMs: number): Promise<boolean> {
    if (this.exited) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (drained: boolean) => {
        clearTimeout(timer);
        this.#stopped = undefined;
        resolve(drained);
      };
      this.#stopped = done;
      this.post({ type: "shutdown", graceSeconds });
    });
  }

  /** Routes a reply to whoever waits for it; true when the message was one. */
  settle(message: FromWorker): boolean {
    switch (message.type) {
      case "listening":
        this.addr = { transport: "tcp", hostname: message.hostname, port: message.port };
        this.#started?.resolve();
        return true;
      case "start_failed":
        this.#started?.reject(message.reason);
        return true;
      case "stopped":
        this.#stopped?.(message.drained);
        return true;
      case "prepared":
      case "prepare_failed":
      case "committed":
      case "metrics":
      case "pong":
        this.#replies.get(message.id)?.(message);
        return true;
      default:
        return false;
    }
  }

  /** Marks the thread gone: every wait ends at once. */
  gone(reason: string): void {
    this.exited = true;
    this.serving = false;
    this.worker.terminate();
    this.#started?.reject(reason);
    this.#stopped?.(false);
    for (const reply of [...this.#replies.values()]) reply(undefined);
  }
}

/** The proxy worker threads of one gateway. */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #tuning: WorkerTuning;
  readonly #threads: (WorkerThread | undefined)[];
  /** Exits in a row per slot, for the restart delay. */
  readonly #exits: number[];
  readonly #restartTimers = new Set<ReturnType<typeof setTimeout>>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #port = 0;
  #nextId = 0;
  #stopping = false;
  /** Reloads and restarts, one at a time (a restarted worker starts from the config in force). */
  #queue: Promise<unknown> = Promise.resolve();
  #prepared: { id: number; threads: WorkerThread[] } | undefined;
  /** Counters and histograms of workers that exited, so merged counters never go back. */
  #retired: MetricsSnapshot | undefined;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning };
    this.#threads = new Array(options.count).fill(undefined);
    this.#exits = new Array(options.count).fill(0);
  }

  /**
   * Starts every worker: the first on the configured port (0: any), the
   * others on the port it got. Throws the first failure, with every worker
   * stopped again.
   */
  async start(): Promise<void> {
    // The first alone: the others need its port (with port 0), and under `deno test` the
    // first one's type check of the worker modules is then cached for them.
    const threads = [this.#create(0)];
    try {
      await this.#begin(threads[0], this.#options.listen.port);
      this.#port = threads[0].addr!.port;
      threads.push(...this.#threads.slice(1).map((_, i) => this.#create(i + 1)));
      const rest = await Promise.allSettled(
        threads.slice(1).map((thread) => this.#begin(thread, this.#port)),
      );
      const failed = rest.find((result) => result.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    } catch (error) {
      this.#stopping = true;
      for (const thread of threads) thread.gone("start-up failed");
      this.#publish();
      throw error;
    }
    this.#heartbeat = setInterval(() => this.#beat(), this.#tuning.pingIntervalMs);
    Deno.unrefTimer(this.#heartbeat);
  }

  /** The shared proxy address (the first worker's). */
  get addr(): Deno.NetAddr {
    return { transport: "tcp", hostname: this.#options.listen.hostname, port: this.#port };
  }

  /** Workers listening now. */
  get serving(): number {
    return this.#threads.filter((thread) => thread?.serving).length;
  }

  /** Workers configured. */
  get size(): number {
    return this.#threads.length;
  }

  /** Sends `message` to every worker (those still starting get it once they have). */
  broadcast(message: ToWorker): void {
    for (const thread of this.#threads) thread?.post(message);
  }

  /** Runs `task` while no other reload or restart runs. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  /**
   * Reload, step 1 (inside exclusive()): every worker builds a runtime for
   * `config` and keeps it aside. When one cannot, every worker drops what it
   * built and the reason names the worker.
   */
  async prepare(config: Config): Promise<{ ok: true } | { ok: false; reason: string }> {
    const id = ++this.#nextId;
    const threads = this.#threads.filter((thread): thread is WorkerThread =>
      thread !== undefined && !thread.exited
    );
    const replies = await Promise.all(
      threads.map((thread) =>
        thread.request({ type: "prepare", id, config }, this.#tuning.prepareTimeoutMs)
      ),
    );
    const problems = replies.flatMap((reply, i) =>
      reply?.type === "prepared" ? [] : [
        `worker ${threads[i].index}: ${
          reply?.type === "prepare_failed"
            ? reply.reason
            : "no answer (it exited, or took longer than the reload allows)"
        }`,
      ]
    );
    if (problems.length > 0) {
      this.abort(id, threads);
      return { ok: false, reason: problems.join("; ") };
    }
    this.#prepared = { id, threads };
    return { ok: true };
  }

  /** Drops the runtimes of the last prepare (the main thread's own build failed). */
  abort(id = this.#prepared?.id, threads = this.#prepared?.threads ?? []): void {
    if (id === undefined) return;
    for (const thread of threads) thread.post({ type: "abort", id });
    this.#prepared = undefined;
  }

  /**
   * Reload, step 2: every prepared worker installs its new runtime with
   * `table` (the main thread's table for the new config). Resolves once each
   * has said so; one that does not answer is logged (it is restarted with
   * the new config if it died).
   */
  async commit(table: TableData): Promise<void> {
    const prepared = this.#prepared;
    this.#prepared = undefined;
    if (prepared === undefined) return;
    const { id, threads } = prepared;
    const replies = await Promise.all(
      threads.map((thread) => thread.request({ type: "commit", id, table }, 10_000)),
    );
    replies.forEach((reply, i) => {
      if (reply?.type !== "committed" && !threads[i].exited) {
        this.#options.logger.warn("worker_reload_unconfirmed", {
          worker: threads[i].index,
          message: "The worker did not confirm the new config in time",
        });
      }
    });
  }

  /**
   * Every worker's metrics, for /metrics: each asked with a short timeout
   * (one that does not answer in time counts with its last snapshot), plus
   * what workers that exited had counted.
   */
  async snapshots(): Promise<MetricsSnapshot[]> {
    const id = ++this.#nextId;
    const live = this.#threads.filter((thread): thread is WorkerThread => thread?.serving === true);
    const got = await Promise.all(live.map(async (thread) => {
      const reply = await thread.request({ type: "metrics", id }, this.#tuning.metricsTimeoutMs);
      if (reply?.type === "metrics") thread.lastSnapshot = reply.snapshot;
      return thread.lastSnapshot;
    }));
    const out = got.filter((snapshot): snapshot is MetricsSnapshot => snapshot !== undefined);
    if (this.#retired !== undefined) out.push(this.#retired);
    return out;
  }

  /**
   * Drains every worker (each stops accepting and gives requests in flight
   * `graceSeconds`), then terminates them. Resolves with whether all drained.
   */
  shutdown(graceSeconds: number): Promise<boolean> {
    this.#stopping = true;
    clearInterval(this.#heartbeat);
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    return this.exclusive(async () => {
      const threads = this.#threads.filter((thread): thread is WorkerThread =>
        thread !== undefined && !thread.exited
      );
      // The worker cuts off what is left at the grace period; this is the backstop.
      const results = await Promise.all(
        threads.map((thread) => thread.stop(graceSeconds, graceSeconds * 1000 + 5000)),
      );
      for (const thread of threads) thread.gone("shut down");
      this.#publish();
      return results.every(Boolean);
    });
  }

  /** A new thread in slot `index`, loading its modules; it starts on its `start` message. */
  #create(index: number): WorkerThread {
    const { logger } = this.#options;
    const worker = new Worker(new URL("./worker_main.ts", import.meta.url), {
      type: "module",
      name: `vanguard-worker-${index}`,
    });
    const thread = new WorkerThread(index, worker);
    this.#threads[index] = thread;
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      thread.lastSeen = performance.now();
      const message = event.data;
      if (message.type === "log") {
        logger[message.level](message.event, message.fields);
      } else if (!thread.settle(message)) {
        logger.warn("worker_message_unknown", { worker: index, type: String(message.type) });
      }
    };
    worker.onerror = (event) => {
      // Handled here: unhandled, a worker's uncaught error would end the whole process.
      event.preventDefault();
      this.#exited(thread, "crashed", event.message);
    };
    worker.onmessageerror = () => this.#exited(thread, "crashed", "a message could not be read");
    return thread;
  }

  /** Starts `thread` on `port` with the state in force; resolves once it listens. */
  async #begin(thread: WorkerThread, port: number): Promise<void> {
    const state = this.#options.current();
    const listening = thread.untilListening(this.#tuning.startTimeoutMs);
    thread.post({
      type: "start",
      index: thread.index,
      config: state.config,
      table: state.table,
      down: state.down,
      secretCertificates: state.secretCertificates,
      listen: { hostname: this.#options.listen.hostname, port },
      accessLog: this.#options.accessLog,
      forwardLogs: this.#options.forwardLogs,
      logFormat: this.#options.logFormat,
      jwksPolicy: this.#options.jwksPolicy,
    });
    try {
      await listening;
    } catch (error) {
      thread.gone("start failed");
      throw error;
    }
    thread.serving = true;
    thread.startedAt = performance.now();
    thread.lastSeen = performance.now();
    this.#publish();
  }

  /** A worker died (or hung): count it, keep its counters, restart it after a delay. */
  #exited(thread: WorkerThread, reason: ExitReason, message: string): void {
    if (thread.exited) return;
    const wasServing = thread.serving;
    // While starting, this is what start() or the restart reports.
    thread.gone(wasServing ? message : `Worker ${thread.index} failed to start: ${message}`);
    if (this.#threads[thread.index] !== thread) return;
    if (thread.lastSnapshot !== undefined) {
      this.#retired = this.#options.metrics.retain(this.#retired, thread.lastSnapshot);
    }
    this.#publish();
    if (this.#stopping || !wasServing) return;
    this.#options.metrics.workerExits.inc({ reason });
    const servedLong = performance.now() - thread.startedAt >= this.#tuning.restartResetMs;
    this.#scheduleRestart(thread.index, reason, message, servedLong);
  }

  #scheduleRestart(index: number, reason: ExitReason, message: string, reset: boolean): void {
    if (reset) this.#exits[index] = 0;
    const delay = Math.min(
      this.#tuning.restartBaseMs * 2 ** Math.min(this.#exits[index], 20),
      this.#tuning.restartMaxMs,
    );
    this.#exits[index]++;
    this.#options.logger.error("worker_exited", {
      worker: index,
      reason,
      message,
      restart_in_ms: delay,
    });
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      this.exclusive(() => this.#restart(index));
    }, delay);
    this.#restartTimers.add(timer);
  }

  async #restart(index: number): Promise<void> {
    if (this.#stopping) return;
    try {
      await this.#begin(this.#create(index), this.#port);
      this.#options.logger.info("worker_restarted", { worker: index });
    } catch (error) {
      if (this.#stopping) return;
      this.#options.metrics.workerExits.inc({ reason: "start_failed" });
      const message = error instanceof Error ? error.message : String(error);
      this.#scheduleRestart(index, "start_failed", message, false);
    }
  }

  /** Pings each worker; one silent for unresponsiveMs is replaced. */
  #beat(): void {
    const now = performance.now();
    for (const thread of this.#threads) {
      if (thread === undefined || !thread.serving) continue;
      if (now - thread.lastSeen > this.#tuning.unresponsiveMs) {
        this.#exited(thread, "unresponsive", `no answer for ${this.#tuning.unresponsiveMs} ms`);
      } else {
        thread.post({ type: "ping", id: ++this.#nextId });
      }
    }
  }

  #publish(): void {
    this.#options.metrics.workersServing.set({}, this.serving);
  }
}
