/**
 * Endpoint health, keyed by endpoint URL so that it survives routing-table
 * swaps and config reloads (like the balancer's in-flight counts).
 *
 * Passive health (outlier detection, as Envoy calls it): the proxy reports
 * every exchange; an endpoint that fails `consecutive_failures` times in a
 * row is ejected for `base_ejection_ms`, doubled with each further ejection
 * up to `max_ejection_ms`. Active health: the checkers of the runtime in
 * force mark endpoints down and up. The balancer asks {@linkcode usable}.
 *
 * @module
 */

import type { PassiveHealthConfig } from "../config/types.ts";
import type { Endpoint } from "../routing/table.ts";

interface EndpointState {
  /** Failures in a row since the last success or ejection. */
  failures: number;
  /** Ejected until this time (0: not ejected). */
  ejectedUntil: number;
  /** Ejections since the last success; sets the next ejection's length. */
  ejections: number;
  /** The active checker that marked the endpoint down, if one did. */
  downBy?: object;
}

/** Tracks which endpoints may get traffic. One per gateway. */
export class UpstreamHealth {
  readonly #now: () => number;
  readonly #states = new Map<string, EndpointState>();
  /** URLs that are ejected or marked down; empty in the common case, which makes usable() free. */
  readonly #out = new Set<string>();

  /** `now` is a millisecond clock (default performance.now); tests inject their own. */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether `url` may get traffic now: neither ejected nor failing active checks. */
  available(url: string): boolean {
    if (!this.#out.has(url)) return true;
    const state = this.#states.get(url)!;
    if (state.downBy !== undefined) return false;
    if (state.ejectedUntil > this.#now()) return false;
    // The ejection is over; the ejection count stays until a success.
    state.ejectedUntil = 0;
    this.#out.delete(url);
    return true;
  }

  /** Whether some of `endpoints` may get traffic now (false for none). */
  anyAvailable(endpoints: readonly Endpoint[]): boolean {
    if (this.#out.size === 0) return endpoints.length > 0;
    return endpoints.some((endpoint) => this.available(endpoint.url));
  }

  /**
   * The endpoints that may get traffic; all of them when none may (panic
   * mode: a possibly broken endpoint beats a certain 503).
   */
  usable(endpoints: readonly Endpoint[]): readonly Endpoint[] {
    if (this.#out.size === 0) return endpoints;
    const healthy = endpoints.filter((endpoint) => this.available(endpoint.url));
    return healthy.length === 0 ? endpoints : healthy;
  }

  /** Records an exchange that got a response below 500. */
  recordSuccess(url: string): void {
    const state = this.#states.get(url);
    if (state === undefined) return;
    // A request sent before the ejection may still succeed; the ejection stands.
    if (state.ejectedUntil > this.#now()) return;
    if (state.downBy === undefined) {
      this.#states.delete(url);
      this.#out.delete(url);
      return;
    }
    state.failures = 0;
    state.ejections = 0;
    state.ejectedUntil = 0;
  }

  /**
   * Records a failed exchange (no response, or a 5xx) with an endpoint of a
   * service whose ready endpoints are `endpoints`. Returns the length of the
   * ejection it caused, or 0. It never ejects the last endpoint that may get
   * traffic.
   */
  recordFailure(
    url: string,
    options: { settings: PassiveHealthConfig; endpoints: readonly Endpoint[] },
  ): number {
    const { consecutiveFailures, baseEjectionMs, maxEjectionMs } = options.settings;
    if (consecutiveFailures === 0) return 0;
    const now = this.#now();
    let state = this.#states.get(url);
    if (state === undefined) {
      state = { failures: 0, ejectedUntil: 0, ejections: 0 };
      this.#states.set(url, state);
    }
    // Late answers to requests sent before the ejection do not extend it.
    if (state.ejectedUntil > now) return 0;
    state.failures++;
    if (state.failures < consecutiveFailures) return 0;
    const othersRemain = options.endpoints.some((endpoint) =>
      endpoint.url !== url && this.available(endpoint.url)
    );
    if (!othersRemain) return 0;
    const ms = Math.min(baseEjectionMs * 2 ** Math.min(state.ejections, 30), maxEjectionMs);
    state.failures = 0;
    state.ejections++;
    state.ejectedUntil = now + ms;
    this.#out.add(url);
    return ms;
  }

  /** Whether an active checker has `url` marked down. */
  markedDown(url: string): boolean {
    return this.#states.get(url)?.downBy !== undefined;
  }

  /** Marks `url` down (no traffic) or up, on behalf of the active checker `owner`. */
  setDown(url: string, down: boolean, owner: object): void {
    let state = this.#states.get(url);
    if (!down) {
      if (state?.downBy === undefined) return;
      state.downBy = undefined;
      if (state.ejectedUntil === 0) this.#out.delete(url);
      if (state.failures === 0 && state.ejections === 0) this.#states.delete(url);
      return;
    }
    if (state === undefined) {
      state = { failures: 0, ejectedUntil: 0, ejections: 0 };
      this.#states.set(url, state);
    }
    state.downBy = owner;
    this.#out.add(url);
  }

  /** Clears every mark `owner` set (its checker stopped; a newer one keeps its own). */
  release(owner: object): void {
    for (const [url, state] of this.#states) {
      if (state.downBy === owner) this.setDown(url, false, owner);
    }
  }
}
