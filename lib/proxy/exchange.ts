/**
 * One request and its response on one upstream connection: the request
 * head and body written under their deadlines, the response head read, the
 * decision whether the connection may be reused and how the body is framed,
 * and the body streamed under its idle deadline.
 */
import type { BodyOutcome } from "../pipeline/types.ts";
import { type BodyControl, bodyStream } from "./body_stream.ts";
import type { Deadline, Deadlines } from "./deadlines.ts";
import { ascii, parseResponseHead, ProtocolError, type ResponseHead } from "./http1.ts";
import { chunkedBody, fixedBody, untilClose } from "./http1_body.ts";
import type { Claim, Connection, ConnectionPool } from "./pool.ts";
import { classify, UpstreamError, type UpstreamFailure } from "./upstream_error.ts";

/** One request to an upstream origin. */
export interface UpstreamRequest {
  /** Origin, e.g. `http://10.0.0.7:8080`. */
  readonly origin: string;
  /** The Host header; absent: the origin's host:port. */
  readonly host?: string;
  readonly method: string;
  /** Encoded path plus query. */
  readonly path: string;
  /** Lower-case names; hop-by-hop headers already removed. Host is set here. */
  readonly headers: Record<string, string>;
  readonly body: ReadableStream<Uint8Array> | null;
  /** Aborts the exchange at any stage (client went away). */
  readonly signal: AbortSignal;
  /**
   * No connection and request head written by then, or no response headers
   * this long after the request (head and body) was sent: fail with
   * `timeout`. The time a client takes to upload its body does not count.
   */
  readonly headersTimeoutMs: number;
  /** No response body byte for this long aborts the body (default: headersTimeoutMs). */
  readonly bodyTimeoutMs?: number;
  /** Open a new connection instead of reusing a pooled one. */
  readonly fresh?: boolean;
  /** PEM CA certificates an https origin is verified against (`ca_file`); undefined: the system roots. */
  readonly caCerts?: readonly string[];
  /** Fail with `body_too_large` once the request body exceeds this. */
  readonly maxBodyBytes: number;
  /** Called with the running total of request body bytes sent. */
  readonly onBodyBytes?: (total: number) => void;
}

/** An upstream response whose body streams as it arrives. */
export interface UpstreamResponse {
  readonly status: number;
  /** Raw header pairs, names as sent: `[name, value, name, value, ...]`. */
  readonly rawHeaders: readonly string[];
  /**
   * Null for responses that have no body (HEAD, 204, 304); the bytes
   * themselves when the whole body arrived together with the head.
   */
  readonly body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null;
  /** Resolves when the body stops flowing, with how it ended. */
  readonly done: Promise<BodyOutcome>;
}

const MAX_HEAD_BYTES = 64 * 1024;
const CRLF = ascii("\r\n");
const LAST_CHUNK = ascii("0\r\n\r\n");
/** How every bodyless response ends (one promise for all: it is settled and its value frozen). */
const COMPLETE_EMPTY: Promise<BodyOutcome> = Promise.resolve(
  Object.freeze({ outcome: "complete", bytes: 0 }),
);

/** The client's long-lived parts an exchange works with. */
export interface ExchangeParts {
  readonly pool: ConnectionPool;
  readonly deadlines: Deadlines;
}

/** What the exchange's one deadline bounds right now. */
type Phase = "connect" | "response" | "body";

function ignore(): void {}

/**
 * The state of one exchange, from before its connection is acquired until
 * its response body ends. It is its own deadline (connecting and sending,
 * then waiting for response headers, then each body chunk: one at a time),
 * its own abort listener and its own body control, so a request allocates
 * no closure for any of them.
 */
export class Exchange implements Claim, BodyControl, Deadline {
  /** When the current phase's deadline passes (see Deadline). */
  at = 0;
  readonly #req: UpstreamRequest;
  readonly #deadlines: Deadlines;
  readonly #pool: ConnectionPool;
  #phase: Phase = "connect";
  #connection: Connection | undefined;
  #reused = false;
  #bodyStarted = false;
  /** The connection's received count when this exchange took it. */
  #receivedBefore = 0;
  #failure: UpstreamError | undefined;
  #interrupted: Promise<never> | undefined;
  #interrupt: ((error: UpstreamError) => void) | undefined;
  /** The request body went out whole (or there is none). */
  #bodySent: boolean;
  /** Response headers arrived or the send failed: the response wait is over. */
  #settled = false;
  #reusable = false;
  #stalled = false;
  #writeStall: Deadline | undefined;
  /** The connection went back to the pool or was closed after the response. */
  #released = false;

  constructor(req: UpstreamRequest, parts: ExchangeParts) {
    this.#req = req;
    this.#deadlines = parts.deadlines;
    this.#pool = parts.pool;
    this.#bodySent = req.body === null;
    this.#deadlines.arm(this, req.headersTimeoutMs);
    req.signal.addEventListener("abort", this);
    if (req.signal.aborted) this.handleEvent();
  }

