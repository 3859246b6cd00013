/**
 * A request body that can be sent again. It streams to the upstream as it
 * arrives (the proxy never waits for a whole body before sending), while
 * keeping a copy of the first `limit` bytes; as long as everything read so
 * far was kept, a failed attempt can be replayed on another endpoint.
 * That is what makes a rolling update lossless for POSTs too: a request
 * whose pooled connection a closing pod shut, before any response, goes to
 * another pod with the same bytes (Envoy buffers for retries the same way).
 */
export class ReplayableBody {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #limit: number;
  readonly #chunks: Uint8Array[] = [];
  #kept = 0;
  #complete = true;
  #done = false;
  #pending: Promise<Uint8Array | null> | undefined;

  constructor(source: ReadableStream<Uint8Array>, limit: number) {
    this.#reader = source.getReader();
    this.#limit = limit;
  }

  /** Whether every byte read from the client so far is kept, so a new stream replays the body whole. */
  get replayable(): boolean {
    return this.#complete;
  }

  /**
   * A stream of the whole body from its first byte: the kept bytes, then
   * the rest as the client sends it. Cancelling it (a failed attempt) leaves
   * the client's body alone for the next attempt.
   */
  stream(): ReadableStream<Uint8Array> {
    let index = 0;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          if (index < this.#chunks.length) {
            controller.enqueue(this.#chunks[index++]);
            return;
          }
          if (this.#done) {
            controller.close();
            return;
          }
          const kept = this.#chunks.length;
          const chunk = await this.#next();
          if (chunk === null) {
            controller.close();
            return;
          }
          // Kept: it is next in the list. Not kept (past the limit): this stream's alone.
          if (this.#chunks.length > kept) continue;
          controller.enqueue(chunk);
          return;
        }
      },
    }, { highWaterMark: 0 });
  }

  /** Reads the next chunk from the client, keeping it while within the limit; shared by concurrent pulls. */
  #next(): Promise<Uint8Array | null> {
    this.#pending ??= this.#reader.read().then(({ value, done }) => {
      this.#pending = undefined;
      if (done) {
        this.#done = true;
        return null;
      }
      if (this.#complete && this.#kept + value.byteLength <= this.#limit) {
        this.#kept += value.byteLength;
        this.#chunks.push(value);
      } else {
        this.#complete = false;
      }
      return value;
    }, (error) => {
      this.#pending = undefined;
      throw error;
    });
    return this.#pending;
  }
}
