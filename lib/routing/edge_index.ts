/** The index of routes with hosts, exact or regex paths, or conditions (methods, headers, query). */
import {
  anchored,
  byPrecedence,
  type Candidate,
  candidate,
  firstMatching,
  type MatchRequest,
  precedence,
  RequestFacts,
} from "./match.ts";
import { foldCase, hasCase } from "./prefix_tree.ts";
import type { RouteEntry } from "./route.ts";

/** Whether a route matches on anything besides a path prefix. */
export function isConditional(route: RouteEntry): boolean {
  return route.pathKind !== undefined || route.hosts !== undefined ||
    route.methods !== undefined || route.headers !== undefined || route.query !== undefined;
}

type RouteCandidate = Candidate<RouteEntry>;

/** One segment of a conditional table's prefix tree, with the routes whose prefix ends here. */
interface EdgeNode {
  candidates?: RouteCandidate[];
  children?: Map<string, EdgeNode>;
}

/** The routes of one host (or of any host), by path. */
interface PathIndex {
  readonly exact: Map<string, RouteCandidate[]>;
  /** Case-insensitive exact paths, by folded path. */
  readonly foldedExact: Map<string, RouteCandidate[]>;
  readonly root: EdgeNode;
  /** Case-insensitive prefixes, by folded segments. */
  readonly folded: EdgeNode;
  readonly hasFolded: boolean;
  readonly regex: { readonly pattern: RegExp; readonly candidate: RouteCandidate }[];
}

/**
 * A conditional table: hosts by hash (exact names, then wildcard suffixes
 * label by label), each with its own path index; the method, header and
 * query matches are checked only on the candidates of a matching path.
 */
export interface EdgeIndex {
  readonly exactHosts: Map<string, PathIndex>;
  /**
   * `*.example.com` under `example.com`; a route whose wildcard covers one
   * label only (Ingress) is skipped for deeper names (`oneLabelWildcard`).
   */
  readonly wildcardHosts: Map<string, PathIndex>;
  readonly anyHost: PathIndex;
}

function emptyPathIndex(): PathIndex {
  return {
    exact: new Map(),
    foldedExact: new Map(),
    root: {},
    folded: {},
    hasFolded: false,
    regex: [],
  };
}

export function buildEdgeIndex(routes: readonly RouteEntry[]): EdgeIndex {
  const edge: EdgeIndex = {
    exactHosts: new Map(),
    wildcardHosts: new Map(),
    anyHost: emptyPathIndex(),
  };
  const indexes = new Set<PathIndex>([edge.anyHost]);
  for (const route of routes) {
    const compiled = candidate(route);
    const targets: PathIndex[] = [];
    if (route.hosts === undefined) targets.push(edge.anyHost);
    for (const host of new Set(route.hosts ?? [])) {
      const wildcard = host.startsWith("*.");
      const map = wildcard ? edge.wildcardHosts : edge.exactHosts;
      const key = wildcard ? host.slice(2) : host;
      let index = map.get(key);
      if (index === undefined) {
        index = emptyPathIndex();
        map.set(key, index);
        indexes.add(index);
      }
      targets.push(index);
    }
    for (const index of targets) addToPathIndex(index, route, compiled);
  }
  for (const index of indexes) {
    for (const list of index.exact.values()) byPrecedence(list);
    for (const list of index.foldedExact.values()) byPrecedence(list);
    sortTree(index.root);
    sortTree(index.folded);
    // Only the extra matches order regex routes: a stable sort keeps config order.
    index.regex.sort((a, b) => precedence(a.candidate, b.candidate));
  }
  return edge;
}

function addToPathIndex(index: PathIndex, route: RouteEntry, compiled: RouteCandidate): void {
  const folding = route.caseInsensitive === true && hasCase(route.pathPrefix);
  if (folding) (index as { hasFolded: boolean }).hasFolded = true;
  if (route.pathKind === "regex") {
    index.regex.push({ pattern: anchored(route.pathPrefix), candidate: compiled });
    return;
  }
  if (route.pathKind === "exact") {
    const map = folding ? index.foldedExact : index.exact;
    const key = folding ? foldCase(route.pathPrefix) : route.pathPrefix;
    const list = map.get(key);
    if (list === undefined) map.set(key, [compiled]);
    else list.push(compiled);
    return;
  }
  let node = folding ? index.folded : index.root;
  if (route.pathPrefix !== "/") {
    for (const raw of route.pathPrefix.slice(1).split("/")) {
      const segment = folding ? foldCase(raw) : raw;
      node.children ??= new Map();
      let child = node.children.get(segment);
      if (child === undefined) {
        child = {};
        node.children.set(segment, child);
      }
      node = child;
    }
  }
  (node.candidates ??= []).push(compiled);
}

