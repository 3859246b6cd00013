import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { Batcher } from "./batcher.ts";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/** The only partition while Vanguard talks to a single Redis (see `RedisLimiter.check`). */
const SINGLE_PARTITION = "";

/**
 * The sliding window log on Redis sorted sets, for a whole batch of checks
 * in one Lua script: one round trip, atomic, the checks done in the order
 * given. KEYS are the buckets' keys in arrival order (a key may repeat);
 * ARGV holds a [window in microseconds, limit, member] triple per check.
 *
 * Each check is what one request needs: entries older than the window are
 * dropped, the rest counted, and only an admitted request is added (a
 * client that keeps hammering is not locked out by its own rejected
 * requests). The time comes from Redis (TIME, once for the batch: every
 * check in it arrived before the batch was sent), so instances with skewed
 * clocks still agree. Scores are microseconds.
 *
 * The reply is flat: [allowed, count, reset in microseconds] per check. A
 * check whose key holds something other than a sorted set answers
 * [-1, the error, 0] and fails alone (pcall on the first command that
 * touches the key, before anything is written for that check).
 */
const SLIDING_WINDOW_LOG_BATCH = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out = {}
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 3
  local window = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local trimmed = redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if type(trimmed) == 'table' and trimmed.err then
    out[base + 1] = -1
    out[base + 2] = trimmed.err
    out[base + 3] = 0
  else
    local count = redis.call('ZCARD', key)
    local allowed = 0
    if count < limit then
      redis.call('ZADD', key, now, now .. ':' .. ARGV[base + 3])
      redis.call('PEXPIRE', key, math.ceil(window / 1000))
      count = count + 1
      allowed = 1
    end
    local reset = 0
    local index = count - limit
    if index < 0 then index = 0 end
    local entry = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
    if entry[2] then reset = tonumber(entry[2]) + window - now end
    out[base + 1] = allowed
    out[base + 2] = count
    out[base + 3] = reset
  end
