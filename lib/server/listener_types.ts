/** The proxy listener's interface: what it is given and what it offers. */
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { ClientConnection } from "./client_connection.ts";
import type { DenoInternals } from "./deno_internals.ts";
import type { CertificateSource } from "./tls.ts";

/** Answers one request. */
export type ClientHandler = (
  request: Request,
  client: ClientConnection,
) => Response | Promise<Response>;

/** The limits on client connections (`server.*` in the config). */
export interface ConnectionBounds {
  readonly requestHeadTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
}

/** How to start a {@linkcode ProxyListener}. */
export interface ListenerOptions extends ConnectionBounds {
  readonly hostname: string;
  readonly port: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Answers a request whose handler threw, as Deno.serve's `onError` does. */
  readonly onError: (error: unknown) => Response | Promise<Response>;
  /**
   * Deno's internals (default: looked up in `Deno[Deno.internal]`); `null`
   * forces the unbounded Deno.serve fallback (tests).
   */
  readonly internals?: DenoInternals | null;
  /** Present: HTTPS with these certificates (HTTP/1.1 and HTTP/2 by ALPN). */
  readonly tls?: CertificateSource;
  /** Share the port with other listeners (SO_REUSEPORT; worker threads; needs --unstable-net). */
  readonly reusePort?: boolean;
}

/** A running proxy listener. */
export interface ProxyListener {
  readonly addr: Deno.NetAddr;
  /** False when Deno's internal API is missing and plain Deno.serve serves, without bounds. */
  readonly bounded: boolean;
  /** Applies new bounds (on reload); open connections are judged by them from the next sweep. */
  setBounds(bounds: ConnectionBounds): void;
  /**
   * Stops accepting, closes idle connections (and half-sent heads) at once,
   * lets in-flight requests finish, closes WebSocket sessions with 1001;
   * resolves when every connection is closed.
   */
  shutdown(): Promise<void>;
  /** Closes whatever is still open (after the grace period); WebSocket sessions only get their 1001. */
  close(): Promise<void>;
}