  /** The request's signal aborted: the client went away. */
  handleEvent(): void {
    // Released: the connection may already carry another client's exchange.
    if (this.#released) return;
    this.#fail("aborted", "Client went away");
  }

  /** The current phase's deadline passed. */
  fire(): void {
    const timeoutMs = this.#req.headersTimeoutMs;
    if (this.#phase === "connect") {
      this.#fail("timeout", `Could not connect and send the request within ${timeoutMs} ms`);
    } else if (this.#phase === "response") {
      this.#fail("timeout", `No response headers within ${timeoutMs} ms of sending the request`);
    } else {
      // No body byte for bodyTimeoutMs: close the connection, which fails the pending read.
      this.#stalled = true;
      this.#connection!.close();
    }
  }

  /** The exchange failed (see Claim). */
  get abandoned(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Settles only by failing: raced against connecting, which has no abort
   * of its own, and against waiting for a connection. Made only when asked
   * for: a request that reuses an idle connection races against nothing.
   */
  get interrupted(): Promise<never> {
    if (this.#interrupted === undefined) {
      const interrupted = new Promise<never>((_, reject) => this.#interrupt = reject);
      interrupted.catch(ignore);
      this.#interrupted = interrupted;
      if (this.#failure) this.#interrupt!(this.#failure);
    }
    return this.#interrupted;
  }

  /** Takes `connection` for this exchange; throws if the exchange already failed. */
  use(connection: Connection): void {
    this.#connection = connection;
    this.#reused = connection.exchanges++ > 0;
    if (this.#failure) throw this.#failure;
    this.#receivedBefore = connection.reader.received;
  }

  /**
   * Writes the head, then starts the body (if any) without waiting for it:
   * an upstream can answer or refuse before the body is complete.
   */
  async writeRequest(head: Uint8Array): Promise<void> {
    const conn = this.#connection!.conn;
    let rest = head;
    while (rest.byteLength > 0) rest = rest.subarray(await conn.write(rest));
    const body = this.#req.body;
    if (body === null) {
      this.#awaitResponse();
    } else {
      // The time a client takes to upload its body does not count.
      this.#deadlines.cancel(this);
      this.#sendBody(body);
    }
  }

  /** The final response head; interim responses (1xx) are skipped. */
  async readHead(): Promise<ResponseHead> {
    const reader = this.#connection!.reader;
    for (;;) {
      const bytes = await reader.readHead(MAX_HEAD_BYTES);
      if (bytes === null) {
        throw new UpstreamError("reset", "connection closed before a response", {
          bodyStarted: this.#bodyStarted,
          reusedConnection: this.#reused,
        });
      }
      const parsed = parseResponseHead(bytes);
      if (parsed.status === 101) {
        throw new ProtocolError("Upstream switched protocols without being asked to");
      }
      // Interim responses (100 Continue, 103 Early Hints) are not forwarded.
      if (parsed.status >= 200) return parsed;
    }
  }

  /**
   * The response for `head`: decides whether the connection can be reused
   * and how the body is framed. From here the body owns the connection.
   */
  respond(head: ResponseHead): UpstreamResponse {
    if (this.#failure) throw this.#failure;
    this.#deadlines.cancel(this);
    this.#settled = true;
    const method = this.#req.method;
    const connection = this.#connection!;
    const { status, rawHeaders } = head;
    const noBody = method === "HEAD" || status === 204 || status === 304;
    // After HEAD the connection is closed, not pooled: a body the upstream
    // sends anyway (it may not know the request was HEAD) would otherwise
    // be read as the next client's response.
    this.#reusable = !head.connectionClose &&
      (noBody ? method !== "HEAD" : head.framing !== "close");
    if (noBody) {
      this.release(true);
      return { status, rawHeaders, body: null, done: COMPLETE_EMPTY };
    }
    const reader = connection.reader;
    if (head.contentLength !== undefined && head.contentLength <= reader.buffered) {
      // The whole body came with the head (typical for small JSON answers):
      // hand it over as bytes, no stream machinery, connection back at once.
      const bytes = reader.takeBuffered(head.contentLength);
      this.release(true);
      return {
        status,
        rawHeaders,
        body: bytes,
        done: Promise.resolve({ outcome: "complete", bytes: bytes.byteLength }),
      };
    }
    const chunks = head.framing === "chunked"
      ? chunkedBody(reader)
      : head.framing === "length"
      ? fixedBody(reader, head.contentLength!)
      : untilClose(reader);
    this.#phase = "body";
    const { body, done } = bodyStream(chunks, this);
    return { status, rawHeaders, body, done };
  }

  /**
   * Ends the exchange after a failure before the response: closes the
   * connection and says why, as the error to reject the send with.
   */
  failed(error: unknown): UpstreamError {
    this.#settled = true;
    this.#deadlines.cancel(this);
    this.#req.signal.removeEventListener("abort", this);
    this.#connection?.close();
    return this.#failure ?? classify(error, {
      bodyStarted: this.#bodyStarted,
      reusedConnection: this.#reused,
      responseStarted: this.#responseStarted(),
    });
  }

  /** The response ended, cleanly or not: pools or closes the connection (see BodyControl). */
  release(clean: boolean): void {
    const connection = this.#connection!;
    // The abort listener is not removed (removing costs a few tenths of a
    // microsecond per request; the signal goes away with its request): from
    // here on it does nothing.
    this.#released = true;
    // Reuse only a connection whose exchange is over in both directions:
    // an upstream that answered before reading the whole request body
    // leaves the connection in an unknown state.
    if (clean && this.#reusable && !this.#failure && this.#bodySent) {
      this.#pool.release(connection);
    } else {
      connection.close();
    }
  }

  /** See BodyControl. */
  awaitChunk(): void {
    this.#deadlines.arm(this, this.#req.bodyTimeoutMs ?? this.#req.headersTimeoutMs);
  }

  /** See BodyControl. */
  chunkArrived(): void {
    this.#deadlines.cancel(this);
  }

  /** See BodyControl. */
  stalled(): string | undefined {
    if (!this.#stalled) return undefined;
    return `Upstream sent no body byte for ${
      this.#req.bodyTimeoutMs ?? this.#req.headersTimeoutMs
    } ms`;
  }

  #awaitResponse(): void {
    this.#phase = "response";
    this.#deadlines.arm(this, this.#req.headersTimeoutMs);
  }

  #responseStarted(): boolean {
    return this.#connection !== undefined &&
      this.#connection.reader.received > this.#receivedBefore;
  }

  #fail(kind: UpstreamFailure, message: string): void {
    this.#failure ??= new UpstreamError(kind, message, {
      bodyStarted: this.#bodyStarted,
      reusedConnection: this.#reused,
      responseStarted: this.#responseStarted(),
    });
    this.#connection?.close();
    this.#interrupt?.(this.#failure);
  }

