/**
 * Endpoint health on the main thread when worker threads serve: the active
 * health checks run here, and every change of the set of endpoints they
 * mark down is reported (the worker pool sends the whole set to each
 * worker, whose own UpstreamHealth applies it beside its passive health).
 *
 * @module
 */
import { UpstreamHealth } from "../proxy/health.ts";

/** UpstreamHealth that says when the set of endpoints marked down changes. */
export class ReportedHealth extends UpstreamHealth {
  readonly #down = new Set<string>();
  readonly #listeners: ((down: readonly string[]) => void)[] = [];
  #scheduled = false;

  /** Calls `listener` with the whole set after it changed (once per turn of the event loop). */
  onDownChange(listener: (down: readonly string[]) => void): void {
    this.#listeners.push(listener);
  }

  /** The endpoints marked down now. */
  downUrls(): string[] {
    return [...this.#down];
  }

  override setDown(url: string, down: boolean, owner: object): void {
    super.setDown(url, down, owner);
    const now = this.markedDown(url);
    if (now === this.#down.has(url)) return;
    if (now) this.#down.add(url);
    else this.#down.delete(url);
    // A reload's checker adopting marks, or a release of many, is one message.
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const urls = this.downUrls();
      for (const listener of this.#listeners) listener(urls);
    });
  }
}

/**
 * Applies the main thread's down set to a worker's UpstreamHealth: marks
 * what is newly down, clears what is up again. Returns the function that
 * takes the next set.
 */
export function downSetApplier(health: UpstreamHealth): (urls: readonly string[]) => void {
  // The marks' owner: the main thread's checkers, as one.
  const mainThreadChecks = {};
  let current = new Set<string>();
  return function applyDownSet(urls) {
    const next = new Set(urls);
    for (const url of current) if (!next.has(url)) health.setDown(url, false, mainThreadChecks);
    for (const url of next) if (!current.has(url)) health.setDown(url, true, mainThreadChecks);
    current = next;
  };
}
