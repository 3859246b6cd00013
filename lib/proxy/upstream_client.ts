import type { BodyOutcome } from "../pipeline/types.ts";
import { type Deadline, Deadlines } from "./deadlines.ts";
import {
  ascii,
  BufferedReader,
  chunkedBody,
  fixedBody,
  isFieldName,
  isFieldValue,
  parseResponseHead,
  ProtocolError,
  type ResponseHead,
  untilClose,
} from "./http1.ts";

/**
 * The HTTP/1.1 client the proxy sends upstream requests with, on Deno's raw
 * TCP (and TLS) connections, with keep-alive pooling per origin.
 *
 * Why not fetch: Deno's fetch decodes gzip and br bodies whenever the
 * request's Accept-Encoding is anything but `identity` while keeping
 * Content-Encoding, so a proxy on fetch cannot pass a compressed body
 * through byte for byte (platform notes, deno PR #35124). node:http keeps
 * the bytes but is slow under Deno. Measured on this machine as naive
 * proxies: fetch ~16,000 req/s, node:http ~12,700, this client ~32,000.
 */

/** Why an upstream exchange failed before a response started. */
export type UpstreamFailure =
  | "refused"
  | "reset"
  | "timeout"
  | "dns"
  | "aborted"
  | "body_too_large"
  | "protocol"
  | "denied"
  | "invalid_request";

/** An upstream exchange that failed before response headers arrived. */
export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  /** Whether any request body byte was read from the client to be sent. */
  readonly bodyStarted: boolean;
  /** Whether the request went out on a pooled (reused) connection. */
  readonly reusedConnection: boolean;
  /** Whether any byte of a response arrived on this exchange. */
  readonly responseStarted: boolean;

  constructor(
    kind: UpstreamFailure,
    message: string,
    options: {
      bodyStarted: boolean;
      reusedConnection: boolean;
      responseStarted?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "UpstreamError";
    this.kind = kind;
    this.bodyStarted = options.bodyStarted;
    this.reusedConnection = options.reusedConnection;
    this.responseStarted = options.responseStarted ?? false;
  }
}

/** One request to an upstream origin. */
export interface UpstreamRequest {
  /** Origin, e.g. `http://10.0.0.7:8080`. */
  readonly origin: string;
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

/** Pooling settings. */
export interface UpstreamClientOptions {
  /** Idle keep-alive connections kept per origin (default 256). */
  readonly maxIdlePerOrigin?: number;
  /**
   * Connections open at once per origin (default 1024). Requests beyond it
   * wait for one to come free (within their upstream timeout) instead of
   * opening thousands of sockets against one upstream.
   */
  readonly maxConnectionsPerOrigin?: number;
  /**
   * An idle connection older than this is closed rather than reused
   * (default 4 s: below the 5 s keep-alive timeout of Node and many
   * frameworks, so the upstream rarely closes one under us).
   */
  readonly idleTimeoutMs?: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const BODYLESS_METHODS_WITH_LENGTH = new Set(["POST", "PUT", "PATCH"]);

interface Connection {
  readonly conn: Deno.Conn;
  readonly reader: BufferedReader;
  idleSince: number;
  /** In the pool; any byte or EOF that arrives now closes it. */
  idle: boolean;
  closed: boolean;
  /** Frees the connection's slot in its origin's limit. */
  readonly onClose: () => void;
}

function closeConnection(connection: Connection): void {
  if (connection.closed) return;
  connection.closed = true;
  connection.idle = false;
  try {
    connection.conn.close();
  } catch {
    // already closed by the peer or by an abort
  }
  connection.onClose();
}

/** A request waiting for a connection to an origin at its limit. */
interface Waiter {
  /** A pooled connection handed over, or null: a slot is free, connect. */
  resolve(connection: Connection | null): void;
  cancelled: boolean;
}

/** Sends requests upstream over pooled keep-alive connections. */
export class UpstreamClient {
  readonly #idle = new Map<string, Connection[]>();
  readonly #maxIdle: number;
  readonly #maxConnections: number;
  readonly #open = new Map<string, number>();
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #idleTimeoutMs: number;
  readonly #sweeper: number;
  readonly #deadlines = new Deadlines();
  #closed = false;

