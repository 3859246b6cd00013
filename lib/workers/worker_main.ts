/**
 * The entry module of a proxy worker thread, started by the worker pool
 * (`pool.ts`) with `new Worker(new URL("./worker_main.ts", import.meta.url))`.
 * It waits for its `start` message, starts a {@linkcode ProxyWorker}, and
 * hands it every later message; those that arrive while it starts wait.
 *
 * @module
 */
import type { FromWorker, ToWorker } from "./protocol.ts";
import { ProxyWorker } from "./proxy_worker.ts";

/** What this module uses of the worker's global scope. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
}

const scope = globalThis as unknown as WorkerScope;
const post = (message: FromWorker) => scope.postMessage(message);
let worker: ProxyWorker | undefined;
let waiting: ToWorker[] | undefined = [];

scope.onmessage = function onMessage(event) {
  const message = event.data;
  if (worker !== undefined) {
    worker.handle(message);
  } else if (message.type === "start") {
    ProxyWorker.start(message, post).then((started) => {
      worker = started;
      for (const early of waiting ?? []) started.handle(early);
      waiting = undefined;
    }, (error) => {
      post({
        type: "start_failed",
        reason: error instanceof Error ? error.message : String(error),
      });
    });
  } else {
    waiting?.push(message);
  }
};
