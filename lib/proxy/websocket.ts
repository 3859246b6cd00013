import { GatewayError } from "../pipeline/errors.ts";
import type { BodyOutcome, RequestContext } from "../pipeline/types.ts";

/** True for a request asking to switch to the WebSocket protocol. */
export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** What proxying a WebSocket needs from the proxy. */
export interface WebSocketProxyOptions {
  /** Origin of the chosen endpoint, e.g. `http://10.0.0.7:8080`. */
  readonly origin: string;
  /** Encoded path plus query, as for HTTP. */
  readonly path: string;
  /** Headers for the upstream handshake (hop-by-hop removed, X-Forwarded-* set). */
  readonly headers: Record<string, string>;
  /** No upstream handshake by then: 504. */
  readonly handshakeTimeoutMs: number;
  /**
   * Bytes allowed to queue towards one side before the session is closed
   * with 1013 (default 16 MiB). The WebSocket API cannot pause reading, so
   * this bound is the only backpressure there is.
   */
  readonly maxBufferedBytes?: number;
}

/** Default for {@linkcode WebSocketProxyOptions.maxBufferedBytes}. */
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/**
 * Bridges a WebSocket: opens one to the upstream first, and only once the
 * upstream accepted accepts the client's upgrade (so a refusal is still an
 * HTTP error: 502, or 504 after `handshakeTimeoutMs`). Then passes text and
 * binary messages both ways unchanged, and a close on either side closes the
 * other with the same code where the API lets it be sent.
 */
export async function proxyWebSocket(
  ctx: RequestContext,
  options: WebSocketProxyOptions,
): Promise<Response> {
  const request = ctx.request;
  checkUpgrade(request);
  const protocols = requestedProtocols(request.headers.get("sec-websocket-protocol"));
  const upstream = await openUpstream({
    url: webSocketUrl(options.origin, options.path),
    protocols,
    headers: handshakeHeaders(options.headers),
    timeoutMs: options.handshakeTimeoutMs,
    signal: request.signal,
  });

  let client: WebSocket;
  let response: Response;
  try {
    // Answer with what the upstream chose: the client asked for it, so it is one it offered.
    ({ socket: client, response } = Deno.upgradeWebSocket(
      request,
      upstream.socket.protocol ? { protocol: upstream.socket.protocol } : {},
    ));
  } catch (error) {
    closeQuietly(upstream.socket, 1000);
    throw new GatewayError(400, "bad_request", "Invalid WebSocket upgrade request", {
      cause: error,
    });
  }
  response.headers.set("x-request-id", ctx.requestId);
  ctx.bodyDone = bridge(client, upstream, {
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
    onBytesIn: (bytes) => ctx.bytesIn += bytes,
  });
  return response;
}

/**
 * Rejects what Deno.upgradeWebSocket would reject, before any upstream
 * connection is opened for it.
 */
function checkUpgrade(request: Request): void {
  const headers = request.headers;
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  const valid = request.method === "GET" &&
    connection.split(",").some((token) => token.trim() === "upgrade") &&
    headers.get("sec-websocket-key") !== null &&
    headers.get("sec-websocket-version") === "13";
  if (!valid) throw new GatewayError(400, "bad_request", "Invalid WebSocket upgrade request");
}

function requestedProtocols(header: string | null): string[] {
  if (header === null) return [];
  return header.split(",").map((token) => token.trim()).filter((token) => token !== "");
}

/** `http://host:port` + path to `ws://host:port/path` (https to wss). */
function webSocketUrl(origin: string, path: string): string {
  if (origin.startsWith("https://")) return "wss://" + origin.slice(8) + path;
  if (origin.startsWith("http://")) return "ws://" + origin.slice(7) + path;
  return origin + path;
}

/**
 * The WebSocket client writes its own handshake (key, version, protocols,
 * Host); the client's extensions are dropped because Deno's client could not
 * speak what the upstream might agree to (e.g. permessage-deflate).
 */
const OWN_HANDSHAKE = new Set([
  "host",
  "upgrade",
  "connection",
  "content-length",
  "transfer-encoding",
]);

function handshakeHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (OWN_HANDSHAKE.has(lower) || lower.startsWith("sec-websocket-")) continue;
    out[lower] = value;
  }
  return out;
}

/** An open upstream socket plus the messages it received before the bridge took over. */
interface OpenUpstream {
  readonly socket: WebSocket;
  readonly early: (string | ArrayBuffer)[];
}

