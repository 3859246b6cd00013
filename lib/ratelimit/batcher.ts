/**
 * Coalesces many small requests to a remote store into few calls: what
 * arrives in one event-loop turn, or while earlier calls are in flight, goes
 * out as one batch, in arrival order. Every wait is bounded: a batch holds at
 * most `maxBatch` items, at most `maxInFlight` batches of a partition are out
 * at once, at most `maxQueued` items wait for a slot, an item waits at most
 * `timeoutMs` for a slot and a batch at most `timeoutMs` for its answer.
 *
 * @module
 */

/** The clock and timers a Batcher uses; injectable so that tests need no sleeps. */
export interface BatcherTimers {
  /** Milliseconds, never going back. */
  now(): number;
  /** Returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What a Batcher sends with, and its bounds. */
export interface BatcherOptions<In, Out> {
  /**
   * Sends one batch: items of one partition, in arrival order. It answers
   * one result per item, in the same order; an `Error` in place of a result
   * fails that item alone. A rejection fails every item of the batch, and
   * those queued behind it. It should settle within about `timeoutMs` by
   * itself: giving up on a batch does not cancel it, and its slot stays
   * taken until it settles.
   */
  readonly send: (partition: string, items: readonly In[]) => Promise<readonly (Out | Error)[]>;
  /** Most items in one batch. */
  readonly maxBatch: number;
  /** Most batches of one partition out at once. */
  readonly maxInFlight: number;
  /** Most items waiting to be sent, over all partitions; beyond it, `submit` fails at once. */
  readonly maxQueued: number;
  /**
   * An item that waits this long for a slot, or a batch that waits this long
   * for its answer, fails with `errors.timeout()`.
   */
  readonly timeoutMs: number;
  /** The errors the Batcher itself fails items with; given the items' partition. */
  readonly errors: {
    /** No answer within `timeoutMs`. */
    timeout(partition: string): Error;
    /** `maxQueued` items are waiting already. */
    overflow(partition: string): Error;
    /** The Batcher is closed. */
    closed(): Error;
  };
  readonly timers?: BatcherTimers;
}

const QUEUED = 0;
const SENT = 1;
const DONE = 2;

interface Entry<In, Out> {
  readonly item: In;
  readonly partition: Partition<In, Out>;
  /** When it gives up waiting for a free slot. */
  readonly deadline: number;
  state: typeof QUEUED | typeof SENT | typeof DONE;
  resolve(value: Out): void;
  reject(error: Error): void;
}

interface Batch<In, Out> {
  readonly partition: Partition<In, Out>;
  readonly entries: readonly Entry<In, Out>[];
  /** When its entries stop waiting for the answer. */
  readonly deadline: number;
  /** Neither answered nor given up on yet. */
  open: boolean;
}

/** An array used as a first-in first-out queue without the cost of `shift()`. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined as T;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the queue and returns what it held, in order. */
  drain(): T[] {
    const rest = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return rest;
  }
}

/** The items that may share a batch: what waits for a slot, and how many batches are out. */
class Partition<In, Out> {
  readonly key: string;
  /** Only entries still QUEUED, in arrival order. */
  readonly queue = new Fifo<Entry<In, Out>>();
  inFlight = 0;
  /** A flush is already scheduled for the end of this turn. */
  scheduled = false;

  constructor(key: string) {
    this.key = key;
  }
}

