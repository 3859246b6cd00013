/** Segment trees of path prefixes, and ASCII case folding for case-insensitive prefixes. */
import type { RouteEntry } from "./route.ts";

/** One segment of the route tree; `route` is set where a prefix ends. */
export interface PrefixNode {
  route?: RouteEntry;
  children?: Map<string, PrefixNode>;
}

export function buildTrie(
  routes: readonly RouteEntry[],
  key: (segment: string) => string,
): PrefixNode {
  const root: PrefixNode = {};
  for (const route of routes) {
    let node = root;
    if (route.pathPrefix !== "/") {
      for (const segment of route.pathPrefix.slice(1).split("/").map(key)) {
        node.children ??= new Map();
        let child = node.children.get(segment);
        if (child === undefined) {
          child = {};
          node.children.set(segment, child);
        }
        node = child;
      }
    }
    // Of two routes with the same prefix (a warning at load), the first given wins.
    node.route ??= route;
  }
  return root;
}

/** Of two routes matching to the same depth, the exact spelling, unless only the other is from config. */
export function preferred(
  exact: RouteEntry | undefined,
  folded: RouteEntry | undefined,
): RouteEntry | undefined {
  if (exact === undefined) return folded;
  if (folded !== undefined && exact.source !== "config" && folded.source === "config") {
    return folded;
  }
  return exact;
}

/*
 * Case folding for case-insensitive prefixes: ASCII letters, and the four
 * other letters whose Unicode case mapping is an ASCII letter (dotted and
 * dotless i, long s, Kelvin sign). Upstreams that compare like Java's
 * equalsIgnoreCase take "/admın" for "/admin", so the gateway must too, or
 * the spelling walks around a protected prefix. Other letters keep their case.
 */
const FOLDABLE = /[A-Z\u0130\u0131\u017f\u212a]/g;

/** Whether folding changes what a prefix can match. */
export function hasCase(prefix: string): boolean {
  return /[A-Za-z\u0130\u0131\u017f\u212a]/.test(prefix);
}

/** A segment in folded form; the segment itself (no allocation) when nothing folds. */
export function foldCase(segment: string): string {
  let folds = false;
  let ascii = true;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c < 0x80) {
      if (c >= 0x41 && c <= 0x5a) folds = true;
    } else {
      ascii = false;
      if (c === 0x130 || c === 0x131 || c === 0x17f || c === 0x212a) folds = true;
    }
  }
  if (!folds) return segment;
  // toLowerCase() would also fold letters such as "É": only for ASCII is it the same thing.
  return ascii ? segment.toLowerCase() : segment.replace(FOLDABLE, foldLetter);
}

function foldLetter(letter: string): string {
  switch (letter) {
    case "\u0130":
    case "\u0131":
      return "i";
    case "\u017f":
      return "s";
    case "\u212a":
      return "k";
    default:
      return letter.toLowerCase();
  }
}
