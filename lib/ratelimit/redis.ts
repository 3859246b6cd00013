import type { Redis } from "ioredis";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/**
 * The sliding window log on a Redis sorted set, in one Lua script so that
 * the check and the insert are one atomic round trip: the time comes from
 * Redis (TIME), so instances with skewed clocks still agree; entries older
 * than the window are dropped, the rest counted, and only an admitted
 * request is added (a client that keeps hammering is not locked out by
 * its own rejected requests). Scores are microseconds.
 */
const SLIDING_WINDOW_LOG = `
local key = KEYS[1]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local reset = 0
local index = count - limit
if index < 0 then index = 0 end
local entry = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
if entry[2] then reset = tonumber(entry[2]) + window - now end
return { allowed, count, reset }
`;

type LimitCommand = (
  key: string,
  windowUs: number,
  limit: number,
  member: string,
) => Promise<[number, number, number]>;

/** Redis connection settings. */
export interface RedisLimiterOptions {
  readonly url: string;
  /** A command slower than this fails (and the caller's failure mode applies). */
  readonly timeoutMs: number;
  /** Called on connection state changes, for logging. */
  readonly onState?: (state: "ready" | "error", error?: Error) => void;
}

/** The Redis limiter; exact across every gateway instance sharing the Redis. */
export class RedisLimiter implements Limiter {
  readonly #redis: Redis & { slidingWindowLog: LimitCommand };
  // Members must be unique even for two requests in one microsecond on two
  // instances: a random instance id plus a counter.
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #counter = 0;

  private constructor(redis: Redis) {
    this.#redis = redis as Redis & { slidingWindowLog: LimitCommand };
  }

  /**
   * Creates the client; connecting continues in the background. ioredis is
   * loaded only here, so a gateway without Redis never imports it (its
   * `debug` dependency reads the whole environment at import).
   */
  static async create(options: RedisLimiterOptions): Promise<RedisLimiter> {
    const { Redis } = await import("ioredis");
    const redis = new Redis(options.url, {
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs),
      // Fail at once while disconnected instead of queueing: a queued
      // request would wait for Redis, and the gateway never waits on Redis.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      enableAutoPipelining: true,
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
      lazyConnect: false,
    });
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT
    // (after a restart or SCRIPT FLUSH).
    redis.defineCommand("slidingWindowLog", { numberOfKeys: 1, lua: SLIDING_WINDOW_LOG });
    redis.on("ready", () => options.onState?.("ready"));
    redis.on("error", (error: Error) => options.onState?.("error", error));
    return new RedisLimiter(redis);
  }

  async check({ key, limit, windowMs }: LimitRequest): Promise<Decision> {
    if (this.#counter >= Number.MAX_SAFE_INTEGER) this.#counter = 0;
    const member = `${this.#instance}:${this.#counter++}`;
    const [allowed, count, resetUs] = await this.#redis.slidingWindowLog(
      key,
      windowMs * 1000,
      limit,
      member,
    );
    return {
      allowed: allowed === 1,
      remaining: Math.max(0, limit - count),
      resetMs: Math.max(0, resetUs / 1000),
    };
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.#redis.status === "ready";
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
