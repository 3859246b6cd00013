import { createHash } from "node:crypto";
import { Batcher } from "./batcher.ts";
import { keySlot } from "./key_slot.ts";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";
import {
  type ConnectionEvents,
  connectRedis,
  NodeCallError,
  type RedisConnection,
  type RedisTarget,
  type ScriptCall,
} from "./redis_connection.ts";

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
/** Most script calls out at once (default), per node on a cluster. */
export const DEFAULT_BATCHES_IN_FLIGHT = 2;
/** Most checks waiting for a free call (default); beyond it a check fails at once. */
export const DEFAULT_MAX_QUEUED = 2048;

/**
 * Redis connection settings: where it is (a URL, a cluster or a Sentinel
 * group, see {@linkcode RedisTarget}) and how long a check may take.
 */
export type RedisLimiterOptions = RedisTarget & ConnectionEvents & {
  /** A command slower than this fails (and the caller's failure mode applies). */
  readonly timeoutMs: number;
  /** Batching bounds; the defaults are `DEFAULT_BATCH_SIZE` and its neighbours. */
  readonly batch?: {
    readonly maxSize?: number;
    readonly maxInFlight?: number;
    readonly maxQueued?: number;
  };
};

/** A failed limiter command; its message is the reason in plain words (see `describeRedisError`). */
export class RedisUnavailableError extends Error {
  /**
   * The node it failed on (host:port, a bounded set, see
   * `RedisConnection.node`); on a cluster its slots are the ones affected.
   */
  readonly node?: string;