  constructor(options: UpstreamClientOptions = {}) {
    this.#maxIdle = options.maxIdlePerOrigin ?? 256;
    this.#maxConnections = options.maxConnectionsPerOrigin ?? 1024;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 4000;
    this.#sweeper = setInterval(() => this.#sweep(), this.#idleTimeoutMs) as unknown as number;
    Deno.unrefTimer(this.#sweeper);
  }

  /** Sends `req`; resolves once response headers arrive, rejects with UpstreamError before that. */
  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const url = this.#parse(req.origin);
    // Refused before anything is sent: a header that would break the request head.
    const head = requestHead(req, url);
    let connection: Connection | undefined;
    let reused = false;
    let bodyStarted = false;
    let receivedBefore = 0;
    let failure: UpstreamError | undefined;
    let interrupt!: (error: UpstreamError) => void;
    // Settles only by failing: raced against connecting, which has no abort of its own.
    const interrupted = new Promise<never>((_, reject) => interrupt = reject);
    interrupted.catch(() => {});
    const responseStarted = () =>
      connection !== undefined && connection.reader.received > receivedBefore;
    const fail = (kind: UpstreamFailure, message: string) => {
      failure ??= new UpstreamError(kind, message, {
        bodyStarted,
        reusedConnection: reused,
        responseStarted: responseStarted(),
      });
      if (connection) closeConnection(connection);
      interrupt(failure);
    };
    const timeoutMs = req.headersTimeoutMs;
    let timer = this.#deadlines.add(
      timeoutMs,
      () => fail("timeout", `Could not connect and send the request within ${timeoutMs} ms`),
    );
    const awaitResponse = () => {
      this.#deadlines.cancel(timer);
      timer = this.#deadlines.add(
        timeoutMs,
        () => fail("timeout", `No response headers within ${timeoutMs} ms of sending the request`),
      );
    };
    const onAbort = () => fail("aborted", "Client went away");
    req.signal.addEventListener("abort", onAbort);
    let handedOver = false;
    try {
      if (req.signal.aborted) onAbort();
      connection = req.fresh ? undefined : this.#takeIdle(req.origin);
      reused = connection !== undefined;
      while (connection === undefined) {
        if ((this.#open.get(req.origin) ?? 0) < this.#maxConnections) {
          connection = await Promise.race([
            this.#connect(req.origin, url, () => !!failure),
            interrupted,
          ]);
        } else {
          const waiter: Waiter = { resolve: () => {}, cancelled: false };
          const handed = new Promise<Connection | null>((resolve) => waiter.resolve = resolve);
          this.#queue(req.origin).push(waiter);
          let served = false;
          try {
            const result = await Promise.race([handed, interrupted]);
            served = true;
            if (result !== null) {
              connection = result;
              reused = true;
            }
          } finally {
            waiter.cancelled = true;
            // Given up while being served: pass the connection (or the free slot) on.
            if (!served) {
              handed.then((late) =>
                late ? this.#release(req.origin, late) : this.#wake(req.origin, null)
              );
            }
          }
        }
      }
      if (failure) throw failure;
      const active = connection;
      receivedBefore = active.reader.received;

      let pump: Promise<void> | undefined;
      let pumpDone = req.body === null;
      if (req.body !== null) {
        await writeAll(active.conn, head);
        this.#deadlines.cancel(timer);
        const declared = req.headers["content-length"];
        pump = sendBody(active.conn, req.body, {
          length: declared === undefined ? undefined : Number(declared),
          max: req.maxBodyBytes,
          onBytes: (total) => {
            bodyStarted = true;
            req.onBodyBytes?.(total);
          },
          // An upstream that stops reading the body holds the request: bound each write.
          guard: (write) => {
            const stall = this.#deadlines.add(
              timeoutMs,
              () => fail("timeout", `Upstream read no request body for ${timeoutMs} ms`),
            );
            return write.finally(() => this.#deadlines.cancel(stall));
          },
        }).then(() => {
          pumpDone = true;
          if (!handedOver) awaitResponse();
        }, (error) => {
          if (error instanceof UpstreamError) fail(error.kind, error.message);
          else fail("reset", "Request body could not be sent");
          throw error;
        });
        pump.catch(() => {});
      } else {
        await writeAll(active.conn, head);
        awaitResponse();
      }

      let parsed: ResponseHead;
      for (;;) {
        const bytes = await active.reader.readHead(MAX_HEAD_BYTES);
        if (bytes === null) {
          throw new UpstreamError("reset", "connection closed before a response", {
            bodyStarted,
            reusedConnection: reused,
          });
        }
        parsed = parseResponseHead(bytes);
        if (parsed.status === 101) {
          throw new ProtocolError("Upstream switched protocols without being asked to");
        }
        // Interim responses (100 Continue, 103 Early Hints) are not forwarded.
        if (parsed.status >= 200) break;
      }
      if (failure) throw failure;
      this.#deadlines.cancel(timer);

      const noBody = req.method === "HEAD" || parsed.status === 204 || parsed.status === 304;
      // After HEAD the connection is closed, not pooled: a body the upstream
      // sends anyway (it may not know the request was HEAD) would otherwise
      // be read as the next client's response.
      const reusable = !parsed.connectionClose &&
        (noBody ? req.method !== "HEAD" : parsed.framing !== "close");
      const release = (clean: boolean) => {
        req.signal.removeEventListener("abort", onAbort);
        // Reuse only a connection whose exchange is over in both directions:
        // an upstream that answered before reading the whole request body
        // leaves the connection in an unknown state.
        if (clean && reusable && !failure && pumpDone) {
          this.#release(req.origin, active);
        } else {
          closeConnection(active);
        }
      };
      handedOver = true;
      if (noBody) {
        release(true);
        return {
          status: parsed.status,
          rawHeaders: parsed.rawHeaders,
          body: null,
          done: Promise.resolve({ outcome: "complete", bytes: 0 }),
        };
      }
      if (parsed.contentLength !== undefined && parsed.contentLength <= active.reader.buffered) {
        // The whole body came with the head (typical for small JSON answers):
        // hand it over as bytes, no stream machinery, connection back at once.
        const bytes = active.reader.takeBuffered(parsed.contentLength);
        release(true);
        return {
          status: parsed.status,
          rawHeaders: parsed.rawHeaders,
          body: bytes,
          done: Promise.resolve({ outcome: "complete", bytes: bytes.byteLength }),
        };
      }
      const chunks = parsed.framing === "chunked"
        ? chunkedBody(active.reader)
        : parsed.framing === "length"
        ? fixedBody(active.reader, parsed.contentLength!)
        : untilClose(active.reader);
      const bodyTimeoutMs = req.bodyTimeoutMs ?? timeoutMs;
      let stalled = false;
      const { body, done } = bodyStream(chunks, {
        release,
        // No body byte for bodyTimeoutMs: close the connection, which fails the pending read.
        awaitChunk: () =>
          this.#deadlines.add(bodyTimeoutMs, () => {
            stalled = true;
            closeConnection(active);
          }),
        chunkArrived: (deadline) => this.#deadlines.cancel(deadline),
        stalled: () => stalled ? `Upstream sent no body byte for ${bodyTimeoutMs} ms` : undefined,
      });
      return { status: parsed.status, rawHeaders: parsed.rawHeaders, body, done };
    } catch (error) {
      this.#deadlines.cancel(timer);
      req.signal.removeEventListener("abort", onAbort);
      if (connection) closeConnection(connection);
      if (failure) throw failure;
      throw classify(error, {
        bodyStarted,
        reusedConnection: reused,
        responseStarted: responseStarted(),
      });
    } finally {
      if (!handedOver) this.#deadlines.cancel(timer);
    }
  }

  /** Closes pooled connections; later sends still work but open new ones. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#deadlines.close();
    for (const connections of this.#idle.values()) connections.forEach(closeConnection);
    this.#idle.clear();
  }

  #origins = new Map<string, Origin>();

  #parse(origin: string): Origin {
    let parsed = this.#origins.get(origin);
    if (parsed === undefined) {
      const url = new URL(origin);
      const secure = url.protocol === "https:";
      parsed = {
        host: url.host,
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: Number(url.port || (secure ? 443 : 80)),
        secure,
      };
      if (this.#origins.size > 10_000) this.#origins.clear();
      this.#origins.set(origin, parsed);
    }
    return parsed;
  }

  /** Opens a connection, counted in the origin's limit until it closes. */
  async #connect(origin: string, url: Origin, abandoned: () => boolean): Promise<Connection> {
    this.#open.set(origin, (this.#open.get(origin) ?? 0) + 1);
    let conn: Deno.Conn;
    try {
      conn = await connect(url);
    } catch (error) {
      this.#freeSlot(origin);
      throw error;
    }
    let freed = false;
    const connection: Connection = {
      conn,
      reader: new BufferedReader(conn),
      idleSince: 0,
      idle: false,
      closed: false,
      onClose: () => {
        if (freed) return;
        freed = true;
        this.#freeSlot(origin);
      },
    };
    // The request gave up (timeout, client gone) while this was connecting.
    if (abandoned()) closeConnection(connection);
    return connection;
  }

  #freeSlot(origin: string): void {
    const left = (this.#open.get(origin) ?? 1) - 1;
    if (left <= 0) this.#open.delete(origin);
    else this.#open.set(origin, left);
    this.#wake(origin, null);
  }

  #queue(origin: string): Waiter[] {
    let queue = this.#waiters.get(origin);
    if (queue === undefined) {
      queue = [];
      this.#waiters.set(origin, queue);
    }
    return queue;
  }

  /** Hands a connection (or a free slot, null) to the longest-waiting request; false if none waits. */
  #wake(origin: string, connection: Connection | null): boolean {
    const queue = this.#waiters.get(origin);
    while (queue && queue.length > 0) {
      const waiter = queue.shift()!;
      if (waiter.cancelled) continue;
      waiter.cancelled = true;
      waiter.resolve(connection);
      if (queue.length === 0) this.#waiters.delete(origin);
      return true;
    }
    this.#waiters.delete(origin);
    return false;
  }

  #takeIdle(origin: string): Connection | undefined {
    const stack = this.#idle.get(origin);
    const now = performance.now();
    while (stack && stack.length > 0) {
      const connection = stack.pop()!;
      if (now - connection.idleSince < this.#idleTimeoutMs && !connection.closed) {
        connection.idle = false;
        return connection;
      }
      closeConnection(connection);
    }
    return undefined;
  }

  #release(origin: string, connection: Connection): void {
    // Bytes after the body mean the upstream broke framing: never reuse that.
    if (this.#closed || connection.closed || connection.reader.buffered > 0) {
      closeConnection(connection);
      return;
    }
    // A request waiting for a connection gets this one at once.
    if (this.#wake(origin, connection)) return;
    let stack = this.#idle.get(origin);
    if (stack === undefined) {
      stack = [];
      this.#idle.set(origin, stack);
    }
    if (stack.length >= this.#maxIdle) {
      closeConnection(connection);
      return;
    }
    connection.idleSince = performance.now();
    connection.idle = true;
    stack.push(connection);
    // Watched while idle: whatever arrives now (a late body, a second
    // response, a close) answers no request, so the connection is closed
    // before any request can read it as its own response.
    connection.reader.watch().then(
      () => {
        if (connection.idle) closeConnection(connection);
      },
      () => closeConnection(connection),
    );
  }

  #sweep(): void {
    const now = performance.now();
    for (const [origin, stack] of this.#idle) {
      const keep = stack.filter((c) => now - c.idleSince < this.#idleTimeoutMs && !c.closed);
      stack.filter((c) => !keep.includes(c)).forEach(closeConnection);
      if (keep.length === 0) this.#idle.delete(origin);
      else this.#idle.set(origin, keep);
    }
  }
}

