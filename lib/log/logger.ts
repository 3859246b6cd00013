/** Structured fields of a log event; values must be JSON-serializable. */
export type LogFields = Record<string, unknown>;

/** The one logger: JSON lines with a stable snake_case `event` name. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Writes out anything buffered (before exit). */
  flush(): void;
}

const encoder = new TextEncoder();

/**
 * Lines to stdout, batched: one write per 32 KB or per 50 ms instead of one
 * per line, which at thousands of requests a second is most of the cost of
 * an access log. Lines of level warn and error are written at once.
 */
export function batchedStdout(): { write(line: string, urgent: boolean): void; flush(): void } {
  let pending: string[] = [];
  let size = 0;
  let timer: number | undefined;
  function flush(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (size === 0) return;
    const bytes = encoder.encode(pending.join(""));
    pending = [];
    size = 0;
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
  return {
    write(line, urgent) {
      pending.push(line);
      size += line.length;
      if (urgent || size >= 32 * 1024) {
        flush();
      } else if (timer === undefined) {
        timer = setTimeout(flush, 50) as unknown as number;
        Deno.unrefTimer(timer);
      }
    },
    flush,
  };
}

/** A logger that writes one JSON object per line through `write` (batched stdout by default). */
export function jsonLogger(
  sink: { write(line: string, urgent: boolean): void; flush(): void } = batchedStdout(),
): Logger {
  function emit(level: string, event: string, fields?: LogFields): void {
    const record = { time: new Date().toISOString(), level, event, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, replaceErrors);
    } catch {
      line = JSON.stringify({
        time: record.time,
        level,
        event,
        log_error: "unserializable fields",
      });
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

function replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
