/**
 * "Did you mean" suggestions for mistyped names (config keys, service names, commands): the
 * closest known name by edit distance, ignoring letter case.
 *
 * @module
 */

/**
 * The optimal string alignment distance (Damerau-Levenshtein without repeated edits of one
 * substring): insertions, deletions, substitutions and swaps of two neighbours each cost 1, so
 * `prot` is 1 from `port`, where plain Levenshtein says 2.
 */
export function editDistance(a: string, b: string): number {
  // Three rows of the dynamic-programming table are enough: a swap looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, before[j - 2] + 1);
      }
      current[j] = best;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[b.length];
}

/**
 * The known name closest to `name` (case-insensitive), or undefined when none is close enough:
 * for names of 1 or 2 characters only a difference of letter case (every short name is one edit
 * from every other), at most 1 edit up to 4 characters, else at most 2. Ties go to the earlier
 * name.
 *
 * @example
 * ```ts
 * closestName("prot", ["port", "host"]); // "port"
 * closestName("bogus", ["port", "host"]); // undefined
 * ```
 */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  const wanted = name.toLowerCase();
  const limit = wanted.length <= 2 ? 0 : wanted.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    if (candidate === name) continue;
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** `; did you mean "port"?` for the closest known name, or "" when none is close. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const closest = closestName(name, known);
  return closest === undefined ? "" : `; did you mean ${JSON.stringify(closest)}?`;
}
