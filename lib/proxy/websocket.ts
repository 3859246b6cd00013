import type { RequestContext } from "../pipeline/types.ts";

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
}

/**
 * Bridges a WebSocket: accepts the client's upgrade, opens one to the
 * upstream, and passes messages both ways. (Implemented in a later step.)
 */
export function proxyWebSocket(
  _ctx: RequestContext,
  _options: WebSocketProxyOptions,
): Promise<Response> {
  return Promise.reject(new Error("WebSocket proxying is not implemented yet"));
}
