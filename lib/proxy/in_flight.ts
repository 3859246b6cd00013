/**
 * Requests in flight per service from this gateway instance, for
 * `max_in_flight`. Keyed by service name, so the counts survive reloads.
 */
export class ServiceConcurrency {
  readonly #inFlight = new Map<string, number>();

  /**
   * Takes a slot when fewer than `limit` requests to `service` are in
   * flight and returns the function that gives it back (call it once);
   * undefined when the service is full. Never waits: a queue would only
   * turn overload into latency.
   */
  tryAcquire(service: string, limit: number): (() => void) | undefined {
    const now = this.#inFlight.get(service) ?? 0;
    if (now >= limit) return undefined;
    this.#inFlight.set(service, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#inFlight.get(service) ?? 1) - 1;
      if (left <= 0) this.#inFlight.delete(service);
      else this.#inFlight.set(service, left);
    };
  }

  /** Requests in flight to `service` now. */
  load(service: string): number {
    return this.#inFlight.get(service) ?? 0;
  }
}
