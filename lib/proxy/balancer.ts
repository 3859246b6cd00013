import type { Endpoint } from "../routing/table.ts";
import type { UpstreamHealth } from "./health.ts";

/**
 * Chooses an endpoint per request: the one with the fewest requests in
 * flight, ties broken round robin. Above `SCAN_LIMIT` endpoints it compares
 * two candidates only (power of two choices), so the cost stays constant.
 * In-flight counts are keyed by URL and so survive routing-table swaps.
 * With a health tracker, ejected and failing endpoints are skipped unless
 * no other remains.
 */
export class Balancer {
  readonly #inFlight = new Map<string, number>();
  readonly #health: UpstreamHealth | undefined;
  #cursor = 0;

  constructor(options: { health?: UpstreamHealth } = {}) {
    this.#health = options.health;
  }

  /**
   * Picks an endpoint from `endpoints` (those that may get traffic, see
   * UpstreamHealth.usable), never one in `exclude`; undefined when none is left.
   */
  pick(
    all: readonly Endpoint[],
    exclude?: string | ReadonlySet<string>,
  ): Endpoint | undefined {
    const endpoints = this.#health?.usable(all) ?? all;
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return isExcluded(endpoints[0].url, exclude) ? undefined : endpoints[0];
    const start = this.#cursor++ % n;
    if (this.#cursor > 1e9) this.#cursor = 0;
    if (n > SCAN_LIMIT && typeof exclude !== "object") {
      const a = endpoints[start];
      const b = endpoints[(start + 1 + Math.floor(Math.random() * (n - 1))) % n];
      // a and b are distinct, so at most one of them is excluded; the other is the pick.
      if (isExcluded(a.url, exclude)) return b;
      if (isExcluded(b.url, exclude)) return a;
      return this.load(b.url) < this.load(a.url) ? b : a;
    }
    let best: Endpoint | undefined;
    let bestLoad = Infinity;
    for (let i = 0; i < n; i++) {
      const candidate = endpoints[(start + i) % n];
      if (isExcluded(candidate.url, exclude)) continue;
      const load = this.load(candidate.url);
      if (load < bestLoad) {
        best = candidate;
        bestLoad = load;
      }
    }
    return best;
  }

  /** Marks a request to `url` as started; call the returned function once when it ends. */
  begin(url: string): () => void {
    this.#inFlight.set(url, this.load(url) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = this.load(url) - 1;
      if (left <= 0) this.#inFlight.delete(url);
      else this.#inFlight.set(url, left);
    };
  }

  /** Requests in flight to `url`. */
  load(url: string): number {
    return this.#inFlight.get(url) ?? 0;
  }
}

const SCAN_LIMIT = 16;

function isExcluded(url: string, exclude: string | ReadonlySet<string> | undefined): boolean {
  return typeof exclude === "string" ? url === exclude : exclude?.has(url) === true;
}