end
return out
`;

/** The script as ioredis defines it: the number of keys comes first (numberOfKeys is left out). */
type BatchCommand = (
  keyCount: number,
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<(number | string)[]>;

/** One check as the batch script takes it. */
interface Check {
  /** `storageKey()` of the bucket. */
  readonly key: string;
  readonly windowUs: number;
  readonly limit: number;
  readonly member: string;
}

/** Most checks in one script call (default). */
export const DEFAULT_BATCH_SIZE = 256;
/** Most script calls out at once (default). */
export const DEFAULT_BATCHES_IN_FLIGHT = 2;
/** Most checks waiting for a free call (default); beyond it a check fails at once. */
export const DEFAULT_MAX_QUEUED = 2048;

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
  /** Batching bounds; the defaults are `DEFAULT_BATCH_SIZE` and its neighbours. */
  readonly batch?: {
    readonly maxSize?: number;
    readonly maxInFlight?: number;
    readonly maxQueued?: number;
  };
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

/**
 * The Redis limiter; exact across every gateway instance sharing the Redis.
 * Checks are batched: those that arrive in one event-loop turn, or while
 * earlier batches are out, go as one script call (see
 * `SLIDING_WINDOW_LOG_BATCH`), which costs the gateway one command instead
 * of one per request.
 */
export class RedisLimiter implements Limiter {
  /** `host:port` of the server, for logs. */
  readonly address: string;
  readonly #redis: Redis & { slidingWindowLogBatch: BatchCommand };
  readonly #timeoutMs: number;
  readonly #settled: Promise<void>;
  readonly #batcher: Batcher<Check, Decision>;
  // Members must be unique even for two requests in one microsecond on two
  // instances (and within one batch, which shares one TIME): a random
  // instance id plus a counter.
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #counter = 0;

  private constructor(redis: Redis, options: RedisLimiterOptions, settled: Promise<void>) {
    this.#redis = redis as Redis & { slidingWindowLogBatch: BatchCommand };
    this.address = redisAddress(options.url);
    this.#timeoutMs = options.timeoutMs;
    this.#settled = settled;
    const timeoutMs = options.timeoutMs;
    this.#batcher = new Batcher<Check, Decision>({
      send: (_partition, checks) => this.#send(checks),
      maxBatch: options.batch?.maxSize ?? DEFAULT_BATCH_SIZE,
      maxInFlight: options.batch?.maxInFlight ?? DEFAULT_BATCHES_IN_FLIGHT,
      maxQueued: options.batch?.maxQueued ?? DEFAULT_MAX_QUEUED,
      // At most this long for a free slot, and this long for the answer (as
      // ioredis's commandTimeout); checks queued behind a batch that failed
      // or went unanswered fail with it at once.
      timeoutMs,
      errors: {
        timeout: () =>
          new RedisUnavailableError(`no answer within ${timeoutMs} ms (redis.timeout_ms)`),
        overflow: () =>
          new RedisUnavailableError(
            `too slow: ${
              options.batch?.maxQueued ?? DEFAULT_MAX_QUEUED
            } checks are already waiting`,
          ),
        closed: () => new RedisUnavailableError("the limiter is closed"),
      },
    });
  }

  /**
   * Creates the client; connecting continues in the background. ioredis is
   * loaded only here, so a gateway without Redis never imports it (its
   * `debug` dependency reads the whole environment at import).
   */
  static async create(options: RedisLimiterOptions): Promise<RedisLimiter> {
    const { Redis } = await import("ioredis");
    const redis = new Redis(options.url, {
      // Bounds every script call; the batcher bounds the wait before it.
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs),
      // Fail at once while disconnected instead of queueing: a queued
      // request would wait for Redis, and the gateway never waits on Redis.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // The batcher already makes one command of what arrives together.
      enableAutoPipelining: false,
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
      lazyConnect: false,
    });
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (after
    // a restart or SCRIPT FLUSH). Without numberOfKeys, each call gives its
    // own key count first.
    redis.defineCommand("slidingWindowLogBatch", { lua: SLIDING_WINDOW_LOG_BATCH });
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

  /**
   * Checks and counts one request, in a batch with the others that arrive
   * meanwhile. Rejects with RedisUnavailableError when Redis fails, when no
   * call is free within redis.timeout_ms or its call gets no answer within
   * redis.timeout_ms, or when too many checks are waiting already.
   */
  check({ key, limit, windowMs }: LimitRequest): Promise<Decision> {
    if (this.#counter >= Number.MAX_SAFE_INTEGER) this.#counter = 0;
    const member = `${this.#instance}:${this.#counter++}`;
    const stored = storageKey(key);
    // One partition for a single Redis: any keys may share a script call.
    // On Redis Cluster a multi-key script must keep all its keys in one hash
    // slot (CROSSSLOT otherwise), so there the partition will be the key's
    // slot (storageKey() puts the bucket in a hash tag) and each batch goes
    // to the node that owns it.
    return this.#batcher.submit(SINGLE_PARTITION, {
      key: stored,
      windowUs: windowMs * 1000,
      limit,
      member,
    });
  }

  /** One script call for a batch; a failure fails every check in it. */
  async #send(checks: readonly Check[]): Promise<(Decision | Error)[]> {
    const count = checks.length;
    const keys = new Array<string>(count);
    const args = new Array<string | number>(count * 3);
    for (let i = 0; i < count; i++) {
      const check = checks[i];
      keys[i] = check.key;
      args[i * 3] = check.windowUs;
      args[i * 3 + 1] = check.limit;
      args[i * 3 + 2] = check.member;
    }
    let reply: (number | string)[];
    try {
      reply = await this.#redis.slidingWindowLogBatch(count, keys, args);
    } catch (error) {
      throw new RedisUnavailableError(describeRedisError(error, this.#timeoutMs), {
        cause: error,
      });
    }
    if (!Array.isArray(reply) || reply.length !== count * 3) {
      throw new RedisUnavailableError(
        `the rate-limit script answered ${Array.isArray(reply) ? reply.length : typeof reply} ` +
          `values for ${count} checks`,
      );
    }
    const decisions = new Array<Decision | Error>(count);
    for (let i = 0; i < count; i++) {
      const allowed = reply[i * 3];
      const counted = reply[i * 3 + 1];
      if (allowed === -1) {
        decisions[i] = new RedisUnavailableError(
          describeRedisError(String(counted), this.#timeoutMs),
        );
        continue;
      }
      decisions[i] = {
        allowed: allowed === 1,
        remaining: Math.max(0, checks[i].limit - Number(counted)),
        resetMs: Math.max(0, Number(reply[i * 3 + 2]) / 1000),
      };
    }
    return decisions;
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.#redis.status === "ready";
  }

  async close(): Promise<void> {
    this.#batcher.close();
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
