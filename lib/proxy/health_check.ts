/**
 * Active health checks: a GET on each endpoint of the static services that
 * configure `health_check`, in the background. One checker per runtime
 * (config); it is stopped when its runtime is retired.
 *
 * @module
 */

import type { Metrics } from "../admin/metrics.ts";
import type { Config, HealthCheckConfig } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { UpstreamHealth } from "./health.ts";

/** What a checker needs. */
export interface HealthCheckerDeps {
  readonly health: UpstreamHealth;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

interface Target {
  readonly service: string;
  readonly url: string;
  readonly settings: HealthCheckConfig;
  down: boolean;
  /** Results in a row that point the other way than `down`. */
  streak: number;
}

/**
 * Probes endpoints and marks them down after `unhealthy_threshold` failed
 * checks in a row, up again after `healthy_threshold` passed ones. A check
 * passes on a 2xx or 3xx answer within `timeout_ms`.
 *
 * Deno's fetch is fine here (unlike in the proxy): bodies are discarded, so
 * its decompression does not matter. It has its own HTTP client, closed on
 * stop, so no pooled connection outlives the checker.
 */
export class HealthChecker {
  readonly #deps: HealthCheckerDeps;
  readonly #client: Deno.HttpClient;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #probes = new Set<Promise<void>>();
  readonly #stopping = new AbortController();
  #stopped = false;

  private constructor(deps: HealthCheckerDeps) {
    this.#deps = deps;
    this.#client = Deno.createHttpClient({});
  }

  /**
   * Starts checking the services of `config` that have `health_check`;
   * undefined when none has (no client, no timers).
   */
  static start(config: Config, deps: HealthCheckerDeps): HealthChecker | undefined {
    const services = Object.entries(config.services).filter(([, service]) =>
      service.healthCheck !== undefined && service.urls !== undefined && service.urls.length > 0
    );
    if (services.length === 0) return undefined;
    const checker = new HealthChecker(deps);
    for (const [name, service] of services) {
      const targets = service.urls!.map((url) => {
        // Adopt what the previous config's checker found, so a reload does not
        // send traffic back to an endpoint that is down.
        const down = deps.health.markedDown(url);
        if (down) deps.health.setDown(url, true, checker);
        return { service: name, url, settings: service.healthCheck!, down, streak: 0 };
      });
      checker.#round(targets);
    }
    return checker;
  }

  /** Stops probing, waits for probes under way, and clears the marks this checker set. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#stopping.abort();
    await Promise.all(this.#probes);
    this.#client.close();
    this.#deps.health.release(this);
  }

  /** Probes every target of one service, then schedules the next round. */
  #round(targets: readonly Target[]): void {
    const round = Promise.all(targets.map((target) => this.#probe(target))).then(() => {
      if (this.#stopped) return;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#round(targets);
      }, targets[0].settings.intervalMs);
      this.#timers.add(timer);
    });
    this.#probes.add(round);
    round.finally(() => this.#probes.delete(round));
  }

  async #probe(target: Target): Promise<void> {
    const { settings } = target;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), settings.timeoutMs);
    let passed = false;
    let reason = "";
    try {
      const response = await fetch(target.url + settings.path, {
        client: this.#client,
        redirect: "manual",
        signal: AbortSignal.any([timeout.signal, this.#stopping.signal]),
      });
      await response.body?.cancel();
      passed = response.status >= 200 && response.status < 400;
      if (!passed) reason = `status ${response.status}`;
    } catch (error) {
      reason = timeout.signal.aborted
        ? `no answer within ${settings.timeoutMs} ms`
        : error instanceof Error
        ? error.message
        : String(error);
    } finally {
      clearTimeout(timer);
    }
    if (this.#stopped) return;
    this.#record(target, passed, reason);
  }

  #record(target: Target, passed: boolean, reason: string): void {
    const { health, metrics, logger } = this.#deps;
    if (!passed) metrics.healthCheckFailures.inc({ service: target.service });
    // A result that agrees with the current state resets the streak against it.
    if (passed !== target.down) {
      target.streak = 0;
      return;
    }
    target.streak++;
    const threshold = target.down
      ? target.settings.healthyThreshold
      : target.settings.unhealthyThreshold;
    if (target.streak < threshold) return;
    target.down = !target.down;
    target.streak = 0;
    health.setDown(target.url, target.down, this);
    if (target.down) {
      logger.warn("health_check_failed", {
        service: target.service,
        endpoint: target.url,
        reason,
      });
    } else {
      logger.info("health_check_recovered", { service: target.service, endpoint: target.url });
    }
  }
}
