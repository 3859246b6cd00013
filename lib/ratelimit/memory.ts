import type { Metrics } from "../admin/metrics.ts";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/** `server.memory_limiter_max_bytes` when nothing else is said: 64 MiB. */
export const DEFAULT_MEMORY_LIMITER_MAX_BYTES = 64 * 1024 * 1024;

/*
 * What a bucket costs, measured twice (Deno 2.9.6, V8 15.0). On the heap
 * alone (tests/ratelimit/memory_heap_probe.ts: 100,000 buckets with 55-
 * character keys and one timestamp, after a full GC): heapUsed grew 366 B
 * per bucket, heapTotal 650-830 B. In the whole gateway process (deno task
 * bench:limiter-memory: RSS after 100,000 requests from distinct clients,
 * less RSS after as many from one client): 61-67 MB for 75,000 buckets and
 * 40 MB for 37,500, about 720 B per bucket plus some 13 MB of churn, since V8
 * keeps free heap beside the live objects. The estimate counts that, so the
 * budget bounds what the process grows by, not only the buckets' live
 * bytes. With 30 and 100
 * timestamps, heapTotal grew 16-19 B per extra timestamp.
 */
/** Estimated process memory of a bucket apart from its key and timestamps (entry, objects, first array). */
export const BUCKET_BYTES = 1000;
/** Estimated bytes per character of a bucket key. */
export const KEY_CHAR_BYTES = 2;
/** Estimated bytes per timestamp a bucket holds. */
export const TIMESTAMP_BYTES = 16;

/** The estimated memory of one bucket, as the budget counts it. */
export function bucketBytes(key: string, timestamps: number): number {
  return BUCKET_BYTES + KEY_CHAR_BYTES * key.length + TIMESTAMP_BYTES * timestamps;
}

/**
 * One client's admitted request times, oldest first, from `head` on; also a
 * node of the list that keeps buckets in order of last use.
 */
class Bucket {
  readonly key: string;
  times: number[] = [];
  head = 0;
  /** The window of the last check: the bucket is dead once its newest time is that old. */
  windowMs: number;
  prev: Bucket = this;
  next: Bucket = this;

  constructor(key: string, windowMs: number) {
    this.key = key;
    this.windowMs = windowMs;
  }
}

/** How to build a MemoryLimiter; every field has a default. */
export interface MemoryLimiterOptions {
  /** A clock in milliseconds (default performance.now, which never jumps back). */
  readonly now?: () => number;
  /** How often buckets with nothing left in their window are dropped (default 60 s). */
  readonly sweepIntervalMs?: number;
  /** Upper bound of the estimated memory of all buckets (default 64 MiB). */
  readonly maxBytes?: number;
  /** Where evictions and the bucket gauges are published. */
  readonly metrics?: Metrics;
}

/**
 * The sliding window log in process memory: each bucket keeps the times of
 * the requests it admitted in the last window, oldest first. Exact for one
 * process; with several instances each one limits on its own.
 *
 * The buckets' estimated memory stays under `maxBytes`. Past it, buckets
 * whose window has passed go first (they hold nothing), then the least
 * recently used ones. Evicting a live bucket forgets what its client did:
 * that client starts over with a full quota, so under pressure a limit can
 * leak. Every such eviction counts in `vanguard_ratelimit_evictions_total`.
 */
export class MemoryLimiter implements Limiter {
  readonly #buckets = new Map<string, Bucket>();
  /** Sentinel of the circular list: `next` is the least recently used bucket, `prev` the most. */
  readonly #lru = new Bucket("", 0);
  readonly #now: () => number;
  readonly #maxBytes: number;
  readonly #metrics?: Metrics;
  readonly #sweeper: number;
  readonly #unpublish?: () => void;
  #bytes = 0;
  #checksSinceSweep = 0;

  constructor(options: MemoryLimiterOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#maxBytes = options.maxBytes ?? DEFAULT_MEMORY_LIMITER_MAX_BYTES;
    this.#metrics = options.metrics;
    // Buckets of clients that went quiet would otherwise stay until pressure.
    // (Deno's timers are numbers; node typings in scope say otherwise.)
    this.#sweeper = setInterval(
      () => this.sweep(),
      options.sweepIntervalMs ?? 60_000,
    ) as unknown as number;
    Deno.unrefTimer(this.#sweeper);
    const metrics = options.metrics;
    // Read at scrape time, so the request path never touches the gauges.
    this.#unpublish = metrics?.beforeRender(() => {
      metrics.rateLimitMemoryBuckets.set({}, this.#buckets.size);
      metrics.rateLimitMemoryBytes.set({}, this.#bytes);
    });
  }