function openUpstream(target: {
  url: string;
  protocols: string[];
  headers: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
}): Promise<OpenUpstream> {
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      // `headers` is a Deno extension to the constructor (verified on 2.9.6).
      socket = new WebSocket(target.url, {
        protocols: target.protocols,
        headers: target.headers,
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "SyntaxError") {
        reject(
          new GatewayError(400, "bad_request", `Invalid WebSocket request: ${error.message}`, {
            cause: error,
          }),
        );
      } else {
        reject(
          new GatewayError(502, "bad_gateway", `Cannot open WebSocket to upstream: ${error}`, {
            cause: error,
          }),
        );
      }
      return;
    }
    socket.binaryType = "arraybuffer";
    // Queued from the start: the upstream may speak first, before the client is upgraded.
    const early: (string | ArrayBuffer)[] = [];
    socket.onmessage = (event) => early.push(event.data);

    let failure: GatewayError | undefined;
    let reason = "connection failed";
    const fail = (error: GatewayError) => {
      failure ??= error;
      closeQuietly(socket, 1000);
    };
    const timer = setTimeout(() => {
      fail(
        new GatewayError(
          504,
          "upstream_timeout",
          `Upstream WebSocket handshake took longer than ${target.timeoutMs} ms`,
        ),
      );
    }, target.timeoutMs);
    const onAbort = () => {
      fail(new GatewayError(499, "client_closed_request", "Client closed the request"));
    };
    target.signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => {
      clearTimeout(timer);
      target.signal.removeEventListener("abort", onAbort);
      socket.onopen = null;
      socket.onerror = null;
    };

    socket.onerror = (event) => {
      if (event instanceof ErrorEvent && event.message) reason = event.message;
    };
    socket.onopen = () => {
      settle();
      socket.onclose = null;
      resolve({ socket, early });
    };
    socket.onclose = () => {
      settle();
      reject(
        failure ??
          new GatewayError(502, "bad_gateway", `Cannot open WebSocket to upstream: ${reason}`),
      );
    };
    if (target.signal.aborted) onAbort();
  });
}

type Message = string | ArrayBuffer;

/** Close codes the WebSocket client API lets an endpoint send (WHATWG: 1000 or 3000-4999). */
function clientMaySend(code: number): boolean {
  return code === 1000 || (code >= 3000 && code <= 4999);
}

/** True for a close that did not come from a close frame (Deno reports 0, browsers 1006). */
function abnormal(code: number): boolean {
  return code === 0 || code === 1006 || code === 1015;
}

/**
 * Runs the session and resolves when both sides are closed, with the bytes
 * sent to the client, for the access log.
 */
function bridge(
  client: WebSocket,
  upstream: OpenUpstream,
  options: { maxBufferedBytes: number; onBytesIn: (bytes: number) => void },
): Promise<BodyOutcome> {
  const server = upstream.socket;
  client.binaryType = "arraybuffer";
  let bytesOut = 0;
  let outcome: BodyOutcome["outcome"] | undefined;
  // Until the 101 is on the wire the client socket cannot send anything.
  const pending: Message[] = upstream.early;
  let pendingClose: { code?: number; reason: string } | undefined;

  const { promise, resolve } = Promise.withResolvers<BodyOutcome>();
  let open = 2;
  const closedOne = () => {
    if (--open === 0) resolve({ outcome: outcome ?? "complete", bytes: bytesOut });
  };

  /** Ends the session for both sides, when a buffer limit is exceeded. */
  const overflow = (slow: "client" | "upstream") => {
    outcome ??= "error";
    const reason = slow === "client"
      ? "Client reads slower than the upstream sends"
      : "Upstream reads slower than the client sends";
    closeQuietly(client, 1013, reason);
    closeQuietly(server, 1000, reason);
  };

  const toClient = (data: Message) => {
    if (client.readyState !== WebSocket.OPEN) return;
    client.send(data);
    bytesOut += byteLength(data);
    if (client.bufferedAmount > options.maxBufferedBytes) overflow("client");
  };

  server.onmessage = (event) => {
    if (client.readyState === WebSocket.CONNECTING) pending.push(event.data);
    else toClient(event.data);
  };
  client.onopen = () => {
    for (const data of pending.splice(0)) toClient(data);
    if (pendingClose !== undefined) closeClient(pendingClose.code, pendingClose.reason);
  };
  client.onmessage = (event) => {
    const data: Message = event.data;
    options.onBytesIn(byteLength(data));
    if (server.readyState !== WebSocket.OPEN) return;
    server.send(data);
    if (server.bufferedAmount > options.maxBufferedBytes) overflow("upstream");
  };

  const closeClient = (code: number | undefined, reason: string) => {
    if (client.readyState === WebSocket.CONNECTING) pendingClose = { code, reason };
    else closeQuietly(client, code, reason);
  };

  server.onclose = (event) => {
    if (abnormal(event.code)) {
      outcome ??= "error";
      closeClient(1011, "Upstream connection lost");
    } else if (event.code === 1005) {
      closeClient(undefined, "");
    } else {
      // The server side of Deno's API may send any code a peer may receive.
      closeClient(event.code, event.reason);
    }
    closedOne();
  };
  client.onclose = (event) => {
    if (abnormal(event.code)) {
      outcome ??= "cancelled";
      closeQuietly(server, 1000, "Client connection lost");
    } else if (event.code === 1005) {
      closeQuietly(server, undefined, "");
    } else if (clientMaySend(event.code)) {
      closeQuietly(server, event.code, event.reason);
    } else {
      // 1001-1014 cannot be sent by a WebSocket client object: the nearest is 1000.
      closeQuietly(server, 1000, event.reason);
    }
    closedOne();
  };
  // An error is always followed by a close event, which does the work.
  server.onerror = null;
  client.onerror = null;
  return promise;
}

function closeQuietly(socket: WebSocket, code?: number, reason?: string): void {
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  try {
    if (code === undefined) socket.close();
    else socket.close(code, reason);
  } catch {
    // A code or reason the API refuses: close plainly rather than leave it open.
    socket.close();
  }
}

function byteLength(data: Message): number {
  return typeof data === "string" ? utf8Length(data) : data.byteLength;
}

/** UTF-8 length of a string without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      bytes += 2; // a surrogate pair: 2 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}