/** An upstream origin, parsed once. */
interface Origin {
  /** `host:port` as the Host header wants it. */
  readonly host: string;
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
}

async function connect(origin: Origin): Promise<Deno.Conn> {
  const { hostname, port } = origin;
  if (origin.secure) return await Deno.connectTls({ hostname, port });
  const conn = await Deno.connect({ hostname, port });
  // A request head and its body go out in separate writes: without this,
  // Nagle's algorithm and the peer's delayed ACK hold the body back ~40 ms.
  conn.setNoDelay(true);
  return conn;
}

/**
 * The request head, refusing (UpstreamError `invalid_request`, nothing
 * written) any method, target, header name or value that is not valid
 * HTTP/1.1 syntax, whatever its source: a JWT claim, a plugin, the config
 * or the client. A CR or LF in a value would otherwise start a header or a
 * whole request of the sender's choosing.
 */
function requestHead(req: UpstreamRequest, url: Origin): Uint8Array {
  if (!isFieldName(req.method) || !isRequestTarget(req.path)) {
    throw invalidRequest("The request method or target is not valid HTTP/1.1 syntax");
  }
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  let hasLength = false;
  for (const name in req.headers) {
    if (name === "host" || name === "transfer-encoding") continue;
    if (name === "content-length") {
      if (req.body === null) continue;
      hasLength = true;
    }
    const value = req.headers[name];
    if (!isFieldName(name)) throw invalidRequest("A header name is not a valid HTTP token");
    if (!isFieldValue(value)) {
      throw invalidRequest(`Header "${name}" has a value that is not valid HTTP field syntax`);
    }
    head += `${name}: ${value}\r\n`;
  }
  if (req.body !== null && !hasLength) head += "transfer-encoding: chunked\r\n";
  if (req.body === null && BODYLESS_METHODS_WITH_LENGTH.has(req.method)) {
    head += "content-length: 0\r\n";
  }
  return ascii(head + "\r\n");
}