  check({ key, limit, windowMs }: LimitRequest): Promise<Decision> {
    const now = this.#now();
    const lru = this.#lru;
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = new Bucket(key, windowMs);
      this.#buckets.set(key, bucket);
      this.#bytes += bucketBytes(key, 0);
      append(lru, bucket);
    } else {
      bucket.windowMs = windowMs;
      if (lru.prev !== bucket) {
        unlink(bucket);
        append(lru, bucket);
      }
    }
    const times = bucket.times;
    // Expired entries are skipped by moving `head`, not removed one call at a
    // time (splice allocates and copies on every request); the array is
    // compacted once the dead part is large, or emptied once all of it is.
    while (bucket.head < times.length && times[bucket.head] <= now - windowMs) bucket.head++;
    if (bucket.head > 0 && bucket.head === times.length) {
      this.#bytes -= TIMESTAMP_BYTES * times.length;
      times.length = 0;
      bucket.head = 0;
    } else if (bucket.head > 64 && bucket.head * 2 > times.length) {
      this.#bytes -= TIMESTAMP_BYTES * bucket.head;
      bucket.times = times.slice(bucket.head);
      bucket.head = 0;
    }
    let live = bucket.times;
    let count = live.length - bucket.head;
    const allowed = count < limit;
    if (allowed) {
      // A first time gets an array of exactly one; push() would reserve 17.
      if (live.length === 0) live = bucket.times = [now];
      else live.push(now);
      this.#bytes += TIMESTAMP_BYTES;
      count++;
    }
    // The slot that frees next is the one whose departure brings the count below the limit.
    const index = bucket.head + Math.max(0, count - limit);
    const resetMs = count === 0 ? 0 : Math.max(0, live[index] + windowMs - now);
    this.#checksSinceSweep++;
    if (this.#bytes > this.#maxBytes) this.#relieve(now, bucket);
    return Promise.resolve({ allowed, remaining: Math.max(0, limit - count), resetMs });
  }

  /**
   * Drops buckets until the estimate is within budget again: dead ones for
   * free, then live ones from the least recently used on, never `current`.
   */
  #relieve(now: number, current: Bucket): void {
    const lru = this.#lru;
    let evicted = 0;
    let swept = false;
    while (this.#bytes > this.#maxBytes) {
      const oldest = lru.next;
      if (oldest === lru || oldest === current) break;
      if (!isDead(oldest, now)) {
        // Dead buckets may hide behind live ones (windows differ per route).
        // A full sweep costs one step per bucket; allowing one only after
        // half as many checks as there are buckets keeps it O(1) per check.
        if (!swept && this.#checksSinceSweep * 2 >= this.#buckets.size) {
          swept = true;
          this.#sweepAt(now);
          continue;
        }
        evicted++;
      }
      this.#remove(oldest);
    }
    if (evicted > 0) this.#metrics?.rateLimitEvictions.inc({}, evicted);
  }

  /** Drops buckets with nothing left in their window; runs on a timer. */
  sweep(): void {
    this.#sweepAt(this.#now());
  }

  #sweepAt(now: number): void {
    this.#checksSinceSweep = 0;
    const lru = this.#lru;
    let bucket = lru.next;
    while (bucket !== lru) {
      const next = bucket.next;
      if (isDead(bucket, now)) this.#remove(bucket);
      bucket = next;
    }
  }

  #remove(bucket: Bucket): void {
    unlink(bucket);
    this.#buckets.delete(bucket.key);
    this.#bytes -= bucketBytes(bucket.key, bucket.times.length);
  }

  /** Number of buckets held (for tests and sizing). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Estimated memory of the buckets held, in bytes (see BUCKET_BYTES). */
  get bytes(): number {
    return this.#bytes;
  }

  close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#unpublish?.();
    return Promise.resolve();
  }
}

/** Whether a bucket counts nothing any more: no time left in its last window. */
function isDead(bucket: Bucket, now: number): boolean {
  const times = bucket.times;
  return bucket.head >= times.length || times[times.length - 1] <= now - bucket.windowMs;
}

function unlink(bucket: Bucket): void {
  bucket.prev.next = bucket.next;
  bucket.next.prev = bucket.prev;
}

/** Makes `bucket` the most recently used. */
function append(lru: Bucket, bucket: Bucket): void {
  bucket.prev = lru.prev;
  bucket.next = lru;
  lru.prev.next = bucket;
  lru.prev = bucket;
}