function sortTree(node: EdgeNode): void {
  if (node.candidates !== undefined) byPrecedence(node.candidates);
  for (const child of node.children?.values() ?? []) sortTree(child);
}

const NO_REQUEST: MatchRequest = {
  host: undefined,
  method: "",
  headers: { get: () => null },
  query: "",
};

export function matchEdge(
  edge: EdgeIndex,
  path: string,
  request: MatchRequest | undefined,
): RouteEntry | undefined {
  const facts = new RequestFacts(request ?? NO_REQUEST);
  const host = facts.request.host;
  if (host !== undefined) {
    const exact = edge.exactHosts.get(host);
    if (exact !== undefined) {
      const found = matchPath(exact, path, facts);
      if (found !== undefined) return found;
    }
    if (edge.wildcardHosts.size > 0) {
      // Longest suffix first; the suffix always leaves at least one label before it.
      let dot = host.indexOf(".");
      while (dot !== -1) {
        const index = edge.wildcardHosts.get(host.slice(dot + 1));
        if (index !== undefined) {
          const found = matchPath(index, path, facts);
          if (found !== undefined) return found;
        }
        dot = host.indexOf(".", dot + 1);
        facts.deepWildcard = true;
      }
      facts.deepWildcard = false;
    }
  }
  return matchPath(edge.anyHost, path, facts);
}

/** Exact path, then the longest prefix, then regex; the first candidate that fully matches. */
function matchPath(index: PathIndex, path: string, facts: RequestFacts): RouteEntry | undefined {
  const exact = index.exact.get(path);
  const foldedExact = index.hasFolded ? index.foldedExact.get(foldCase(path)) : undefined;
  const byExact = atSameDepth(exact, foldedExact, facts);
  if (byExact !== undefined) return byExact;

  // Walk both trees down the path, remembering where routes end, then try the deepest first.
  const depths: [RouteCandidate[] | undefined, RouteCandidate[] | undefined][] = [];
  let node: EdgeNode | undefined = index.root;
  let fold: EdgeNode | undefined = index.hasFolded ? index.folded : undefined;
  depths.push([node.candidates, fold?.candidates]);
  let start = 1;
  while (start < path.length) {
    let end = path.indexOf("/", start);
    if (end === -1) end = path.length;
    const segment = path.slice(start, end);
    node = node?.children?.get(segment);
    fold = fold?.children === undefined ? undefined : fold.children.get(foldCase(segment));
    if (node === undefined && fold === undefined) break;
    depths.push([node?.candidates, fold?.candidates]);
    start = end + 1;
  }
  for (let i = depths.length - 1; i >= 0; i--) {
    const found = atSameDepth(depths[i][0], depths[i][1], facts);
    if (found !== undefined) return found;
  }

  for (const { pattern, candidate } of index.regex) {
    if (pattern.test(path)) {
      const found = firstMatching([candidate], facts);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Of the routes of one path, in the exact spelling and case-folded: the
 * exact spelling first, except that config routes come before Kubernetes
 * ones (as preferred() decides for plain tables).
 */
function atSameDepth(
  exact: readonly RouteCandidate[] | undefined,
  folded: readonly RouteCandidate[] | undefined,
  facts: RequestFacts,
): RouteEntry | undefined {
  if (folded === undefined) return exact === undefined ? undefined : firstMatching(exact, facts);
  if (exact === undefined) return firstMatching(folded, facts);
  const fromConfig = (c: RouteCandidate) => c.route.source === "config";
  return firstMatching(exact.filter(fromConfig), facts) ??
    firstMatching(folded.filter(fromConfig), facts) ??
    firstMatching(exact, facts) ?? firstMatching(folded, facts);
}
