/**
 * A pending deadline: `fire` is called once `at` (performance.now() time)
 * passes, unless cancelled. An owner may keep one and arm it again and
 * again, so a deadline per request costs no allocation per phase.
 */
export interface Deadline {
  at: number;
  fire(): void;
}

/**
 * Many timeouts on one timer. A Deno timer costs a few microseconds to arm
 * and clear; at thousands of requests a second one shared interval that
 * checks the pending deadlines every `resolutionMs` is cheaper, and a
 * timeout that fires up to that much late is fine for upstream timeouts.
 */
export class Deadlines {
  readonly #pending = new Set<Deadline>();
  readonly #resolutionMs: number;
  #timer: number | undefined;

  constructor(resolutionMs = 10) {
    this.#resolutionMs = resolutionMs;
  }

  /** Calls `fire` once, `ms` from now, unless cancelled. */
  add(ms: number, fire: () => void): Deadline {
    const deadline = { at: 0, fire };
    this.arm(deadline, ms);
    return deadline;
  }

  /**
   * (Re)arms `deadline` to fire once, about `ms` from now, unless
   * cancelled. While the timer runs, "now" is the last tick's clock reading
   * plus one resolution, which is the real time give or take a tick (more
   * when a busy event loop delays the tick): a request arms two or three
   * deadlines, and reading the clock is a call into the runtime each time.
   */
  arm(deadline: Deadline, ms: number): void {
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#resolutionMs) as unknown as number;
      Deno.unrefTimer(this.#timer);
      this.#clock = performance.now();
    }
    deadline.at = this.#clock + this.#resolutionMs + ms;
    this.#pending.add(deadline);
  }

  /** performance.now() at the last tick (or when the timer started). */
  #clock = 0;

  /** Forgets a deadline (idempotent). */
  cancel(deadline: Deadline): void {
    this.#pending.delete(deadline);
  }

  /** Stops the shared timer (pending deadlines never fire). */
  close(): void {
    this.#pending.clear();
    this.#stop();
  }

  #tick(): void {
    const now = this.#clock = performance.now();
    for (const deadline of this.#pending) {
      if (deadline.at <= now) {
        this.#pending.delete(deadline);
        deadline.fire();
      }
    }
    if (this.#pending.size === 0) this.#stop();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
