/**
 * What to add to a problem about a key that sits in the wrong place or lacks its colon. The
 * schema's object() and list() register what they read, so that a key written one level too
 * high (`server:` left empty, `port:` below it unindented) can be placed.
 *
 * @module
 */

import { closestName, didYouMean } from "./did_you_mean.ts";

const objectKeys = new WeakMap<object, readonly string[]>();
const listItems = new WeakMap<object, object>();

/** Records that `check` reads a mapping with these keys. */
export function registerObject(check: object, keys: readonly string[]): void {
  objectKeys.set(check, keys);
}

/** Records that `check` reads a list whose items `item` reads. */
export function registerList(check: object, item: object): void {
  listItems.set(check, item);
}

/**
 * For an unknown key of a mapping with `fields`: the known key it was probably meant to be, or
 * else the child section where it is a key.
 */
export function unknownKeyHint(
  name: string,
  fields: Readonly<Record<string, { readonly check: object }>>,
): string {
  const suggestion = didYouMean(name, Object.keys(fields));
  if (suggestion !== "") return suggestion;
  for (const [section, field] of Object.entries(fields)) {
    if (objectKeys.get(field.check)?.includes(name)) {
      return `; ${JSON.stringify(name)} is a key of ${section}: indent it under ${section}:`;
    }
    const item = listItems.get(field.check);
    if (item !== undefined && objectKeys.get(item)?.includes(name)) {
      return `; ${
        JSON.stringify(name)
      } is a key of each ${section} entry: indent it under a "- " item`;
    }
  }
  return "";
}

/**
 * For a string where a mapping with `keys` was expected: `port 8000` or `port:8000` is a key and
 * value missing their colon or the space after it.
 */
export function missingColonHint(value: unknown, keys: readonly string[]): string {
  if (typeof value !== "string") return "";
  const match = /^([A-Za-z_][\w-]*)(?::(?=\S)|\s+(?!:))(.+)$/.exec(value);
  if (match === null) return "";
  const key = keys.includes(match[1]) ? match[1] : closestName(match[1], keys);
  if (key === undefined) return "";
  return `; a key needs a colon and a space after it: ${key}: ${match[2].trim()}`;
}
