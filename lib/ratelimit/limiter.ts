/** The outcome of one rate-limit check. */
export interface Decision {
  readonly allowed: boolean;
  /** Requests still admitted in the current window after this one. */
  readonly remaining: number;
  /** Milliseconds until the oldest counted request leaves the window (a slot frees); 0 if none. */
  readonly resetMs: number;
}

/** One policy applied to one client: at most `limit` requests in any `windowMs`. */
export interface LimitRequest {
  /**
   * The bucket: route id and client identity (see `bucketId`). It may
   * contain a secret (an API key used as identifier), so it stays in the
   * process: a limiter that stores buckets elsewhere names them by
   * `storageKey()`, a hash.
   */
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
}

/** A sliding-window-log limiter. */
export interface Limiter {
  /** Counts the request if admitted; rejected requests are not logged. */
  check(request: LimitRequest): Promise<Decision>;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/** The bucket of `identity` on route `routeId`, as limiters receive it (in-process only). */
export function bucketId(routeId: string, identity: string): string {
  return `${routeId}\u0000${identity}`;
}
