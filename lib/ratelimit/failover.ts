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

/** While an outage lasts, one reminder line at most this often (default). */
const REMINDER_INTERVAL_MS = 60_000;

/**
 * Puts Redis's failure mode around the Redis limiter: `open` admits,
 * `closed` refuses, `local` asks the in-memory limiter. An outage is logged
 * once when it starts (`redis_unavailable`, whether a request or the
 * connection noticed it first), at most once a minute while it lasts
 * (`redis_still_unavailable`, with the number of failed checks) and once
 * when it ends (`redis_recovered`); every failed command is counted in a
 * metric. Never one line per request.
 */
export class FailoverLimiter {
  readonly #primary: Limiter;
  readonly #fallback: Limiter;
  readonly #mode: RedisFailureMode;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #address?: string;
  readonly #now: () => number;
  readonly #reminderMs: number;
  #down = false;
  #downSince = 0;
  #lastLine = 0;
  /** Checks failed since the last outage line. */
  #failed = 0;

  constructor(options: {
    primary: Limiter;
    fallback: Limiter;
    mode: RedisFailureMode;
    logger: Logger;
    metrics: Metrics;
    /** `host:port` of the Redis, for the log lines (never the URL: it may hold the password). */
    address?: string;
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
      this.reportAvailable();
      return decision;
    } catch (error) {
      this.#metrics.redisErrors.inc();
      this.#failed++;
      this.reportUnavailable(error instanceof Error ? error.message : String(error));
      if (this.#mode === "open") return "admit";
      if (this.#mode === "closed") return "refuse";
      return this.#fallback.check(request);
    }
  }

  /**
   * Redis cannot be used, for `reason` (plain words, no secret): logs the
   * start of an outage, or a reminder when the last line is old enough.
   */
  reportUnavailable(reason: string): void {
    const now = this.#now();
    const where = this.#address !== undefined ? { address: this.#address } : {};
    if (!this.#down) {
      this.#down = true;
      this.#downSince = now;
      this.#lastLine = now;
      this.#failed = 0;
      this.#logger.warn("redis_unavailable", {
        ...where,
        reason,
        failure_mode: this.#mode,
        message: `Redis${this.#address ? ` at ${this.#address}` : ""} is unavailable (${reason}): ${
          EFFECT[this.#mode]
        }`,
      });
      return;
    }
    if (now - this.#lastLine < this.#reminderMs || this.#failed === 0) return;
    this.#lastLine = now;
    this.#logger.warn("redis_still_unavailable", {
      ...where,
      reason,
      failure_mode: this.#mode,
      failed_checks: this.#failed,
      down_seconds: Math.round((now - this.#downSince) / 1000),
    });
    this.#failed = 0;
  }

  /** Redis works (a check passed, or the connection is ready again): logs the end of an outage. */
  reportAvailable(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#logger.info("redis_recovered", {
      ...(this.#address !== undefined ? { address: this.#address } : {}),
      down_seconds: Math.round((this.#now() - this.#downSince) / 1000),
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.close(), this.#fallback.close()]);
  }
}