function invalidRequest(message: string): UpstreamError {
  return new UpstreamError("invalid_request", message, {
    bodyStarted: false,
    reusedConnection: false,
  });
}

/** An origin-form target: visible ASCII only (RFC 9112 3.2). */
function isRequestTarget(target: string): boolean {
  if (target.length === 0 || target.charCodeAt(0) !== 0x2f) return false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let rest = bytes;
  while (rest.byteLength > 0) rest = rest.subarray(await conn.write(rest));
}

const CRLF = ascii("\r\n");
const LAST_CHUNK = ascii("0\r\n\r\n");

/**
 * Writes the body as it arrives (the head is already sent, so an upstream
 * can answer or refuse before the body is complete): raw when its length is
 * declared, chunked otherwise. A body longer or shorter than declared is an
 * error, never written on: the upstream would read the rest as a request.
 */
async function sendBody(
  conn: Deno.Conn,
  body: ReadableStream<Uint8Array>,
  options: {
    length: number | undefined;
    max: number;
    onBytes: (total: number) => void;
    guard: (write: Promise<void>) => Promise<void>;
  },
): Promise<void> {
  const reader = body.getReader();
  const { length, guard } = options;
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (value.byteLength === 0) continue;
      total += value.byteLength;
      options.onBytes(total);
      if (total > options.max) {
        throw new UpstreamError(
          "body_too_large",
          `Request body is larger than ${options.max} bytes`,
          { bodyStarted: true, reusedConnection: false },
        );
      }
      if (length !== undefined && total > length) {
        throw new UpstreamError("reset", "Request body is longer than its Content-Length", {
          bodyStarted: true,
          reusedConnection: false,
        });
      }
      if (length === undefined) {
        await guard(writeAll(conn, ascii(value.byteLength.toString(16) + "\r\n")));
        await guard(writeAll(conn, value));
        await guard(writeAll(conn, CRLF));
      } else {
        await guard(writeAll(conn, value));
      }
    }
    if (length !== undefined && total !== length) {
      throw new UpstreamError("reset", "Request body ended before its Content-Length", {
        bodyStarted: total > 0,
        reusedConnection: false,
      });
    }
    if (length === undefined) await guard(writeAll(conn, LAST_CHUNK));
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/** How a body stream releases its connection and bounds the wait for each chunk. */
interface BodyControl {
  release(clean: boolean): void;
  /** Arms the body idle deadline before a read. */
  awaitChunk(): Deadline;
  /** Disarms it once bytes (or the end) arrived. */
  chunkArrived(deadline: Deadline): void;
  /** Why the body failed, when its idle deadline fired. */
  stalled(): string | undefined;
}

