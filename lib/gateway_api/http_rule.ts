/**
 * One HTTPRoute's rules compiled into the routing model's pieces: per
 * match the path, method, header and query matches; per rule the filters,
 * backends and timeout. Independent of the route's parents: attachment
 * only adds the hosts. A rule Vanguard cannot implement exactly is dropped
 * with its reason (the route is then PartiallyInvalid, or not Accepted
 * when no rule is left); an unresolvable reference keeps the rule and
 * answers 500 for its share (ResolvedRefs False).
 *
 * @module
 */
import type {
  HeaderChanges,
  MirrorConfig,
  RedirectConfig,
  RewriteConfig,
} from "../config/types.ts";
import { patternProblem, type ValueMatch } from "../routing/match.ts";
import type { Backend } from "../routing/route.ts";
import { compileFilters } from "./http_filters.ts";
import type { HTTPRoute, HTTPRouteMatch, HTTPRouteRule } from "./objects.ts";
import { exactPath, type PathFields, prefixPath } from "./paths.ts";
import { type References, type RefProblem, resolveBackendRef } from "./references.ts";
import {
  type CompiledMatch,
  Drop,
  drop,
  HEADER_NAME,
  type RuleContext,
  type RuleProblem,
} from "./rule_context.ts";

/** What a rule's routes share: everything but the match. */
export interface RuleAction {
  readonly serviceName: string;
  readonly backends?: readonly Backend[];
  readonly redirect?: RedirectConfig;
  readonly rewrite?: RewriteConfig;
  readonly mirror?: MirrorConfig;
  readonly timeoutMs?: number;
  readonly requestHeaders?: HeaderChanges;
  readonly responseHeaders?: HeaderChanges;
}

/** One rule, compiled. */
export interface CompiledRule {
  /** The rule's index in `spec.rules`. */
  readonly index: number;
  readonly matches: readonly CompiledMatch[];
  readonly action: RuleAction;
}

/** A route's rules, compiled. */
export interface CompiledRules {
  readonly rules: readonly CompiledRule[];
  readonly dropped: readonly (RuleProblem & { readonly index: number })[];
  /** For ResolvedRefs: every reference that could not be resolved. */
  readonly refProblems: readonly RefProblem[];
  readonly warnings: readonly string[];
}

/** What "0s" (no timeout) becomes: the longest timer a runtime can set. */
export const LONGEST_TIMEOUT_MS = 2_147_483_647;

const METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]);
/** Compiles every rule of `route` (a route without rules has the default one). */
export function compileRules(route: HTTPRoute, refs: References): CompiledRules {
  const rules: CompiledRule[] = [];
  const dropped: (RuleProblem & { index: number })[] = [];
  const refProblems: RefProblem[] = [];
  const warnings: string[] = [];
  const specRules = route.spec.rules === undefined || route.spec.rules.length === 0
    ? [{}]
    : route.spec.rules;
  specRules.forEach((rule, index) => {
    const problems: RefProblem[] = [];
    try {
      rules.push(compileRule(rule, index, { route, refs, problems, warnings }));
      refProblems.push(...problems);
    } catch (error) {
      if (!(error instanceof Drop)) throw error;
      dropped.push({ ...error.problem, index });
    }
  });
  return { rules, dropped, refProblems, warnings };
}

function compileRule(rule: HTTPRouteRule, index: number, ctx: RuleContext): CompiledRule {
  const at = `rules[${index}]`;
  const specMatches = rule.matches === undefined || rule.matches.length === 0 ? [{}] : rule.matches;
  const matches = specMatches.map((m, j) => compileMatch(m, j, `${at}.matches[${j}]`));
  const filters = compileFilters(rule.filters ?? [], matches, at, ctx);
  const timeoutMs = ruleTimeout(rule, at);
  const action: RuleAction = {
    ...filters.changes,
    ...(filters.redirect !== undefined
      ? { serviceName: "", redirect: filters.redirect }
      : backendsOf(rule, filters.failure, at, ctx)),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  };
  return { index, matches, action };
}

function compileMatch(match: HTTPRouteMatch, index: number, at: string): CompiledMatch {
  const type = match.path?.type ?? "PathPrefix";
  const value = match.path?.value ?? "/";
  let path: PathFields | { problem: string };
  if (type === "Exact") path = exactPath(value);
  else if (type === "PathPrefix") path = prefixPath(value);
  else if (type === "RegularExpression") {
    const problem = patternProblem(value);
    path = problem === undefined
      ? { pathPrefix: value, pathKind: "regex", prefixSegments: 0 }
      : { problem: `regular expression ${JSON.stringify(value)} ${problem}` };
  } else path = { problem: `path type ${JSON.stringify(type)} is not supported` };
  if ("problem" in path) drop(`${at}.path`, path.problem);

  let methods: string[] | undefined;
  if (match.method !== undefined) {
    if (!METHODS.has(match.method)) {
      drop(`${at}.method`, `method ${JSON.stringify(match.method)} is not supported`);
    }
    methods = [match.method];
  }
  const headers = valueMatches(match.headers, `${at}.headers`, (name) => {
    if (!HEADER_NAME.test(name)) {
      drop(`${at}.headers`, `${JSON.stringify(name)} is not a header name`);
    }
    return name.toLowerCase();
  });
  const query = valueMatches(match.queryParams, `${at}.queryParams`, (name) => name);
  return {
    index,
    path,
    ...(methods !== undefined ? { methods } : {}),
    ...(headers !== undefined ? { headers } : {}),
    ...(query !== undefined ? { query } : {}),
  };
}