  constructor(message: string, options?: { cause?: unknown; node?: string }) {
    super(message, options);
    this.name = "RedisUnavailableError";
    this.node = options?.node;
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
  if (/stream isn't writeable|connection is closed|enableOfflineQueue|isn't ready/i.test(message)) {
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
  if (/^CLUSTERDOWN\b/.test(message)) {
    return `the cluster cannot serve the slot: ${firstLine(message)}`;
  }
  if (/all sentinels are unreachable/i.test(message)) {
    return "no Sentinel answered (asking them again in the background)";
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
 * of one per request. On a Redis Cluster the batches are per node (the one
 * that owns the checks' slots), and a node's batch is one script call per
 * slot in it, all sent to the node in one round trip (a script's keys must
 * share a slot).
 */
export class RedisLimiter implements Limiter {
  /** Where Redis is, for logs (host:port; never the password). */
  readonly address: string;
  /** Whether Redis is a cluster (outages and metrics are then per node). */
  readonly clustered: boolean;
  readonly #connection: RedisConnection;
  readonly #timeoutMs: number;
  readonly #batcher: Batcher<Check, Decision>;
  // Members must be unique even for two requests in one microsecond on two
  // instances (and within one batch, which shares one TIME): a random
  // instance id plus a counter.
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #counter = 0;

  private constructor(connection: RedisConnection, options: RedisLimiterOptions) {
    this.#connection = connection;
    this.address = connection.address;
    this.clustered = connection.clustered;
    this.#timeoutMs = options.timeoutMs;
    const timeoutMs = options.timeoutMs;
    // Errors of the batcher's own (no free call, no answer in time) name the
    // partition's node, which then counts as failing (see RedisConnection.failed).
    const fail = (partition: string, message: string) => {
      connection.failed(partition, message);
      return new RedisUnavailableError(message, { node: connection.node(partition) });
    };
    this.#batcher = new Batcher<Check, Decision>({
      send: (partition, checks) => this.#send(partition, checks),
      maxBatch: options.batch?.maxSize ?? DEFAULT_BATCH_SIZE,
      maxInFlight: options.batch?.maxInFlight ?? DEFAULT_BATCHES_IN_FLIGHT,
      maxQueued: options.batch?.maxQueued ?? DEFAULT_MAX_QUEUED,
      // At most this long for a free slot, and this long for the answer (as
      // ioredis's commandTimeout); checks queued behind a batch that failed
      // or went unanswered fail with it at once.
      timeoutMs,
      errors: {
        timeout: (partition) =>
          fail(partition, `no answer within ${timeoutMs} ms (redis.timeout_ms)`),
        overflow: (partition) =>
          fail(
            partition,
            `too slow: ${
              options.batch?.maxQueued ?? DEFAULT_MAX_QUEUED
            } checks are already waiting`,
          ),
        closed: () => new RedisUnavailableError("the limiter is closed"),
      },
    });
  }

  /** Creates the client; connecting continues in the background. */
  static async create(options: RedisLimiterOptions): Promise<RedisLimiter> {
    const connection = await connectRedis(options, {
      ...options,
      lua: SLIDING_WINDOW_LOG_BATCH,
      describe: (error) => describeRedisError(error, options.timeoutMs),
    });
    return new RedisLimiter(connection, options);
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
    await Promise.race([this.#connection.settled, expired]);
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
    // On a cluster, the node that owns the key's slot (storageKey() puts the
    // bucket in a hash tag): each batch goes to one node.
    return this.#batcher.submit(this.#connection.partition(stored), {
      key: stored,
      windowUs: windowMs * 1000,
      limit,
      member,
    });
  }

  /** Script calls for a batch: one, or on a cluster one per slot; a failed call fails its checks. */
  async #send(partition: string, checks: readonly Check[]): Promise<(Decision | Error)[]> {
    const groups = this.clustered ? bySlot(checks) : [checks];
    const calls = groups.map(scriptCall);
    let replies: (unknown[] | NodeCallError)[];
    try {
      replies = await this.#connection.run(partition, calls);
    } catch (error) {
      throw this.#unavailable(partition, error);
    }
    if (groups.length === 1) {
      const reply = replies[0];
      if (reply instanceof Error) throw this.#unavailable(partition, reply);
      return this.#decisions(partition, checks, reply);
    }
    // Answers in the order the checks came, whatever slot each went with.
    const answers = new Map<Check, Decision | Error>();
    groups.forEach((group, i) => {
      const reply = replies[i];
      let decisions: (Decision | Error)[];
      if (reply instanceof Error) {
        const error = this.#unavailable(partition, reply);
        decisions = group.map(() => error);
      } else {
        decisions = this.#decisions(partition, group, reply);
      }
      group.forEach((check, j) => answers.set(check, decisions[j]));
    });
    return checks.map((check) => answers.get(check)!);
  }

  #unavailable(partition: string, error: unknown): RedisUnavailableError {
    const node = error instanceof NodeCallError ? error.node : this.#connection.node(partition);
    const cause = error instanceof NodeCallError ? error.cause : error;
    return new RedisUnavailableError(describeRedisError(cause, this.#timeoutMs), { cause, node });
  }

  /** The decisions of one script call's reply; a malformed reply fails them all. */
  #decisions(partition: string, checks: readonly Check[], reply: unknown[]): (Decision | Error)[] {
    const count = checks.length;
    if (!Array.isArray(reply) || reply.length !== count * 3) {
      throw new RedisUnavailableError(
        `the rate-limit script answered ${Array.isArray(reply) ? reply.length : typeof reply} ` +
          `values for ${count} checks`,
        { node: this.#connection.node(partition) },
      );
    }
    const decisions = new Array<Decision | Error>(count);
    for (let i = 0; i < count; i++) {
      const allowed = reply[i * 3];
      const counted = reply[i * 3 + 1];
      if (allowed === -1) {
        decisions[i] = new RedisUnavailableError(
          describeRedisError(String(counted), this.#timeoutMs),
          { node: this.#connection.node(partition) },
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

  /** Whether the connection is up now (on a cluster: the cluster as a whole). */
  get connected(): boolean {
    return this.#connection.connected;
  }

  async close(): Promise<void> {
    this.#batcher.close();
    this.#connection.close();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** The script call of checks that share a slot (or a single Redis). */
function scriptCall(checks: readonly Check[]): ScriptCall {
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
  return { keys, args };
}

/** Checks grouped by hash slot, each group in arrival order (a script's keys must share a slot). */
function bySlot(checks: readonly Check[]): Check[][] {
  if (checks.length === 1) return [[checks[0]]];
  const groups = new Map<number, Check[]>();
  for (const check of checks) {
    const slot = keySlot(check.key);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [check]);
    else group.push(check);
  }
  return [...groups.values()];
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
  // A bounded memo of recent clients (about 100 bytes each): hashing costs more than the lookup.
  if (recentKeys.size >= RECENT_KEYS) recentKeys.clear();
  recentKeys.set(bucket, key);
  return key;
}

const recentKeys = new Map<string, string>();
/** Buckets whose storage key is remembered: some 5 MB at most. */
const RECENT_KEYS = 50_000;
