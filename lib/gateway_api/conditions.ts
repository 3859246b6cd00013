/**
 * Status conditions as the Gateway API asks controllers to write them:
 * merged into what the object already has (conditions of types another
 * controller manages stay, in place), `observedGeneration` on every one,
 * and `lastTransitionTime` changed only when the status changes, so a
 * status that did not change compares equal and is not written again.
 *
 * @module
 */
import type { Condition } from "./objects.ts";

/** A condition as the translation decides it; time and generation are filled in by merge. */
export interface WantedCondition {
  readonly type: string;
  readonly status: "True" | "False";
  readonly reason: string;
  readonly message: string;
}

/** What every merge of one object shares. */
export interface ConditionClock {
  /** `metadata.generation` of the object the conditions describe. */
  readonly generation: number;
  /** RFC 3339 time of this translation. */
  readonly now: string;
}

/** A True condition. */
export function isTrue(type: string, reason: string, message: string): WantedCondition {
  return { type, status: "True", reason, message };
}

/** A False condition. */
export function isFalse(type: string, reason: string, message: string): WantedCondition {
  return { type, status: "False", reason, message };
}

/**
 * The conditions to write: `previous` with every type in `managed`
 * replaced by its wanted version in place (or dropped when not wanted any
 * more), other types untouched, then the wanted types that are new.
 */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  wanted: readonly WantedCondition[],
  options: ConditionClock & { readonly managed: readonly string[] },
): Condition[] {
  const byType = new Map(wanted.map((w) => [w.type, w]));
  const out: Condition[] = [];
  const placed = new Set<string>();
  for (const old of previous ?? []) {
    if (!options.managed.includes(old.type)) {
      out.push(old);
      continue;
    }
    const next = byType.get(old.type);
    if (next === undefined || placed.has(old.type)) continue;
    placed.add(old.type);
    out.push(stamp(next, old, options));
  }
  for (const next of wanted) {
    if (!placed.has(next.type)) out.push(stamp(next, undefined, options));
  }
  return out;
}

function stamp(
  next: WantedCondition,
  old: Condition | undefined,
  clock: ConditionClock,
): Condition {
  return {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    observedGeneration: clock.generation,
    lastTransitionTime: old !== undefined && old.status === next.status
      ? old.lastTransitionTime
      : clock.now,
  };
}

/**
 * Whether `previous` was written for a newer generation than the object
 * we hold: then our copy is stale and the specification says not to
 * overwrite (a later event brings the newer object).
 */
export function writtenForNewer(
  previous: readonly Condition[] | undefined,
  generation: number,
  managed: readonly string[],
): boolean {
  return (previous ?? []).some((c) =>
    managed.includes(c.type) && (c.observedGeneration ?? 0) > generation
  );
}
