import type { Metrics } from "../admin/metrics.ts";
import type { RedisFailureMode } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/** What a check answers when the primary limiter cannot: a decision, or "admit"/"refuse" without one. */
export type FailoverDecision = Decision | "admit" | "refuse";

/** What each failure mode does to requests, for the outage log line. */
const EFFECT: Record<RedisFailureMode, string> = {
  open: "rate limits are not enforced until Redis is back (failure_mode: open)",
  closed: "rate-limited routes answer 503 until Redis is back (failure_mode: closed)",
  local: "each instance limits on its own until Redis is back (failure_mode: local)",
};

/** The same for one node of a cluster: only the buckets in its slots are affected. */
const NODE_EFFECT: Record<RedisFailureMode, string> = {
  open: "rate limits of the buckets in its slots are not enforced until the node or its " +
    "replica answers (failure_mode: open)",
  closed: "requests for the buckets in its slots answer 503 until the node or its replica " +
    "answers (failure_mode: closed)",
  local: "each instance limits the buckets in its slots on its own until the node or its " +
    "replica answers (failure_mode: local)",
};

/** While an outage lasts, one reminder line at most this often (default). */
const REMINDER_INTERVAL_MS = 60_000;

/** One outage: of the whole Redis (scope ""), or of one node of a cluster. */
interface Outage {
  readonly since: number;
  lastLine: number;
  /** Checks failed since the last outage line. */
  failed: number;
}

/**
 * Puts Redis's failure mode around the Redis limiter: `open` admits,
 * `closed` refuses, `local` asks the in-memory limiter. An outage is logged
 * once when it starts (`redis_unavailable`, whether a request or the
 * connection noticed it first), at most once a minute while it lasts
 * (`redis_still_unavailable`, with the number of failed checks) and once
 * when it ends (`redis_recovered`); every failed command is counted in a
 * metric. Never one line per request.
 *
 * On a Redis Cluster (`byNode`) each node has its own outage: while one
 * master fails over, checks on the other nodes keep succeeding, and that
 * must neither end the node's outage nor start a new one per request.
 */
export class FailoverLimiter {
  readonly #primary: Limiter;
  readonly #fallback: Limiter;
  readonly #mode: RedisFailureMode;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #address?: string;
  readonly #byNode: boolean;
  readonly #now: () => number;
  readonly #reminderMs: number;
  /** Outages now, by scope: "" for Redis as a whole, a node's host:port on a cluster. */
  readonly #outages = new Map<string, Outage>();

  constructor(options: {
    primary: Limiter;
    fallback: Limiter;
    mode: RedisFailureMode;
    logger: Logger;
    metrics: Metrics;
    /** Where Redis is, for the log lines (never the URL: it may hold the password). */
    address?: string;
    /** Outages per node (a cluster): see the class description. */
    byNode?: boolean;
    /** Clock in milliseconds (default performance.now). */
    now?: () => number;
    /** Default 60 s. */
    reminderIntervalMs?: number;
  }) {
    this.#primary = options.primary;
    this.#fallback = options.fallback;
    this.#mode = options.mode;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#address = options.address;
    this.#byNode = options.byNode ?? false;
    this.#now = options.now ?? (() => performance.now());
    this.#reminderMs = options.reminderIntervalMs ?? REMINDER_INTERVAL_MS;
  }

  /**
   * Checks with the primary, or applies the failure mode. The primary must
   * bound its own wait (ioredis's commandTimeout does, also for a Redis
   * that is paused rather than gone; tests cover both).
   */
  async check(request: LimitRequest): Promise<FailoverDecision> {
    const started = performance.now();
    try {
      const decision = await this.#primary.check(request);
      this.#metrics.redisDuration.observe({}, (performance.now() - started) / 1000);
      if (this.#outages.size > 0) this.reportAvailable();
      return decision;
    } catch (error) {
      this.#metrics.redisErrors.inc();
      const node = (error as { node?: unknown } | null)?.node;
      if (typeof node === "string") this.#metrics.redisNodeErrors.inc({ node });
      this.#unavailable(
        error instanceof Error ? error.message : String(error),
        { node: typeof node === "string" ? node : undefined, check: true },
      );
      if (this.#mode === "open") return "admit";
      if (this.#mode === "closed") return "refuse";
      return this.#fallback.check(request);
    }
  }

  /**
   * Redis cannot be used, for `reason` (plain words, no secret): logs the
   * start of an outage, or a reminder when the last line is old enough. On
   * a cluster, `node` names the node that failed (host:port); without it,
   * the cluster as a whole.
   */
  reportUnavailable(reason: string, node?: string): void {
    this.#unavailable(reason, { node, check: false });
  }

  #unavailable(reason: string, { node, check }: { node?: string; check: boolean }): void {
    const scope = this.#scope(node);
    const now = this.#now();
    const where = this.#where(scope);
    let outage = this.#outages.get(scope);
    if (outage === undefined) {
      // The check that starts an outage is told of by its first line.
      outage = { since: now, lastLine: now, failed: 0 };
      this.#outages.set(scope, outage);
      const subject = scope === ""
        ? `Redis${this.#address ? ` at ${this.#address}` : ""}`
        : `Redis node ${scope}${this.#address ? ` of ${this.#address}` : ""}`;
      this.#logger.warn("redis_unavailable", {
        ...where,
        reason,
        failure_mode: this.#mode,
        message: `${subject} is unavailable (${reason}): ${
          (scope === "" ? EFFECT : NODE_EFFECT)[this.#mode]
        }`,
      });
      return;
    }
    if (check) outage.failed++;
    if (now - outage.lastLine < this.#reminderMs || outage.failed === 0) return;
    outage.lastLine = now;
    this.#logger.warn("redis_still_unavailable", {
      ...where,
      reason,
      failure_mode: this.#mode,
      failed_checks: outage.failed,
      down_seconds: Math.round((now - outage.since) / 1000),
    });
    outage.failed = 0;
  }

  /**
   * Redis works (a check passed, or the connection is ready again): logs the
   * end of an outage. On a cluster, `node` names the node that answered
   * again, or that serves no slot any more (`how`: "gone"); without it, the
   * cluster as a whole.
   */
  reportAvailable(node?: string, how: "answered" | "gone" = "answered"): void {
    const scope = this.#scope(node);
    const outage = this.#outages.get(scope);
    if (outage === undefined) return;
    this.#outages.delete(scope);
    this.#logger.info("redis_recovered", {
      ...this.#where(scope),
      ...(how === "gone" ? { reason: "its slots are served by other nodes now" } : {}),
      down_seconds: Math.round((this.#now() - outage.since) / 1000),
    });
  }

  /** "" (Redis as a whole), or the node on a cluster. */
  #scope(node: string | undefined): string {
    return this.#byNode && node !== undefined && node !== "cluster" ? node : "";
  }

  #where(scope: string): Record<string, string> {
    return {
      ...(this.#address !== undefined ? { address: this.#address } : {}),
      ...(scope !== "" ? { node: scope } : {}),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.close(), this.#fallback.close()]);
  }
}
