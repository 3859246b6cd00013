import type { RouteEntry, RoutingTable } from "../routing/table.ts";

/** What happened to a streamed response body once it stopped flowing. */
export interface BodyOutcome {
  /** `complete`: all bytes sent; `cancelled`: the client went away; `error`: the upstream broke. */
  readonly outcome: "complete" | "cancelled" | "error";
  readonly bytes: number;
}

/** Per-request state shared by the middleware chain. */
export interface RequestContext {
  readonly request: Request;
  /** Monotonic start time in milliseconds (performance.now()). */
  readonly startedAt: number;
  /** Client's X-Request-Id when sane, else a new one. */
  readonly requestId: string;
  /** Address of the TCP peer (no port), e.g. `127.0.0.1` or `::1`. */
  readonly peerAddress: string;
  /** Whether the peer is in `server.trusted_proxies`. */
  readonly peerTrusted: boolean;
  /** The client address: the peer, or the left-most untrusted X-Forwarded-For hop behind trusted peers. */
  readonly clientAddress: string;
  /** Whether the request came over TLS to this gateway (`server.tls`). */
  readonly secure?: boolean;
  /** The routing table pinned when the request arrived. */
  readonly table: RoutingTable;
  /** Request target as sent, without the query: `/users/%41`. */
  readonly rawPath: string;
  /** Query string including the leading `?`, or "". */
  readonly query: string;
  /** Decoded canonical path the router matches on; set by the canonical-path middleware. */
  path: string;
  /** The same path re-encoded; what the upstream receives. */
  encodedPath: string;
  /** Set by route matching. */
  route?: RouteEntry;
  /** The authenticated consumer id, set by auth. */
  consumer?: string;
  /**
   * Header changes for the upstream request, applied after the proxy's own
   * (request headers themselves are immutable): a value sets, null removes.
   */
  upstreamHeaders?: Record<string, string | null>;
  /**
   * Headers a middleware wants on the response even when the request ends
   * in an error further down (CORS, security headers): the error boundary
   * adds them to error responses.
   */
  responseHeaders?: [string, string][];
  /** This request's upstream timeout, when a route's middleware sets one (else the server's). */
  upstreamTimeoutMs?: number;
  /** This request's body limit, when a route's middleware sets one (else the server's). */
  maxBodyBytes?: number;
  /** Replaces the request's body for the proxy (a mirror taps it); absent: `request.body`. */
  requestBody?: ReadableStream<Uint8Array> | null;
  /** The port of the listener the request came in on. */
  readonly listenerPort?: number;
  /** The service the proxy chose among the route's backends, for the access log. */
  backend?: string;
  /** The endpoint the proxy chose, for the access log. */
  upstream?: string;
  /** Resolves when the response body has been sent (or failed); set by whoever streams it. */
  bodyDone?: Promise<BodyOutcome>;
  /** Request body bytes read so far. */
  bytesIn: number;
}

/** The end of the chain: produces a response. */
export type Handler = (ctx: RequestContext) => Promise<Response>;
/** Calls the rest of the chain. */
export type Next = () => Promise<Response>;
/** One link of the chain: may answer itself, or call `next()` and return (or wrap) its response. */
export type Middleware = (ctx: RequestContext, next: Next) => Promise<Response>;
