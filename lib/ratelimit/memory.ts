import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/** One client's admitted request times, oldest first, from `head` on. */
interface Bucket {
  times: number[];
  head: number;
}

/**
 * The sliding window log in process memory: each bucket keeps the times of
 * the requests it admitted in the last window, oldest first. Exact for one
 * process; with several instances each one limits on its own.
 */
export class MemoryLimiter implements Limiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  readonly #sweeper: number;
  #longestWindow = 0;

  /** `now` is a clock in milliseconds (default performance.now, which never jumps back). */
  constructor(options: { now?: () => number; sweepIntervalMs?: number } = {}) {
    this.#now = options.now ?? (() => performance.now());
    // Buckets of clients that went quiet would otherwise stay forever.
    // (Deno's timers are numbers; node typings in scope say otherwise.)
    this.#sweeper = setInterval(
      () => this.sweep(),
      options.sweepIntervalMs ?? 60_000,
    ) as unknown as number;
    Deno.unrefTimer(this.#sweeper);
  }

  check({ key, limit, windowMs }: LimitRequest): Promise<Decision> {
    if (windowMs > this.#longestWindow) this.#longestWindow = windowMs;
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { times: [], head: 0 };
      this.#buckets.set(key, bucket);
    }
    const times = bucket.times;
    // Expired entries are skipped by moving `head`, not removed one call at a
    // time (splice allocates and copies on every request); the array is
    // compacted once the dead part is large.
    while (bucket.head < times.length && times[bucket.head] <= now - windowMs) bucket.head++;
    if (bucket.head > 64 && bucket.head * 2 > times.length) {
      bucket.times = times.slice(bucket.head);
      bucket.head = 0;
    }
    const live = bucket.times;
    let count = live.length - bucket.head;
    const allowed = count < limit;
    if (allowed) {
      live.push(now);
      count++;
    }
    // The slot that frees next is the one whose departure brings the count below the limit.
    const index = bucket.head + Math.max(0, count - limit);
    const resetMs = count === 0 ? 0 : Math.max(0, live[index] + windowMs - now);
    return Promise.resolve({ allowed, remaining: Math.max(0, limit - count), resetMs });
  }

  /** Drops buckets with nothing left in any window; runs on a timer. */
  sweep(): void {
    const cutoff = this.#now() - this.#longestWindow;
    for (const [key, { times, head }] of this.#buckets) {
      if (head >= times.length || times[times.length - 1] <= cutoff) this.#buckets.delete(key);
    }
  }

  /** Number of buckets held (for tests and sizing). */
  get size(): number {
    return this.#buckets.size;
  }

  close(): Promise<void> {
    clearInterval(this.#sweeper);
    return Promise.resolve();
  }
}