  /**
   * Writes the body as it arrives: raw when its length is declared, chunked
   * otherwise. A body longer or shorter than declared is an error, never
   * written on: the upstream would read the rest as a request. Never
   * rejects: a failure fails the exchange.
   */
  async #sendBody(body: ReadableStream<Uint8Array>): Promise<void> {
    const declared = this.#req.headers["content-length"];
    const length = declared === undefined ? undefined : Number(declared);
    const max = this.#req.maxBodyBytes;
    const reader = body.getReader();
    let total = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value.byteLength === 0) continue;
        total += value.byteLength;
        this.#bodyStarted = true;
        this.#req.onBodyBytes?.(total);
        if (total > max) {
          throw new UpstreamError("body_too_large", `Request body is larger than ${max} bytes`, {
            bodyStarted: true,
            reusedConnection: false,
          });
        }
        if (length !== undefined && total > length) {
          throw new UpstreamError("reset", "Request body is longer than its Content-Length", {
            bodyStarted: true,
            reusedConnection: false,
          });
        }
        if (length === undefined) {
          await this.#write(ascii(value.byteLength.toString(16) + "\r\n"));
          await this.#write(value);
          await this.#write(CRLF);
        } else {
          await this.#write(value);
        }
      }
      if (length !== undefined && total !== length) {
        throw new UpstreamError("reset", "Request body ended before its Content-Length", {
          bodyStarted: total > 0,
          reusedConnection: false,
        });
      }
      if (length === undefined) await this.#write(LAST_CHUNK);
    } catch (error) {
      reader.cancel(error).catch(ignore);
      if (error instanceof UpstreamError) this.#fail(error.kind, error.message);
      else this.#fail("reset", "Request body could not be sent");
      return;
    }
    this.#bodySent = true;
    if (!this.#settled) this.#awaitResponse();
  }

  /** Writes all of `bytes` of the body. */
  async #write(bytes: Uint8Array): Promise<void> {
    // An upstream that stops reading the body holds the request: bound each write.
    const stall = this.#writeStall ??= {
      at: 0,
      fire: () => {
        this.#fail("timeout", `Upstream read no request body for ${this.#req.headersTimeoutMs} ms`);
      },
    };
    this.#deadlines.arm(stall, this.#req.headersTimeoutMs);
    try {
      const conn = this.#connection!.conn;
      let rest = bytes;
      while (rest.byteLength > 0) rest = rest.subarray(await conn.write(rest));
    } finally {
      this.#deadlines.cancel(stall);
    }
  }
}
