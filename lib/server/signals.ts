import type { Logger } from "../log/logger.ts";

/** Resolves on the first SIGTERM or SIGINT, then stops listening for them. */
export function untilSignal(logger: Logger): Promise<Deno.Signal> {
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  return new Promise((resolve) => {
    const handlers = new Map<Deno.Signal, () => void>();
    for (const signal of signals) {
      const handler = () => {
        logger.info("signal_received", { signal });
        for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
        resolve(signal);
      };
      handlers.set(signal, handler);
      Deno.addSignalListener(signal, handler);
    }
  });
}
