import type { Metrics } from "../admin/metrics.ts";
import type { RedisFailureMode } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Decision, Limiter, LimitRequest } from "./limiter.ts";

/** What a check answers when the primary limiter cannot: a decision, or "admit"/"refuse" without one. */
export type FailoverDecision = Decision | "admit" | "refuse";

/**
 * Puts Redis's failure mode around the Redis limiter: `open` admits,
 * `closed` refuses, `local` asks the in-memory limiter. Logs an outage once
 * when it starts and once when it ends, counts every failed command,.
 */
export class FailoverLimiter {
  readonly #primary: Limiter;
  readonly #fallback: Limiter;
  readonly #mode: RedisFailureMode;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  #down = false;

  constructor(options: {
    primary: Limiter;
    fallback: Limiter;
    mode: RedisFailureMode;
    logger: Logger;
    metrics: Metrics;
  }) {
    this.#primary = options.primary;
    this.#fallback = options.fallback;
    this.#mode = options.mode;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
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
      if (this.#down) {
        this.#down = false;
        this.#logger.info("redis_recovered", {});
      }
      return decision;
    } catch (error) {
      this.#metrics.redisErrors.inc();
      if (!this.#down) {
        this.#down = true;
        this.#logger.warn("redis_unavailable", {
          message: error instanceof Error ? error.message : String(error),
          failure_mode: this.#mode,
        });
      }
      if (this.#mode === "open") return "admit";
      if (this.#mode === "closed") return "refuse";
      return this.#fallback.check(request);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.close(), this.#fallback.close()]);
  }
}