const REAL_TIMERS: BatcherTimers = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Sends submitted items in batches, per partition. Items of different
 * partitions never share a batch (on Redis Cluster a partition is the node
 * that owns the items' slots, and each batch goes to that one node); with a
 * single server, everything is one partition.
 *
 * Waiting is bounded twice: an item waits at most `timeoutMs` for a free
 * slot (then it fails and is never sent), and a batch waits at most
 * `timeoutMs` for its answer. When a batch fails or goes unanswered, what
 * waits behind it in its partition fails with it at once: it would have
 * been sent to the same store. So an item waits at most twice `timeoutMs`,
 * and about `timeoutMs` when the store stops answering.
 *
 * @example
 * ```ts
 * const batcher = new Batcher<number, number>({
 *   send: (_partition, items) => Promise.resolve(items.map((n) => n * 2)),
 *   maxBatch: 128,
 *   maxInFlight: 2,
 *   maxQueued: 1024,
 *   timeoutMs: 50,
 *   errors: {
 *     timeout: () => new Error("No answer within 50 ms"),
 *     overflow: () => new Error("Too many waiting"),
 *     closed: () => new Error("Closed"),
 *   },
 * });
 * await Promise.all([batcher.submit("", 1), batcher.submit("", 2)]); // one send: [2, 4]
 * ```
 */
export class Batcher<In, Out> {
  readonly #send: BatcherOptions<In, Out>["send"];
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #maxQueued: number;
  readonly #timeoutMs: number;
  readonly #errors: BatcherOptions<In, Out>["errors"];
  readonly #timers: BatcherTimers;
  readonly #partitions = new Map<string, Partition<In, Out>>();
  /** Queued entries of every partition in arrival order, so in deadline order (sent ones are skipped lazily). */
  readonly #waiting = new Fifo<Entry<In, Out>>();
  /** Batches in flight in the order sent, so in deadline order (settled ones are skipped lazily). */
  readonly #flying = new Fifo<Batch<In, Out>>();
  #queued = 0;
  #timer: unknown;
  #closed = false;

  constructor(options: BatcherOptions<In, Out>) {
    for (const name of ["maxBatch", "maxInFlight", "maxQueued"] as const) {
      if (!Number.isInteger(options[name]) || options[name] < 1) {
        throw new RangeError(`Batcher ${name} must be a positive integer, got ${options[name]}`);
      }
    }
    if (!(options.timeoutMs > 0)) {
      throw new RangeError(`Batcher timeoutMs must be positive, got ${options.timeoutMs}`);
    }
    this.#send = options.send;
    this.#maxBatch = options.maxBatch;
    this.#maxInFlight = options.maxInFlight;
    this.#maxQueued = options.maxQueued;
    this.#timeoutMs = options.timeoutMs;
    this.#errors = options.errors;
    this.#timers = options.timers ?? REAL_TIMERS;
  }

  /** Items waiting for a slot now (not counting those in flight). */
  get queued(): number {
    return this.#queued;
  }

  /** Batches out now, over all partitions (also those given up on but not settled yet). */
  get inFlight(): number {
    let total = 0;
    for (const partition of this.#partitions.values()) total += partition.inFlight;
    return total;
  }

  /**
   * Queues `item` for the next batch of `partition`; resolves with its
   * result, or rejects: its batch failed or went unanswered, no slot within
   * `timeoutMs`, `maxQueued` items waiting already, or closed.
   */
  submit(partition: string, item: In): Promise<Out> {
    if (this.#closed) return Promise.reject(this.#errors.closed());
    if (this.#queued >= this.#maxQueued) {
      return Promise.reject(this.#errors.overflow(partition));
    }
    let group = this.#partitions.get(partition);
    if (group === undefined) {
      group = new Partition(partition);
      this.#partitions.set(partition, group);
    }
    const { promise, resolve, reject } = Promise.withResolvers<Out>();
    const entry: Entry<In, Out> = {
      item,
      partition: group,
      deadline: this.#timers.now() + this.#timeoutMs,
      state: QUEUED,
      resolve,
      reject,
    };
    group.queue.push(entry);
    this.#queued++;
    this.#waiting.push(entry);
    // Deadlines only grow: an armed timer is never later than this one.
    if (this.#timer === undefined) this.#arm();
    if (!group.scheduled && group.inFlight < this.#maxInFlight) {
      // Not sent at once: what else arrives in this turn goes along.
      group.scheduled = true;
      const target = group;
      queueMicrotask(() => this.#flush(target));
    }
    return promise;
  }

  /** Fails everything not answered yet with `errors.closed()`; later submits fail at once. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    const error = this.#errors.closed();
    for (const batch of this.#flying.drain()) {
      if (batch.open) this.#fail(batch, error);
    }
    for (const partition of this.#partitions.values()) this.#failQueue(partition, error);
    this.#partitions.clear();
    this.#waiting.drain();
  }

  /** Sends batches from the partition's queue while it has free slots. */
  #flush(partition: Partition<In, Out>): void {
    partition.scheduled = false;
    if (this.#closed) return;
    while (partition.inFlight < this.#maxInFlight && partition.queue.length > 0) {
      const entries: Entry<In, Out>[] = [];
      while (entries.length < this.#maxBatch) {
        const entry = partition.queue.shift();
        if (entry === undefined) break;
        entry.state = SENT;
        this.#queued--;
        entries.push(entry);
      }
      this.#dispatch(partition, entries);
    }
    this.#forgetIfIdle(partition);
  }

  #dispatch(partition: Partition<In, Out>, entries: Entry<In, Out>[]): void {
    partition.inFlight++;
    const batch: Batch<In, Out> = {
      partition,
      entries,
      deadline: this.#timers.now() + this.#timeoutMs,
      open: true,
    };
    this.#flying.push(batch);
    if (this.#timer === undefined) this.#arm();
    const items = entries.map((entry) => entry.item);
    let reply: Promise<readonly (Out | Error)[]>;
    try {
      reply = this.#send(partition.key, items);
    } catch (error) {
      reply = Promise.reject(error);
    }
    reply.then(
      (results) => {
        if (batch.open) this.#answer(batch, results);
        this.#release(partition);
      },
      (error) => {
        if (batch.open) {
          this.#fail(batch, error instanceof Error ? error : new Error(String(error)));
        }
        this.#release(partition);
      },
    );
  }

  #answer(batch: Batch<In, Out>, results: readonly (Out | Error)[]): void {
    if (results.length !== batch.entries.length) {
      const error = new Error(`A batch of ${batch.entries.length} got ${results.length} results`);
      this.#fail(batch, error);
      return;
    }
    batch.open = false;
    for (let i = 0; i < results.length; i++) {
      const entry = batch.entries[i];
      entry.state = DONE;
      const result = results[i];
      if (result instanceof Error) entry.reject(result);
      else entry.resolve(result);
    }
  }

  /** Fails the batch, and what waits behind it: it would meet the same store. */
  #fail(batch: Batch<In, Out>, error: Error): void {
    batch.open = false;
    for (const entry of batch.entries) {
      entry.state = DONE;
      entry.reject(error);
    }
    this.#failQueue(batch.partition, error);
  }

  #failQueue(partition: Partition<In, Out>, error: Error): void {
    for (
      let entry = partition.queue.shift();
      entry !== undefined;
      entry = partition.queue.shift()
    ) {
      entry.state = DONE;
      this.#queued--;
      entry.reject(error);
    }
  }

  /** A batch settled: its slot is free (only now, even if it was given up on earlier). */
  #release(partition: Partition<In, Out>): void {
    partition.inFlight--;
    if (this.#closed) return;
    // What queued up during the round trip goes now, as one batch.
    this.#flush(partition);
  }

  /** Drops a partition with nothing queued or in flight (on a cluster there may be many). */
  #forgetIfIdle(partition: Partition<In, Out>): void {
    if (
      partition.inFlight === 0 && partition.queue.length === 0 && !partition.scheduled &&
      this.#partitions.get(partition.key) === partition
    ) {
      this.#partitions.delete(partition.key);
    }
  }

  /** Sets the timer for the earliest deadline of a queued entry or an open batch, if any. */
  #arm(): void {
    while (this.#flying.length > 0 && !this.#flying.peek()!.open) this.#flying.shift();
    while (this.#waiting.length > 0 && this.#waiting.peek()!.state !== QUEUED) {
      this.#waiting.shift();
    }
    if (this.#closed) return;
    const next = Math.min(
      this.#flying.peek()?.deadline ?? Infinity,
      this.#waiting.peek()?.deadline ?? Infinity,
    );
    if (next === Infinity) return;
    const wait = Math.max(0, next - this.#timers.now());
    this.#timer = this.#timers.setTimeout(() => this.#expire(), wait);
  }

  /**
   * Gives up on what has waited `timeoutMs`. Only the fronts of the two
   * queues are looked at; under steady traffic they are answered long
   * before their deadline, so the timer fires about once per `timeoutMs`,
   * not once per item.
   */
  #expire(): void {
    this.#timer = undefined;
    const now = this.#timers.now();
    // One error per partition (they may name where the answer did not come from).
    const errors = new Map<Partition<In, Out>, Error>();
    const timeout = (partition: Partition<In, Out>) => {
      let error = errors.get(partition);
      if (error === undefined) {
        error = this.#errors.timeout(partition.key);
        errors.set(partition, error);
      }
      return error;
    };
    for (let batch = this.#flying.peek(); batch !== undefined; batch = this.#flying.peek()) {
      if (batch.open) {
        if (batch.deadline > now) break;
        // Its answer, if one comes, is ignored; its slot stays taken until then.
        this.#fail(batch, timeout(batch.partition));
      }
      this.#flying.shift();
    }
    for (let entry = this.#waiting.peek(); entry !== undefined; entry = this.#waiting.peek()) {
      if (entry.state === QUEUED) {
        if (entry.deadline > now) break;
        // Never sent, so never counted. Same timeout for all, arrival order:
        // it is the front of its partition's queue.
        if (entry.partition.queue.peek() === entry) entry.partition.queue.shift();
        entry.state = DONE;
        this.#queued--;
        entry.reject(timeout(entry.partition));
        this.#forgetIfIdle(entry.partition);
      }
      this.#waiting.shift();
    }
    this.#arm();
  }
}
