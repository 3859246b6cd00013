/**
 * What the config reloader last did (applied, failed to build, rejected as invalid), kept for the
 * dashboard: the log says it once, the dashboard keeps saying it.
 *
 * @module
 */

/** How a reload ended: applied; valid but could not be built; invalid (not tried). */
export type ReloadResult = "applied" | "failed" | "rejected";

/** One reload attempt of the config file. */
export interface ReloadOutcome {
  /** When it ended, in milliseconds since the epoch. */
  readonly at: number;
  /** What started it: `file_changed`, `SIGHUP`. */
  readonly trigger: string;
  readonly file: string;
  readonly result: ReloadResult;
  /** Why it failed (one reason) or was rejected (every problem, `PATH:LINE:COLUMN: ...`). */
  readonly problems: readonly string[];
}

/** The last reload attempt and how many were applied; one per gateway. */
export class ReloadLog {
  readonly #now: () => number;
  /** When the gateway started, in milliseconds since the epoch. */
  readonly startedAt: number;
  #last?: ReloadOutcome;
  #applied = 0;
  #appliedAt?: number;

  /** `now` is a wall clock in milliseconds (default Date.now). */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.startedAt = this.#now();
  }

  /** Records the end of a reload attempt. */
  record(outcome: Omit<ReloadOutcome, "at">): void {
    const at = this.#now();
    this.#last = { ...outcome, problems: [...outcome.problems], at };
    if (outcome.result === "applied") {
      this.#applied++;
      this.#appliedAt = at;
    }
  }

  /** The last attempt, if there was one. */
  get last(): ReloadOutcome | undefined {
    return this.#last;
  }

  /** Reloads applied since the start (the config in force is generation `applied + 1`). */
  get applied(): number {
    return this.#applied;
  }

  /** When the config in force was loaded (the start, or the last applied reload). */
  get loadedAt(): number {
    return this.#appliedAt ?? this.startedAt;
  }
}
