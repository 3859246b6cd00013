import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/**
 * The sliding window log in process memory: each bucket keeps the times of
 * the requests it admitted in the last window, oldest first. Exact for one
 * process; with several instances each one limits on its own.
 */
export class MemoryLimiter implements Limiter {
  readonly #buckets = new Map<string, number[]>();
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
    let log = this.#buckets.get(key);
    if (log === undefined) {
      log = [];
      this.#buckets.set(key, log);
    }
    let expired = 0;
    while (expired < log.length && log[expired] <= now - windowMs) expired++;
    if (expired > 0) log.splice(0, expired);
    const allowed = log.length < limit;
    if (allowed) log.push(now);
    // The slot that frees next is the one whose departure brings the count below the limit.
    const index = Math.max(0, log.length - limit);
    const resetMs = log.length === 0 ? 0 : Math.max(0, log[index] + windowMs - now);
    return Promise.resolve({ allowed, remaining: Math.max(0, limit - log.length), resetMs });
  }

  /** Drops buckets with nothing left in any window; runs on a timer. */
  sweep(): void {
    const cutoff = this.#now() - this.#longestWindow;
    for (const [key, log] of this.#buckets) {
      if (log.length === 0 || log[log.length - 1] <= cutoff) this.#buckets.delete(key);
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
