/**
 * What compiling one HTTPRoute rule shares between the match, filter and
 * backend parts: the compiled match, the context, and how a part drops
 * the whole rule (a thrown {@linkcode Drop}, caught per rule).
 *
 * @module
 */
import type { ValueMatch } from "../routing/match.ts";
import type { HTTPRoute } from "./objects.ts";
import type { PathFields } from "./paths.ts";
import type { References, RefProblem } from "./references.ts";

/** One match of a rule, compiled. */
export interface CompiledMatch {
  /** The match's index in the rule (absent matches count as one, index 0). */
  readonly index: number;
  readonly path: PathFields;
  readonly methods?: readonly string[];
  readonly headers?: readonly ValueMatch[];
  readonly query?: readonly ValueMatch[];
}

/** Why a rule was dropped. */
export interface RuleProblem {
  readonly reason: "UnsupportedValue" | "IncompatibleFilters";
  /** Starts with the field, e.g. `rules[1].matches[0].path: ...`. */
  readonly message: string;
}

/** A header field name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What every part of one rule's compilation reads and adds to. */
export interface RuleContext {
  readonly route: HTTPRoute;
  readonly refs: References;
  readonly problems: RefProblem[];
  readonly warnings: string[];
}

/** Thrown by {@linkcode drop}: the rule cannot be served. */
export class Drop extends Error {
  constructor(readonly problem: RuleProblem) {
    super(problem.message);
  }
}

/** Drops the rule being compiled, saying which field is wrong and why. */
export function drop(
  field: string,
  message: string,
  reason: RuleProblem["reason"] = "UnsupportedValue",
): never {
  throw new Drop({ reason, message: `${field}: ${message}` });
}

/** `HTTPRoute ns/name`, for warnings. */
export function routeName(route: HTTPRoute): string {
  return `HTTPRoute ${route.metadata.namespace}/${route.metadata.name}`;
}