/** Header or query matches; of entries with the same name only the first counts (spec). */
function valueMatches(
  entries: HTTPRouteMatch["headers"],
  at: string,
  nameOf: (name: string) => string,
): ValueMatch[] | undefined {
  if (entries === undefined || entries.length === 0) return undefined;
  const out: ValueMatch[] = [];
  entries.forEach((entry, i) => {
    const name = nameOf(entry.name);
    if (out.some((m) => m.name === name)) return;
    const type = entry.type ?? "Exact";
    if (type === "Exact") out.push({ name, value: entry.value });
    else if (type === "RegularExpression") {
      const problem = patternProblem(entry.value);
      if (problem !== undefined) {
        drop(`${at}[${i}]`, `regular expression ${JSON.stringify(entry.value)} ${problem}`);
      }
      out.push({ name, regex: entry.value });
    } else drop(`${at}[${i}]`, `match type ${JSON.stringify(type)} is not supported`);
  });
  return out;
}

function backendsOf(
  rule: HTTPRouteRule,
  failure: string | undefined,
  at: string,
  ctx: RuleContext,
): Pick<RuleAction, "serviceName" | "backends"> {
  const refs = rule.backendRefs ?? [];
  const backends: Backend[] = refs.map((ref, i) => {
    const field = `${at}.backendRefs[${i}]`;
    if (ref.filters !== undefined && ref.filters.length > 0) {
      drop(`${field}.filters`, "filters on a backendRef are not supported: put them on the rule");
    }
    const weight = ref.weight ?? 1;
    if (!(Number.isInteger(weight) && weight >= 0 && weight <= 1_000_000)) {
      drop(`${field}.weight`, `weight ${weight} is not 0 to 1000000`);
    }
    const resolved = resolveBackendRef(ref, ctx.route.metadata.namespace, ctx.refs);
    if (resolved.problem === undefined) return { serviceName: resolved.serviceName, weight };
    ctx.problems.push({ ...resolved.problem, message: `${field}: ${resolved.problem.message}` });
    return { serviceName: resolved.serviceName, weight, unresolved: resolved.problem.message };
  });
  const first = backends[0]?.serviceName ?? "";
  if (failure !== undefined) {
    return {
      serviceName: first,
      backends: [{ serviceName: first, weight: 1, unresolved: failure }],
    };
  }
  if (backends.length === 0) {
    // No backend: the rule is one unresolved backend, 500 (spec).
    return {
      serviceName: "",
      backends: [{ serviceName: "", weight: 1, unresolved: "The route rule has no backendRefs" }],
    };
  }
  if (backends.every((b) => b.weight === 0)) {
    return {
      serviceName: first,
      backends: [{
        serviceName: first,
        weight: 1,
        unresolved: "Every backendRef of the route rule has weight 0",
      }],
    };
  }
  return { serviceName: first, backends };
}

function ruleTimeout(rule: HTTPRouteRule, at: string): number | undefined {
  const timeouts = rule.timeouts;
  if (timeouts === undefined) return undefined;
  const request = timeouts.request === undefined ? undefined : parseDuration(timeouts.request);
  const backend = timeouts.backendRequest === undefined
    ? undefined
    : parseDuration(timeouts.backendRequest);
  if (request === null) drop(`${at}.timeouts.request`, durationProblem(timeouts.request!));
  if (backend === null) {
    drop(`${at}.timeouts.backendRequest`, durationProblem(timeouts.backendRequest!));
  }
  // Vanguard's route timeout runs until the response headers, as backendRequest does most nearly.
  const ms = backend ?? request;
  if (ms === undefined) return undefined;
  return ms === 0 ? LONGEST_TIMEOUT_MS : Math.min(ms, LONGEST_TIMEOUT_MS);
}

function durationProblem(value: string): string {
  return `${JSON.stringify(value)} is not a Gateway API duration (like "10s", "500ms", "1m30s")`;
}

const DURATION = /^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$/;
const DURATION_PART = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** A Gateway API duration (GEP-2257: `10s`, `500ms`, `1h30m`) in milliseconds, or null. */
export function parseDuration(value: string): number | null {
  if (!DURATION.test(value)) return null;
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(DURATION_PART)) {
    ms += Number(amount) * UNIT_MS[unit];
  }
  return ms;
}
