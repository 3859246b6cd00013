/**
 * The `text` log format: one line per record for a person at a terminal, in the logfmt style
 * (`key=value`, a value in double quotes when it needs them), so that log tools that read logfmt
 * read it too:
 *
 * ```
 * 2026-05-01T10:00:00.000Z WARN  redis_unavailable address=127.0.0.1:6379 reason="connection refused"
 * ```
 *
 * @module
 */

// Nested objects are flattened to `a.b.c=`; deeper than this they are written as JSON.
const MAX_DEPTH = 4;

/** `TIME LEVEL event key=value ...`; the level upper case and padded so that events line up. */
export function formatTextLine(
  time: string,
  level: string,
  event: string,
  fields?: Record<string, unknown>,
): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${textValue(event)}`;
  if (fields === undefined) return line;
  for (const key in fields) line += pairs(safeKey(key), fields[key], 0);
  return line;
}

/** ` key=value` (or several, for an object flattened), or "" for what JSON would leave out. */
function pairs(key: string, value: unknown, depth: number): string {
  if (value === undefined || typeof value === "function" || typeof value === "symbol") return "";
  if (value instanceof Error) {
    return pairs(key, { name: value.name, message: value.message, stack: value.stack }, depth);
  }
  if (typeof value === "object" && value !== null && "toJSON" in value) {
    const toJSON = (value as { toJSON: unknown }).toJSON;
    if (typeof toJSON === "function") return pairs(key, toJSON.call(value), depth);
  }
  if (Array.isArray(value)) return ` ${key}=${listValue(value)}`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0 || depth >= MAX_DEPTH) {
      return ` ${key}=${textValue(JSON.stringify(value, replaceBigInt))}`;
    }
    return entries.map(([name, child]) => pairs(`${key}.${safeKey(name)}`, child, depth + 1))
      .join("");
  }
  return ` ${key}=${scalarValue(value)}`;
}

function scalarValue(value: unknown): string {
  if (typeof value === "string") return textValue(value);
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "null";
  return String(value); // boolean, null, bigint
}

/** `a,b,c` when every item is a bare word without a comma, else the list as quoted JSON. */
function listValue(items: unknown[]): string {
  if (items.length === 0) return "[]";
  const words = items.map((item) =>
    typeof item === "string" || typeof item === "number" || typeof item === "boolean"
      ? scalarValue(item)
      : undefined
  );
  if (words.every((word) => word !== undefined && BARE.test(word) && !word.includes(","))) {
    return words.join(",");
  }
  return textValue(JSON.stringify(items, replaceBigInt) ?? "null");
}

/**
 * A string as it is when it is one plain word, else in double quotes with `"`, `\` and every
 * control or invisible formatting character escaped, so that one record is always one line and
 * a value cannot pass for another field or move the terminal's cursor.
 */
export function textValue(value: string): string {
  if (BARE.test(value)) return value;
  return JSON.stringify(value).replace(
    INVISIBLE,
    (char) => [...Array(char.length).keys()].map((i) => unicodeEscape(char.charCodeAt(i))).join(""),
  );
}

function unicodeEscape(unit: number): string {
  return `\\u${unit.toString(16).padStart(4, "0")}`;
}

// No space, quote, equals sign, backslash, control or invisible formatting character; not empty.
const BARE = /^[^\s"=\\\p{Cc}\p{Cf}]+$/u;
// What JSON.stringify leaves unescaped but a terminal would act on or hide.
const INVISIBLE = /[\p{Cc}\p{Cf}\u2028\u2029\u0085]/gu;

/** A logfmt key: letters, digits and `_ . - /`; anything else becomes `_`. */
function safeKey(key: string): string {
  const safe = key.replace(/[^A-Za-z0-9_.\-/]/g, "_");
  return safe === "" ? "_" : safe;
}

function replaceBigInt(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
