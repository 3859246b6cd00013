/** Structured fields of a log event; values must be JSON-serializable. */
export type LogFields = Record<string, unknown>;

/** The one logger: JSON lines with a stable snake_case `event` name. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

const encoder = new TextEncoder();

/** A logger that writes one JSON object per line through `write` (stdout by default). */
export function jsonLogger(
  write: (line: string) => void = (line) => Deno.stdout.writeSync(encoder.encode(line)),
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
    write(line + "\n");
  }
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
  };
}

/** A logger that keeps records in memory (tests) */
export function memoryLogger(): Logger & { records: LogFields[] } {
  const records: LogFields[] = [];
  const logger = jsonLogger((line) => records.push(JSON.parse(line)));
  return Object.assign(logger, { records });
}

function replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
