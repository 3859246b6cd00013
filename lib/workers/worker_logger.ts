/**
 * A worker thread's logger: the same JSON lines as the main thread's, each
 * with `worker: <index>`, written by the worker itself (its access log
 * never passes through the main thread), or posted to the main thread
 * (tests, whose logger keeps the records in memory).
 *
 * @module
 */
import { createLogger, type LogFields, type Logger, type LogLineFormat } from "../log/logger.ts";
import type { FromWorker } from "./protocol.ts";

/** POSIX: a write to a pipe of at most this many bytes is never interleaved with another's. */
const PIPE_BUF = 4096;

/** The logger of worker `index`: to stdout in `format`, or through `forward` when given. */
export function workerLogger(
  index: number,
  options: { forward?: (message: FromWorker) => void; format?: LogLineFormat } = {},
): Logger {
  if (options.forward !== undefined) return forwardingLogger(index, options.forward);
  const base = createLogger(options.format ?? "json", lineAtomicStdout());
  const tag = (fields?: LogFields): LogFields => ({ worker: index, ...fields });
  return {
    info: (event, fields) => base.info(event, tag(fields)),
    warn: (event, fields) => base.warn(event, tag(fields)),
    error: (event, fields) => base.error(event, tag(fields)),
    flush: () => base.flush(),
  };
}

/**
 * Lines to stdout, batched (one write per 50 ms, or at once for warn and
 * error), each write whole lines of at most PIPE_BUF bytes: several threads
 * write the same stdout, and on a pipe (a container's log) only writes that
 * small are never interleaved mid-line with another thread's.
 */
function lineAtomicStdout(): { write(line: string, urgent: boolean): void; flush(): void } {
  const encoder = new TextEncoder();
  let pending: Uint8Array[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  function writeAll(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
  function flush(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const lines = pending;
    pending = [];
    let chunk: Uint8Array[] = [];
    let size = 0;
    const emit = () => {
      if (size === 0) return;
      const out = new Uint8Array(size);
      let at = 0;
      for (const line of chunk) {
        out.set(line, at);
        at += line.length;
      }
      writeAll(out);
      chunk = [];
      size = 0;
    };
    for (const line of lines) {
      if (size + line.length > PIPE_BUF) emit();
      chunk.push(line);
      size += line.length;
    }
    emit();
  }
  return {
    write(line, urgent) {
      pending.push(encoder.encode(line));
      if (urgent || pending.length >= 256) {
        flush();
      } else if (timer === undefined) {
        timer = setTimeout(flush, 50);
        Deno.unrefTimer(timer);
      }
    },
    flush,
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
