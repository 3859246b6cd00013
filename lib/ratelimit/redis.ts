import { createHash } from "node:crypto";
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
  /**
   * Called on connection state changes, for logging; with "error" (called
   * on every failed reconnect attempt) comes the reason in plain words.
   */
  readonly onState?: (state: "ready" | "error", reason?: string) => void;
}

/** A failed limiter command; its message is the reason in plain words (see `describeRedisError`). */
export class RedisUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RedisUnavailableError";
  }
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

/**
 * An ioredis error in words an operator can act on ("Stream isn't writeable
 * and enableOfflineQueue options is false" means: not connected). Never
 * contains credentials.
 */
export function describeRedisError(error: unknown, timeoutMs: number): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (/stream isn't writeable|connection is closed|enableOfflineQueue/i.test(message)) {
    return "not connected (reconnecting in the background)";
  }
  if (/command timed out/i.test(message)) {
    return `no answer within ${timeoutMs} ms (redis.timeout_ms)`;
  }
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ETIMEDOUT":
      return "connect timed out";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "its host name does not resolve";
    case "ECONNRESET":
      return "connection reset";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
  }
  if (/^(WRONGPASS|NOAUTH|NOPERM)\b/.test(message)) {
    return `authentication failed: ${firstLine(message)}`;
  }
  return firstLine(message);
}

function firstLine(message: string): string {
  // Credentials in any URL an error quotes are cut out.
  return message.split("\n")[0].replace(/\/\/[^/@\s]*@/g, "//");
}

/** The Redis limiter; exact across every gateway instance sharing the Redis. */
export class RedisLimiter implements Limiter {
  /** `host:port` of the server, for logs. */
  readonly address: string;
  readonly #redis: Redis & { slidingWindowLog: LimitCommand };
  readonly #timeoutMs: number;
  readonly #settled: Promise<void>;
  // Members must be unique even for two requests in one microsecond on two
  // instances: a random instance id plus a counter.
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #counter = 0;

  private constructor(redis: Redis, options: RedisLimiterOptions, settled: Promise<void>) {
    this.#redis = redis as Redis & { slidingWindowLog: LimitCommand };
    this.address = redisAddress(options.url);
    this.#timeoutMs = options.timeoutMs;
    this.#settled = settled;
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
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => settle = resolve);
    redis.on("ready", () => {
      settle();
      options.onState?.("ready");
    });
    redis.on("error", (error: Error) => {
      settle();
      options.onState?.("error", describeRedisError(error, options.timeoutMs));
    });
    return new RedisLimiter(redis, options, settled);
  }

  /**
   * Resolves once the first connection attempt has succeeded or failed, or
   * after `maxMs`, whichever comes first: at start-up a refused connection
   * is then reported before the first request, and a reachable Redis is
   * ready for it. Never rejects.
   */
  async firstAttempt(maxMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => timer = setTimeout(resolve, maxMs));
    await Promise.race([this.#settled, expired]);
    clearTimeout(timer);
  }

  async check({ key, limit, windowMs }: LimitRequest): Promise<Decision> {
    if (this.#counter >= Number.MAX_SAFE_INTEGER) this.#counter = 0;
    const member = `${this.#instance}:${this.#counter++}`;
    let reply: [number, number, number];
    try {
      reply = await this.#redis.slidingWindowLog(storageKey(key), windowMs * 1000, limit, member);
    } catch (error) {
      throw new RedisUnavailableError(describeRedisError(error, this.#timeoutMs), {
        cause: error,
      });
    }
    const [allowed, count, resetUs] = reply;
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

/**
 * The Redis key of a bucket: the route id and a hash of the client's
 * identity, never the identity itself (it may be an API key). The braces
 * are a Redis Cluster hash tag.
 */
export function storageKey(bucket: string): string {
  const cached = recentKeys.get(bucket);
  if (cached !== undefined) return cached;
  const split = bucket.indexOf("\u0000");
  const digest = createHash("sha256").update(bucket.slice(split + 1)).digest("base64url")
    .slice(0, 22);
  const key = `vanguard:rl:{${bucket.slice(0, split)}:${digest}}`;
  // A bounded memo of recent clients: hashing costs more than the lookup.
  if (recentKeys.size >= 10_000) recentKeys.clear();
  recentKeys.set(bucket, key);
  return key;
}

const recentKeys = new Map<string, string>();
