/**
 * Edge matching beyond the path prefix (contract section 9): hosts, the
 * three path kinds, methods, headers and query, and their precedence.
 * RouteEntry keeps only plain data (strings); the RegExps are compiled
 * here when a table is built, so a table's data stays structured-cloneable.
 *
 * @module
 */

/** One `headers:` or `query:` entry of a route: exactly one of value, regex, present. */
export interface ValueMatch {
  /** Header names are kept lowercase; query parameter names as written (they are case-sensitive). */
  readonly name: string;
  readonly value?: string;
  /** Source of a regex matching the whole value. */
  readonly regex?: string;
  /** Set only as true. */
  readonly present?: boolean;
}

/** What a route's extra matches read of a request. */
export interface MatchRequest {
  /** Lowercase, without the port; undefined when the request names none. */
  readonly host: string | undefined;
  readonly method: string;
  readonly headers: { get(name: string): string | null };
  /** The query including its `?`, or "". */
  readonly query: string;
}

/** The longest path_regex (or header/query regex) a config may hold. */
export const MAX_PATTERN_LENGTH = 256;

/** The whole-string RegExp for a pattern source (anchored as if written `^...$`). */
export function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`, "u");
}

/**
 * Why a regex could take time exponential (or worse) in its input, or
 * undefined when it is one of the shapes accepted: no backreferences, no
 * lookaround, no quantifier applied to something that already contains a
 * quantifier or an alternation (`(a+)+`, `(a|a)*`), and at most
 * {@linkcode MAX_PATTERN_LENGTH} characters. Conservative on purpose: some
 * safe patterns are refused, no refused one can hang a request.
 */
export function unsafePattern(source: string): string | undefined {
  if (source.length > MAX_PATTERN_LENGTH) {
    return `must be at most ${MAX_PATTERN_LENGTH} characters, got ${source.length}`;
  }
  // Per open group: whether it contains a quantifier or an alternation so far.
  const groups: { risky: boolean }[] = [{ risky: false }];
  let lastAtomRisky = false; // the atom just closed is a group that contains a quantifier or "|"
  let lastAtom = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      const next = source[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return "must not use backreferences";
      i++;
      if (next === "u" && source[i + 1] === "{") i = source.indexOf("}", i);
      lastAtom = true;
      lastAtomRisky = false;
      continue;
    }
    if (c === "[") {
      // A character class is one atom; skip to its unescaped "]".
      let j = i + 1;
      if (source[j] === "^") j++;
      if (source[j] === "]") j++;
      while (j < source.length && source[j] !== "]") j += source[j] === "\\" ? 2 : 1;
      i = j;
      lastAtom = true;
      lastAtomRisky = false;
      continue;
    }
    if (c === "(") {
      if (source.startsWith("(?=", i) || source.startsWith("(?!", i)) {
        return "must not use lookahead";
      }
      if (source.startsWith("(?<=", i) || source.startsWith("(?<!", i)) {
        return "must not use lookbehind";
      }
      // (?:, (?<name>, (?i: open a group like "(" does; their "?" is no quantifier.
      if (source[i + 1] === "?") {
        while (i < source.length && source[i] !== ":" && source[i] !== ">") i++;
      }
      groups.push({ risky: false });
      lastAtom = false;
      continue;
    }
    if (c === ")") {
      if (groups.length === 1) return undefined; // unbalanced: RegExp itself reports it
      const closed = groups.pop()!;
      lastAtom = true;
      lastAtomRisky = closed.risky;
      if (closed.risky) groups[groups.length - 1].risky = true;
      continue;
    }
    if (c === "|") {
      groups[groups.length - 1].risky = true;
      lastAtom = false;
      continue;
    }
    const quantifier = c === "*" || c === "+" || c === "?" ||
      (c === "{" && /^\{\d+(,\d*)?\}/.test(source.slice(i)));
    if (quantifier) {
      // Only a quantifier that repeats (*, +, {n,}, {n,m} with m > 1) multiplies the paths.
      let repeats = c === "*" || c === "+";
      if (c === "{") {
        const end = source.indexOf("}", i);
        const [min, max] = source.slice(i + 1, end).split(",");
        repeats = max === undefined ? Number(min) > 1 : max === "" || Number(max) > 1;
        i = end;
      }
      if (source[i + 1] === "?") i++; // lazy: same cost
      if (repeats && lastAtom && lastAtomRisky) {
        return "must not repeat a group that contains a quantifier or an alternation " +
          "(such as (a+)+ or (a|b)*): it can take exponential time";
      }
      groups[groups.length - 1].risky = true;
      lastAtom = false;
      continue;
    }
    lastAtom = c !== "^" && c !== "$";
    lastAtomRisky = false;
  }
  return undefined;
}

/**
 * Checks a regex for config: safe (see {@linkcode unsafePattern}) and valid.
 * Returns the problem, or undefined.
 */
export function patternProblem(source: string): string | undefined {
  const unsafe = unsafePattern(source);
  if (unsafe !== undefined) return unsafe;
  try {
    anchored(source);
    return undefined;
  } catch (error) {
    return `is not a valid regular expression: ${(error as Error).message}`;
  }
}

const HOST_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Checks a `hosts:` entry and returns it lowercase, or a problem: a DNS
 * name, optionally with `*.` as its whole first label; no port, no other
 * wildcard.
 */
export function checkHostPattern(value: string): { host: string } | { problem: string } {
  const shown = JSON.stringify(value);
  const host = value.toLowerCase();
  if (host === "*") return { problem: `"*" is not a host: leave hosts out to match any host` };
  const labels = host.split(".");
  const wildcard = labels[0] === "*";
  const named = wildcard ? labels.slice(1) : labels;
  if (named.some((label) => label.includes("*"))) {
    return {
      problem: `a wildcard may only be the whole first label ("*.example.com"), got ${shown}`,
    };
  }
  if (host.includes(":")) return { problem: `must be a host name without a port, got ${shown}` };
  if (host.length > 253 || named.length === 0 || !named.every((l) => HOST_LABEL.test(l))) {
    return {
      problem:
        `must be a DNS name (letters, digits, "-" and "."), optionally starting with "*.", got ${shown}`,
    };
  }
  return { host };
}

/**
 * A request's host as routes compare it: the authority of `request.url`
 * (Deno writes the Host header there for origin-form, the target's own
 * authority for absolute-form, as RFC 9112 section 3.2.2 says it must win,
 * and `:authority` for HTTP/2), lowercase, without port or a trailing dot.
 */
export function requestHost(url: string): string | undefined {
  const start = url.indexOf("://");
  if (start === -1) return undefined;
  let end = start + 3;
  let colon = -1;
  const bracketed = url.charCodeAt(end) === 0x5b; // [
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f || c === 0x23) break; // / ? #
    if (c === 0x3a && (!bracketed || url.charCodeAt(end - 1) === 0x5d)) colon = end; // :
    end++;
  }
  let host = url.slice(start + 3, colon === -1 ? end : colon);
  if (host.endsWith(".")) host = host.slice(0, -1);
  return host === "" ? undefined : host.toLowerCase();
}

/** A canonical string for a route's whole match: two routes with the same key conflict. */
export function matchKey(route: {
  readonly hosts?: readonly string[];
  readonly pathKind?: "exact" | "regex";
  readonly pathPrefix: string;
  readonly caseInsensitive?: boolean;
  readonly methods?: readonly string[];
  readonly headers?: readonly ValueMatch[];
  readonly query?: readonly ValueMatch[];
}): string {
  const sorted = (values: readonly string[] | undefined) => [...new Set(values ?? [])].sort();
  const entries = (values: readonly ValueMatch[] | undefined) =>
    sorted((values ?? []).map((v) => JSON.stringify([v.name, v.value, v.regex, v.present])));
  return JSON.stringify([
    sorted(route.hosts),
    route.pathKind ?? "prefix",
    route.pathPrefix,
    route.caseInsensitive === true,
    sorted(route.methods),
    entries(route.headers),
    entries(route.query),
  ]);
}

/** A header or query match, compiled. */
interface CompiledValue {
  readonly name: string;
  readonly value?: string;
  readonly regex?: RegExp;
}

/** A route with its extra matches compiled; `rank` orders the routes of one path. */
export interface Candidate<R> {
  readonly route: R;
  readonly methods?: readonly string[];
  readonly headers?: readonly CompiledValue[];
  readonly query?: readonly CompiledValue[];
  /** Its `*.` hosts cover one label only: not a candidate for a deeper name. */
  readonly oneLabel?: true;
}

/** The parts of a route the candidate check reads. */
export interface MatchableRoute {
  readonly methods?: readonly string[];
  readonly headers?: readonly ValueMatch[];
  readonly query?: readonly ValueMatch[];
  readonly oneLabelWildcard?: true;
}

function compileValues(values: readonly ValueMatch[] | undefined): CompiledValue[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  return values.map((v) =>
    v.regex !== undefined
      ? { name: v.name, regex: anchored(v.regex) }
      : v.value !== undefined
      ? { name: v.name, value: v.value }
      : { name: v.name }
  );
}

/** Compiles a route's method, header and query matches. */
export function candidate<R extends MatchableRoute>(route: R): Candidate<R> {
  return {
    route,
    methods: route.methods !== undefined && route.methods.length > 0 ? route.methods : undefined,
    headers: compileValues(route.headers),
    query: compileValues(route.query),
    ...(route.oneLabelWildcard && { oneLabel: true as const }),
  };
}

/**
 * Sorts the candidates of one path by the rest of the precedence: a method
 * match, then more header matches, then more query matches, then the order
 * given (config order), which a stable sort keeps.
 */
export function byPrecedence<R>(candidates: Candidate<R>[]): Candidate<R>[] {
  return candidates.sort(precedence);
}

/** Negative when `a` goes before `b` among routes of the same host and path (see byPrecedence). */
export function precedence<R>(a: Candidate<R>, b: Candidate<R>): number {
  return (a.methods ? 0 : 1) - (b.methods ? 0 : 1) ||
    (b.headers?.length ?? 0) - (a.headers?.length ?? 0) ||
    (b.query?.length ?? 0) - (a.query?.length ?? 0);
}

/** Per-request state of one match: the query is parsed at most once, only when a route asks. */
export class RequestFacts {
  readonly request: MatchRequest;
  /** Set while a wildcard index is asked for more than one label before its suffix. */
  deepWildcard = false;
  #params?: URLSearchParams;

  constructor(request: MatchRequest) {
    this.request = request;
  }

  /** The first value of a query parameter, or null. */
  param(name: string): string | null {
    this.#params ??= new URLSearchParams(this.request.query);
    return this.#params.get(name);
  }
}

function valuesMatch(
  wanted: readonly CompiledValue[],
  read: (name: string) => string | null,
): boolean {
  for (const w of wanted) {
    const actual = read(w.name);
    if (actual === null) return false;
    if (
      w.value !== undefined ? actual !== w.value : w.regex !== undefined && !w.regex.test(actual)
    ) {
      return false;
    }
  }
  return true;
}

/** The first candidate, in the order given, whose method, headers and query all match. */
export function firstMatching<R>(
  candidates: readonly Candidate<R>[],
  facts: RequestFacts,
): R | undefined {
  for (const c of candidates) {
    if (c.oneLabel && facts.deepWildcard) continue;
    if (c.methods !== undefined && !c.methods.includes(facts.request.method)) continue;
    if (c.headers !== undefined && !valuesMatch(c.headers, (n) => facts.request.headers.get(n))) {
      continue;
    }
    if (c.query !== undefined && !valuesMatch(c.query, (n) => facts.param(n))) continue;
    return c.route;
  }
  return undefined;
}
