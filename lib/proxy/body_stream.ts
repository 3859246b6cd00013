/** The response body as a web stream, pulled as the client reads, bounded per chunk. */
import type { BodyOutcome } from "../pipeline/types.ts";
import { ProtocolError } from "./http1.ts";

/** How a body stream releases its connection and bounds the wait for each chunk. */
export interface BodyControl {
  release(clean: boolean): void;
  /** Arms the body idle deadline before a read. */
  awaitChunk(): void;
  /** Disarms it once bytes (or the end) arrived. */
  chunkArrived(): void;
  /** Why the body failed, when its idle deadline fired. */
  stalled(): string | undefined;
}

/**
 * A web stream over the body generator, pulled only as fast as the client
 * reads (so a slow client never trips the idle deadline). An upstream that
 * dies or stalls mid-body errors the stream, so Deno.serve aborts the client
 * connection instead of ending a truncated body cleanly.
 */
export function bodyStream(
  chunks: AsyncGenerator<Uint8Array>,
  control: BodyControl,
): { body: ReadableStream<Uint8Array>; done: Promise<BodyOutcome> } {
  let bytes = 0;
  let finish!: (outcome: BodyOutcome) => void;
  const done = new Promise<BodyOutcome>((resolve) => finish = resolve);
  let ended = false;
  const end = (outcome: BodyOutcome["outcome"]) => {
    if (ended) return false;
    ended = true;
    control.release(outcome === "complete");
    finish({ outcome, bytes });
    return true;
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      control.awaitChunk();
      try {
        const next = await chunks.next();
        control.chunkArrived();
        if (next.done) {
          controller.close();
          end("complete");
          return;
        }
        bytes += next.value.byteLength;
        controller.enqueue(next.value);
      } catch (error) {
        control.chunkArrived();
        if (end("error")) {
          const stalled = control.stalled();
          controller.error(
            stalled !== undefined
              ? new ProtocolError(stalled)
              : error instanceof ProtocolError
              ? error
              : new ProtocolError("Upstream connection failed before the response body ended"),
          );
        }
      }
    },
    cancel() {
      end("cancelled");
    },
  }, { highWaterMark: 0 });
  return { body, done };
}
