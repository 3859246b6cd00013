/**
 * One client connection of the bounded listener: what a handler sees of it,
 * and the bookkeeping the sweep and the upgrade guard judge it by.
 */

/** The client connection a request arrived on. */
export interface ClientConnection {
  readonly remoteAddr: Deno.NetAddr;
  /** The address the client connected to (Deno derives `request.url` from it when there is no Host). */
  readonly localAddr: Deno.NetAddr;
  /** Whether the connection speaks TLS (the proxy listener with `server.tls`). */
  readonly secure?: boolean;
}

/** One client connection and what the sweep needs to judge it. */
export class Client implements ClientConnection {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  readonly secure: boolean;
  readonly kill = new KillSwitch();
  readonly acceptedAt: number;
  server: Deno.HttpServer<Deno.NetAddr> | undefined;
  finished: Promise<void> = Promise.resolve();
  /** The per-connection server's resource id, or -1 when it could not be found. */
  httpRid = -1;
  requests = 0;
  inFlight = 0;
  idleSince = 0;
  /** Between an upgrade request and its answer: exempt from the timers. */
  upgrading = false;
  /** Set once the connection is a WebSocket session. */
  socket: WebSocket | undefined;
  /** Closed by the sweep or a shutdown; only its end is still awaited. */
  closing = false;
  /** For `info.completed`, both ways: one function per connection, not per request. */
  readonly settled = (): void => {
    if (--this.inFlight === 0) this.idleSince = performance.now();
  };

  constructor(conn: Deno.Conn, now: number, secure = false) {
    this.remoteAddr = conn.remoteAddr as Deno.NetAddr;
    this.localAddr = conn.localAddr as Deno.NetAddr;
    this.secure = secure;
    this.acceptedAt = now;
  }
}

/**
 * What the per-connection server gets as its AbortSignal: it only
 * subscribes to "abort" (a forced close). Calling that listener here, not
 * through a real AbortSignal, lets the BadResource it throws when the
 * server's resource is already gone (the connection was ending anyway) be
 * caught instead of surfacing as an uncaught error.
 */
export class KillSwitch {
  #listener: (() => void) | undefined;

  addEventListener(_type: string, listener: EventListenerOrEventListenerObject | null): void {
    if (typeof listener === "function") this.#listener = () => listener(new Event("abort"));
  }

  /** Closes the connection now (once). */
  fire(): void {
    const listener = this.#listener;
    this.#listener = undefined;
    try {
      listener?.();
    } catch { /* the server had already closed */ }
  }
}
