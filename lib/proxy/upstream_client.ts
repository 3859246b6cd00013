import http from "node:http";
import https from "node:https";
import type { Buffer } from "node:buffer";
import type { BodyOutcome } from "../pipeline/types.ts";

/**
 * The HTTP client the proxy sends upstream requests with.
 *
 * Built on node:http rather than fetch because Deno's fetch decodes gzip and
 * br bodies whenever the request's Accept-Encoding is anything but
 * `identity`, while keeping Content-Encoding: a proxy on fetch cannot pass a
 * compressed body through byte for byte (platform notes, deno PR #35124).
 * node:http never decodes, reports ECONNREFUSED / ECONNRESET distinctly, and
 * pools keep-alive connections per origin.
 */

/** Why an upstream exchange failed before a response started. */
export type UpstreamFailure =
  | "refused"
  | "reset"
  | "timeout"
  | "dns"
  | "aborted"
  | "body_too_large";

/** An upstream exchange that failed before response headers arrived. */
export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  /** Whether any request body byte was handed to the connection. */
  readonly bodyStarted: boolean;
  /** Whether the request went out on a pooled (reused) connection. */
  readonly reusedConnection: boolean;

  constructor(
    kind: UpstreamFailure,
    message: string,
    options: { bodyStarted: boolean; reusedConnection: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "UpstreamError";
    this.kind = kind;
    this.bodyStarted = options.bodyStarted;
    this.reusedConnection = options.reusedConnection;
  }
}

/** One request to an upstream origin. */
export interface UpstreamRequest {
  /** Origin, e.g. `http://10.0.0.7:8080`. */
  readonly origin: string;
  readonly method: string;
  /** Encoded path plus query. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: ReadableStream<Uint8Array> | null;
  /** Aborts the exchange at any stage (client went away). */
  readonly signal: AbortSignal;
  /** No response headers by then: fail with `timeout`. */
  readonly headersTimeoutMs: number;
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
  /** Null for responses that have no body (HEAD, 204, 304). */
  readonly body: ReadableStream<Uint8Array> | null;
  /** Resolves when the body stops flowing, with how it ended. */
  readonly done: Promise<BodyOutcome>;
}

/** Sends requests upstream over pooled keep-alive connections. */
export class UpstreamClient {
  readonly #http: http.Agent;
  readonly #https: https.Agent;

  constructor(options: { maxSocketsPerOrigin?: number } = {}) {
    const agentOptions = { keepAlive: true, maxSockets: options.maxSocketsPerOrigin ?? 512 };
    this.#http = new http.Agent(agentOptions);
    this.#https = new https.Agent(agentOptions);
  }