/**
 * A web stream over the body generator, pulled only as fast as the client
 * reads (so a slow client never trips the idle deadline). An upstream that
 * dies or stalls mid-body errors the stream, so Deno.serve aborts the client
 * connection instead of ending a truncated body cleanly.
 */
function bodyStream(
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
      const deadline = control.awaitChunk();
      try {
        const next = await chunks.next();
        control.chunkArrived(deadline);
        if (next.done) {
          controller.close();
          end("complete");
          return;
        }
        bytes += next.value.byteLength;
        controller.enqueue(next.value);
      } catch (error) {
        control.chunkArrived(deadline);
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

function classify(
  error: unknown,
  options: { bodyStarted: boolean; reusedConnection: boolean; responseStarted: boolean },
): UpstreamError {
  if (error instanceof UpstreamError) return error;
  const withCause = { ...options, cause: error };
  if (error instanceof ProtocolError) {
    return new UpstreamError("protocol", error.message, withCause);
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new UpstreamError("refused", "connection refused", withCause);
  }
  if (error instanceof Deno.errors.TimedOut) {
    return new UpstreamError("timeout", "connect timed out", withCause);
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return new UpstreamError(
      "denied",
      "connection not permitted by the gateway's --allow-net permission",
      withCause,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.NotFound || /lookup|resolve|dns/i.test(message)) {
    return new UpstreamError("dns", "host name not found", withCause);
  }
  return new UpstreamError("reset", "connection reset before a response", withCause);
}
