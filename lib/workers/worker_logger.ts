/**
 * A worker thread's logger: the same JSON lines as the main thread's, each
 * with `worker: <index>`, written by the worker itself (its access log
 * never passes through the main thread), or posted to the main thread
 * (tests, whose logger keeps the records in memory).
 *
 * @module
 */
import {
  batchedStdout,
  createLogger,
  type LogFields,
  type Logger,
  type LogLineFormat,
} from "../log/logger.ts";
import type { FromWorker } from "./protocol.ts";

/** The logger of worker `index`: to stdout in `format`, or through `forward` when given. */
export function workerLogger(
  index: number,
  options: { forward?: (message: FromWorker) => void; format?: LogLineFormat } = {},
): Logger {
  if (options.forward !== undefined) return forwardingLogger(index, options.forward);
  const base = createLogger(options.format ?? "json", batchedStdout({ lineAtomic: true }));
  const tag = (fields?: LogFields): LogFields => ({ worker: index, ...fields });
  return {
    info: (event, fields) => base.info(event, tag(fields)),
    warn: (event, fields) => base.warn(event, tag(fields)),
    error: (event, fields) => base.error(event, tag(fields)),
    flush: () => base.flush(),
  };
}

/** A logger whose records go to the main thread as messages. */
function forwardingLogger(index: number, forward: (message: FromWorker) => void): Logger {
  function emit(level: "info" | "warn" | "error", event: string, fields?: LogFields): void {
    const tagged = { worker: index, ...fields };
    try {
      forward({ type: "log", level, event, fields: tagged });
    } catch {
      // Something not structured-cloneable (a function, say): send what JSON keeps of it.
      forward({ type: "log", level, event, fields: JSON.parse(JSON.stringify(tagged, plain)) });
    }
  }
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
    flush() {},
  };
}

function plain(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
