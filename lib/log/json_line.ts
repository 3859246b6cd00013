/**
 * JSON log lines written straight into bytes: `{"time":...,"level":...,
 * "event":...,<fields>}\n` encoded as it is formatted, with no string built
 * for the line. An access line per request is the one log line of the hot
 * path; formatting it as a string (one piece per field), keeping it until the
 * batch is written and encoding it then costs several microseconds and a
 * kilobyte and a half of garbage per request.
 *
 * Plain printable ASCII (the usual case: ids, paths, addresses) is copied
 * byte by byte; any other string is written as `JSON.stringify` writes it.
 *
 * @module
 */

const encoder = new TextEncoder();

/** A growable byte buffer that lines are written into, flushed by its owner. */
export class LineBuffer {
  bytes: Uint8Array<ArrayBuffer>;
  size = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  /** Room for `n` more bytes (grows; the owner flushes before it would). */
  reserve(n: number): void {
    if (this.size + n <= this.bytes.length) return;
    const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.size + n));
    bigger.set(this.bytes.subarray(0, this.size));
    this.bytes = bigger;
  }

  /** Appends `text` as UTF-8. */
  text(text: string): void {
    this.reserve(text.length * 3);
    this.size += encoder.encodeInto(text, this.bytes.subarray(this.size)).written;
  }
}

/**
 * Appends one JSON line to `out`. Fields whose value JSON leaves out
 * (undefined, functions, symbols) are left out; other objects are written
 * with `JSON.stringify(value, replacer)`. Throws what that throws (a cycle),
 * with `out` as it was before the call.
 */
export function writeJsonLine(
  out: LineBuffer,
  time: string,
  level: string,
  event: string,
  fields: Record<string, unknown> | undefined,
  replacer: (key: string, value: unknown) => unknown,
): void {
  const start = out.size;
  try {
    ascii(out, '{"time":');
    string(out, time);
    ascii(out, ',"level":');
    string(out, level);
    ascii(out, ',"event":');
    string(out, event);
    if (fields !== undefined) {
      for (const key in fields) {
        const value = fields[key];
        if (value === undefined || typeof value === "function" || typeof value === "symbol") {
          continue;
        }
        ascii(out, ",");
        string(out, key);
        ascii(out, ":");
        if (typeof value === "string") string(out, value);
        else if (typeof value === "number") {
          ascii(out, Number.isFinite(value) ? String(value) : "null");
        } else if (value === null || typeof value === "boolean") ascii(out, String(value));
        else out.text(JSON.stringify(value, replacer) ?? "null");
      }
    }
    ascii(out, "}\n");
  } catch (error) {
    out.size = start;
    throw error;
  }
}

/** Appends text known to be ASCII. */
function ascii(out: LineBuffer, text: string): void {
  const n = text.length;
  out.reserve(n);
  const bytes = out.bytes;
  let at = out.size;
  for (let i = 0; i < n; i++) bytes[at++] = text.charCodeAt(i);
  out.size = at;
}

/** Appends a JSON string literal: copied when plain printable ASCII, else as JSON.stringify writes it. */
function string(out: LineBuffer, value: string): void {
  const n = value.length;
  out.reserve(n + 2);
  const bytes = out.bytes;
  const start = out.size;
  let at = start;
  bytes[at++] = QUOTE;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) {
      out.size = start;
      out.text(JSON.stringify(value));
      return;
    }
    bytes[at++] = c;
  }
  bytes[at++] = QUOTE;
  out.size = at;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
