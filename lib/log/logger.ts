import { formatTextLine } from "./text_format.ts";

/** Structured fields of a log event; values must be JSON-serializable. */
export type LogFields = Record<string, unknown>;

/** How records are written: JSON lines (for log collectors) or text lines (for a terminal). */
export type LogLineFormat = "json" | "text";

/** Where a logger writes its lines; `urgent` lines (warn, error) should not wait in a buffer. */
export interface LogSink {
  write(line: string, urgent: boolean): void;
  flush(): void;
}

/** The one logger: one line per record with a stable snake_case `event` name. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Writes out anything buffered (before exit). */
  flush(): void;
}

/** POSIX: a write to a pipe of at most this many bytes is never interleaved with another's. */
export const PIPE_BUF = 4096;

/**
 * Where a write starting at `start` ends: the end of the last whole line
 * within `limit` bytes (one longer line alone, whole), or the end.
 */
export function writeEnd(bytes: Uint8Array, start: number, limit: number): number {
  if (bytes.length - start <= limit) return bytes.length;
  const last = bytes.lastIndexOf(0x0a, start + limit - 1);
  if (last >= start) return last + 1;
  const next = bytes.indexOf(0x0a, start + limit);
  return next === -1 ? bytes.length : next + 1;
}

/**
 * Lines to stdout, batched: one write per 32 KB or per 50 ms instead of one
 * per line, which at thousands of requests a second is most of the cost of
 * an access log. Each line is encoded into one reused byte buffer when it is
 * written: a line kept as a string until the flush outlives a young
 * generation collection or two and is copied, then promoted to the old
 * generation, which then grows and needs full collections (measured with
 * --trace-gc). Lines of level warn and error are written at once.
 * `lineAtomic` (several threads share stdout: `server.workers`): each write
 * is whole lines of at most PIPE_BUF bytes, which a pipe (a container's log)
 * never interleaves mid-line with another thread's.
 */
export function batchedStdout(options: { lineAtomic?: boolean } = {}): LogSink {
  const limit = options.lineAtomic ? PIPE_BUF : Infinity;
  let buffer = new Uint8Array(BATCH_BYTES * 2);
  let size = 0;
  let timer: number | undefined;
  function flush(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (size === 0) return;
    const bytes = buffer.subarray(0, size);
    size = 0;
    let start = 0;
    while (start < bytes.length) {
      const end = writeEnd(bytes, start, limit);
      let offset = start;
      while (offset < end) offset += Deno.stdout.writeSync(bytes.subarray(offset, end));
      start = end;
    }
  }
  return {
    write(line, urgent) {
      // UTF-8 takes at most 3 bytes per UTF-16 code unit.
      const room = line.length * 3;
      if (buffer.length - size < room) {
        flush();
        if (buffer.length < room) buffer = new Uint8Array(room);
      }
      size += encoder.encodeInto(line, buffer.subarray(size)).written;
      if (urgent || size >= BATCH_BYTES) {
        flush();
      } else if (timer === undefined) {
        timer = setTimeout(flush, 50) as unknown as number;
        Deno.unrefTimer(timer);
      }
    },
    flush,
  };
}

const encoder = new TextEncoder();
const BATCH_BYTES = 32 * 1024;

/** A logger that writes one JSON object per line through `write` (batched stdout by default). */
export function jsonLogger(sink: LogSink = batchedStdout()): Logger {
  return lineLogger(sink, formatLine);
}

/**
 * A logger that writes one text line per record (`TIME LEVEL event key=value ...`, see
 * text_format.ts) through `write` (batched stdout by default).
 */
export function textLogger(sink: LogSink = batchedStdout()): Logger {
  return lineLogger(sink, formatTextLine);
}

/** The logger for a `log.format` already resolved by {@linkcode resolveLogFormat}. */
export function createLogger(format: LogLineFormat, sink: LogSink = batchedStdout()): Logger {
  return format === "text" ? textLogger(sink) : jsonLogger(sink);
}

/**
 * `log.format` as it applies here: `auto` is `text` when stdout is a terminal (a person is
 * reading) and `json` otherwise (a container's log, a pipe, a file).
 */
export function resolveLogFormat(
  format: LogLineFormat | "auto",
  isTerminal: () => boolean = () => Deno.stdout.isTerminal(),
): LogLineFormat {
  if (format !== "auto") return format;
  try {
    return isTerminal() ? "text" : "json";
  } catch {
    return "json";
  }
}

function lineLogger(
  sink: LogSink,
  format: (time: string, level: string, event: string, fields?: LogFields) => string,
): Logger {
  function emit(level: string, event: string, fields?: LogFields): void {
    let line: string;
    try {
      line = format(timestamp(), level, event, fields);
    } catch {
      line = format(timestamp(), level, event, { log_error: "unserializable fields" });
    }
    sink.write(line + "\n", level !== "info");
  }
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
    flush: () => sink.flush(),
  };
}

/** A logger that keeps records in memory (tests) */
export function memoryLogger(): Logger & { records: LogFields[] } {
  const records: LogFields[] = [];
  const logger = jsonLogger({ write: (line) => records.push(JSON.parse(line)), flush() {} });
  return Object.assign(logger, { records });
}

/**
 * One JSON object: `time`, `level`, `event`, then the fields in order.
 * Written field by field rather than by spreading them into a new object
 * for JSON.stringify: an access line is logged per request, and this is
 * about half the cost. Strings of plain printable ASCII need no escaping.
 */
function formatLine(time: string, level: string, event: string, fields?: LogFields): string {
  if (fields === undefined) return `{"time":"${time}","level":"${level}","event":${text(event)}}`;
  if ("time" in fields || "level" in fields || "event" in fields) {
    // A field named like one of the three replaces it, as a spread would.
    return JSON.stringify({ time, level, event, ...fields }, replaceErrors);
  }
  let line = `{"time":"${time}","level":"${level}","event":${text(event)}`;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined || typeof value === "function" || typeof value === "symbol") continue;
    line += keyPart(key);
    if (typeof value === "string") line += text(value);
    else if (typeof value === "number") line += Number.isFinite(value) ? String(value) : "null";
    else if (value === null || typeof value === "boolean") line += String(value);
    else line += JSON.stringify(value, replaceErrors) ?? "null";
  }
  return line + "}";
}

/** `,"key":`, made once per distinct key (field names are few: the code's own). */
function keyPart(key: string): string {
  let part = KEY_PARTS.get(key);
  if (part === undefined) {
    part = `,${text(key)}:`;
    if (KEY_PARTS.size < 1000) KEY_PARTS.set(key, part);
  }
  return part;
}
const KEY_PARTS = new Map<string, string>();

/** A JSON string literal. */
function text(value: string): string {
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}

// Printable ASCII without `"` and `\`: written as it is inside quotes.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The current time as ISO 8601, formatted at most once per millisecond. */
function timestamp(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
let lastMs = -1;
let lastIso = "";

function replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