  /** Sends `req`; resolves once response headers arrive, rejects with UpstreamError before that. */
  send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const url = new URL(req.origin);
    const secure = url.protocol === "https:";
    return new Promise<UpstreamResponse>((resolve, reject) => {
      let bodyStarted = false;
      let settled = false;
      let failure: UpstreamError | undefined;
      const outgoing = (secure ? https : http).request({
        agent: secure ? this.#https : this.#http,
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: url.port || (secure ? 443 : 80),
        method: req.method,
        path: req.path,
        // Host is the upstream's own (node:http sets it from hostname:port);
        // the client's Host travels as X-Forwarded-Host.
        headers: req.headers,
      });

      const fail = (kind: UpstreamFailure, message: string, cause?: unknown) => {
        if (settled) return;
        failure ??= new UpstreamError(kind, message, {
          bodyStarted,
          reusedConnection: outgoing.reusedSocket,
          cause,
        });
        outgoing.destroy(failure);
      };
      const timer = setTimeout(
        () => fail("timeout", `No response headers within ${req.headersTimeoutMs} ms`),
        req.headersTimeoutMs,
      );
      const onAbort = () => fail("aborted", "Client went away");
      req.signal.addEventListener("abort", onAbort, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        req.signal.removeEventListener("abort", onAbort);
      };

      outgoing.on("error", (error: NodeJS.ErrnoException) => {
        if (settled) return;
        cleanup();
        settled = true;
        reject(failure ?? classify(error, bodyStarted, outgoing.reusedSocket));
      });

      outgoing.on("response", (incoming: http.IncomingMessage) => {
        if (settled) {
          incoming.destroy();
          return;
        }
        settled = true;
        clearTimeout(timer);
        const noBody = req.method === "HEAD" || incoming.statusCode === 204 ||
          incoming.statusCode === 304;
        const { body, done } = noBody ? drained(incoming) : bridge(incoming);
        // From here on the client's abort cancels the body stream (Deno.serve
        // cancels it), so the abort listener must not destroy a socket that
        // may already be back in the pool serving another request.
        done.finally(() => req.signal.removeEventListener("abort", onAbort));
        resolve({
          status: incoming.statusCode ?? 502,
          rawHeaders: incoming.rawHeaders,
          body,
          done,
        });
      });

      if (req.signal.aborted) {
        fail("aborted", "Client went away");
        return;
      }
      if (req.body === null) {
        outgoing.end();
        return;
      }
      pump(req.body, outgoing, req, () => {
        bodyStarted = true;
      }).catch((error: unknown) => {
        if (error instanceof UpstreamError) fail(error.kind, error.message);
        else fail("aborted", "Request body could not be read", error);
      });
    });
  }

  /** Closes pooled connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

async function pump(
  body: ReadableStream<Uint8Array>,
  outgoing: http.ClientRequest,
  req: UpstreamRequest,
  started: () => void,
): Promise<void> {
  const reader = body.getReader();
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.byteLength;
      req.onBodyBytes?.(total);
      if (total > req.maxBodyBytes) {
        throw new UpstreamError(
          "body_too_large",
          `Request body is larger than ${req.maxBodyBytes} bytes`,
          { bodyStarted: true, reusedConnection: false },
        );
      }
      if (outgoing.destroyed) return;
      started();
      if (!outgoing.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            outgoing.off("drain", go);
            outgoing.off("close", go);
            resolve();
          };
          outgoing.on("drain", go);
          outgoing.on("close", go);
        });
      }
    }
    if (!outgoing.destroyed) outgoing.end();
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/**
 * Turns a node response into a web stream with backpressure, and reports how
 * it ended. A connection that dies mid-body errors the stream, so Deno.serve
 * aborts the client connection instead of ending a truncated body cleanly.
 */
function bridge(
  incoming: http.IncomingMessage,
): { body: ReadableStream<Uint8Array>; done: Promise<BodyOutcome> } {
  let bytes = 0;
  let finish!: (outcome: BodyOutcome) => void;
  const done = new Promise<BodyOutcome>((resolve) => finish = resolve);
  let ended = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      incoming.on("data", (chunk: Buffer) => {
        bytes += chunk.byteLength;
        controller.enqueue(chunk);
        if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
      });
      incoming.on("end", () => {
        if (ended) return;
        ended = true;
        controller.close();
        finish({ outcome: "complete", bytes });
      });
      const broken = () => {
        if (ended) return;
        ended = true;
        controller.error(new Error("Upstream connection closed before the response body ended"));
        finish({ outcome: "error", bytes });
      };
      incoming.on("aborted", broken);
      incoming.on("error", broken);
      incoming.on("close", () => {
        if (!incoming.complete) broken();
      });
    },
    pull() {
      incoming.resume();
    },
    cancel() {
      if (ended) return;
      ended = true;
      incoming.destroy();
      finish({ outcome: "cancelled", bytes });
    },
  }, { highWaterMark: 4 });
  return { body, done };
}

function drained(
  incoming: http.IncomingMessage,
): { body: null; done: Promise<BodyOutcome> } {
  incoming.resume();
  return {
    body: null,
    done: new Promise((resolve) => {
      incoming.on("end", () => resolve({ outcome: "complete", bytes: 0 }));
      incoming.on("close", () => resolve({ outcome: "complete", bytes: 0 }));
    }),
  };
}

function classify(
  error: NodeJS.ErrnoException,
  bodyStarted: boolean,
  reusedConnection: boolean,
): UpstreamError {
  const options = { bodyStarted, reusedConnection, cause: error };
  switch (error.code) {
    case "ECONNREFUSED":
      return new UpstreamError("refused", "connection refused", options);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new UpstreamError("dns", "host name not found", options);
    case "ETIMEDOUT":
      return new UpstreamError("timeout", "connect timed out", options);
    default:
      return new UpstreamError("reset", "connection reset before a response", options);
  }
}
