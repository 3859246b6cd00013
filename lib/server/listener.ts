/**
 * The proxy listener. Deno.serve has no request-head timeout, no keep-alive
 * idle timeout and no connection cap, so this listener accepts TCP
 * connections itself and serves each one with Deno's per-connection HTTP
 * server (`serveHttpOnConnection`, the machinery Deno.serve runs, reached
 * through `Deno[Deno.internal]`). That makes every connection closable on
 * its own:
 *
 * - no request within `requestHeadTimeoutMs` of the accept: closed
 *   (a slowloris client holding a partial head);
 * - nothing in flight and no new request within `idleTimeoutMs` of the last
 *   response: closed (this also bounds a partial head on a kept-alive
 *   connection: Deno does not say when the next head started);
 * - `maxConnections` already open: a new connection is closed at accept.
 *
 * One coarse sweep timer judges all connections; the request path only
 * counts requests and reads the clock when a response completes.
 *
 * A connection upgraded to a WebSocket is exempt from the timers and counts
 * as open until its session closes. On Deno 2.9.6 the per-connection server
 * closes the WebSockets it upgraded when it ends, which it does right after
 * the 101; see {@linkcode BoundedListener} `#upgrade` for how sessions are
 * kept open, and for the rare case where that fails.
 *
 * Without the internal API (another Deno version) it falls back to plain
 * Deno.serve, unbounded, and says so once (`listener_unbounded`).
 */
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";

/** The client connection a request arrived on. */
export interface ClientConnection {
  readonly remoteAddr: Deno.NetAddr;
  /** The address the client connected to (Deno derives `request.url` from it when there is no Host). */
  readonly localAddr: Deno.NetAddr;
}

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

/** What this module uses of `Deno[Deno.internal]` (present in Deno 2.9.6). */
export interface DenoInternals {
  serveHttpOnConnection(
    conn: Deno.Conn,
    /** Deno only subscribes to its "abort" event, which closes the connection at once. */
    signal: Pick<AbortSignal, "addEventListener">,
    handler: (
      request: Request,
      info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    ) => Response | Promise<Response>,
    onError: (error: unknown) => Response | Promise<Response>,
    onListen: () => void,
  ): Deno.HttpServer<Deno.NetAddr>;
  readonly core: {
    /** Adds a resource and returns its id (resource ids only ever increase). */
    createCancelHandle(): number;
    tryClose(rid: number): void;
    /** Closes a resource; throws BadResource when it is gone. */
    close(rid: number): void;
    readonly internalRidSymbol: symbol;
  };
}

/** The reasons of `vanguard_client_connections_closed_total`. */
export const CLOSE_REASONS = ["head_timeout", "idle_timeout", "over_limit"] as const;

/** `Deno[Deno.internal]` when it has what this module needs, else undefined. */
export function denoInternals(): DenoInternals | undefined {
  // deno-lint-ignore no-explicit-any
  const deno = Deno as any;
  const internal = deno[deno.internal];
  const core = internal?.core;
  if (
    typeof internal?.serveHttpOnConnection !== "function" ||
    typeof core?.createCancelHandle !== "function" ||
    typeof core.tryClose !== "function" ||
    typeof core.close !== "function" ||
    typeof core.internalRidSymbol !== "symbol"
  ) {
    return undefined;
  }
  return internal as DenoInternals;
}

/**
 * Listens on `hostname:port` and serves `handler` there. Throws what
 * Deno.listen throws (see {@linkcode listenFailure}).
 */
export function startListener(options: ListenerOptions, handler: ClientHandler): ProxyListener {
  const internals = options.internals === undefined ? denoInternals() : options.internals;
  const { metrics } = options;
  for (const reason of CLOSE_REASONS) metrics.clientConnectionsClosed.inc({ reason }, 0);
  if (internals === null || internals === undefined) {
    options.logger.warn("listener_unbounded", {
      message:
        "Deno's per-connection HTTP server is not available in this Deno version: client connections have no request-head timeout, idle timeout or connection cap",
    });
    return serveUnbounded(options, handler);
  }
  return new BoundedListener(options, internals, handler);
}

/** An error for an operator: the address, the config key, and what to do about it. */
export function listenFailure(
  error: unknown,
  at: { hostname: string; port: number; hostKey: string; portKey: string },
): Error {
  const address = at.hostname.includes(":")
    ? `[${at.hostname}]:${at.port}`
    : `${at.hostname}:${at.port}`;
  let key = at.portKey;
  let reason: string;
  if (error instanceof Deno.errors.AddrInUse) {
    reason = "address already in use; stop the other process or choose another port";
  } else if (error instanceof Deno.errors.AddrNotAvailable) {
    key = at.hostKey;
    reason = "no network interface of this machine has that address; choose another host";
  } else if (error instanceof Deno.errors.PermissionDenied) {
    reason = "permission denied (ports below 1024 need privileges); choose another port";
  } else if (error instanceof Deno.errors.NotCapable) {
    reason = "not allowed by the --allow-net permission";
  } else {
    key = `${at.hostKey}, ${at.portKey}`;
    reason = error instanceof Error ? error.message : String(error);
  }
  return new Error(`Cannot listen on ${address} (${key}): ${reason}`, { cause: error });
}

/** One client connection and what the sweep needs to judge it. */
class Client implements ClientConnection {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
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

  constructor(conn: Deno.Conn, now: number) {
    this.remoteAddr = conn.remoteAddr as Deno.NetAddr;
    this.localAddr = conn.localAddr as Deno.NetAddr;
    this.acceptedAt = now;
  }
}

class BoundedListener implements ProxyListener {
  readonly addr: Deno.NetAddr;
  readonly bounded = true;
  readonly #options: ListenerOptions;
  readonly #internals: DenoInternals;
  readonly #handler: ClientHandler;
  readonly #listener: Deno.TcpListener;
  readonly #clients = new Set<Client>();
  readonly #accepting: Promise<void>;
  #bounds: ConnectionBounds;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #wakeAccept: (() => void) | undefined;
  #warnedUntracked = false;
  #warnedLost = false;
  /** Resolves when the upgrade before the next one has its session open (or failed). */
  #upgradeGate: Promise<void> = Promise.resolve();

  constructor(options: ListenerOptions, internals: DenoInternals, handler: ClientHandler) {
    this.#options = options;
    this.#internals = internals;
    this.#handler = handler;
    this.#bounds = options;
    this.#listener = Deno.listen({ hostname: options.hostname, port: options.port });
    this.addr = this.#listener.addr;
    this.#startSweeper();
    this.#accepting = this.#acceptLoop();
  }

  setBounds(bounds: ConnectionBounds): void {
    const tickBefore = sweepTick(this.#bounds);
    this.#bounds = {
      requestHeadTimeoutMs: bounds.requestHeadTimeoutMs,
      idleTimeoutMs: bounds.idleTimeoutMs,
      maxConnections: bounds.maxConnections,
    };
    if (sweepTick(this.#bounds) !== tickBefore && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#startSweeper();
    }
  }

  shutdown(): Promise<void> {
    return this.#shutdown ??= this.#drain();
  }

  async close(): Promise<void> {
    const drained = this.shutdown();
    const ending: Promise<void>[] = [];
    for (const client of this.#clients) {
      if (client.socket !== undefined) continue;
      client.closing = true;
      client.kill.fire();
      ending.push(client.finished);
    }
    await Promise.all(ending);
    this.#stopSweeper();
    // Still-open WebSocket sessions are not waited for: nothing can force them.
    if (this.#clients.size === 0) await drained;
  }

  async #drain(): Promise<void> {
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    this.#wakeAccept?.();
    await this.#accepting;
    const drained = new Promise<void>((resolve) => this.#drained = resolve);
    for (const client of this.#clients) {
      if (client.socket !== undefined) {
        closeSocket(client.socket);
      } else if (client.inFlight === 0 && !client.upgrading) {
        client.closing = true;
        client.kill.fire();
      } else {
        // Deno's graceful close: the response in flight finishes, then the
        // connection closes; a session upgraded meanwhile gets 1001. (A
        // forced close of a connection waiting for its 101 would leave the
        // client hanging, Deno 2.9.6.)
        client.server?.shutdown().catch(() => {});
      }
    }
    if (this.#clients.size > 0) await drained;
    this.#stopSweeper();
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping || error instanceof Deno.errors.BadResource) return;
        // E.g. out of file descriptors: pause instead of spinning, keep accepting.
        this.#options.logger.warn("accept_failed", {
          message: error instanceof Error ? error.message : String(error),
        });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ACCEPT_RETRY_MS);
          this.#wakeAccept = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wakeAccept = undefined;
        continue;
      }
      if (this.#stopping) {
        closeQuietly(conn);
        return;
      }
      if (this.#clients.size >= this.#bounds.maxConnections) {
        closeQuietly(conn);
        this.#options.metrics.clientConnectionsClosed.inc({ reason: "over_limit" });
        continue;
      }
      try {
        this.#serve(conn);
      } catch (error) {
        // One bad connection must not stop the accept loop.
        this.#options.logger.error("connection_failed", { error });
        closeQuietly(conn);
      }
    }
  }

  #serve(conn: Deno.TcpConn): void {
    const client = new Client(conn, performance.now());
    const handler = this.#handler;
    const checkUpgrade = (response: Response): Response | Promise<Response> => {
      if (response.status === 101) return this.#upgrade(client, response);
      client.upgrading = false;
      return response;
    };
    function handle(
      request: Request,
      info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    ): Response | Promise<Response> {
      client.requests++;
      client.inFlight++;
      info.completed.then(client.settled, client.settled);
      // Only a request that asks for an upgrade can get a 101: no extra await
      // for the others. Asked first: once upgraded, the request is closed.
      const upgrade = request.headers.has("upgrade");
      // Deno counts an upgraded request as completed before its 101 is sent.
      if (upgrade) client.upgrading = true;
      const response = handler(request, client);
      return upgrade ? Promise.resolve(response).then(checkUpgrade) : response;
    }
    const { core } = this.#internals;
    const connRid = (conn as unknown as Record<symbol, number>)[core.internalRidSymbol];
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = this.#internals.serveHttpOnConnection(
        conn,
        client.kill,
        handle,
        this.#options.onError,
        () => {},
      );
    } catch (error) {
      // E.g. the peer already reset the connection.
      this.#options.logger.warn("connection_failed", {
        message: error instanceof Error ? error.message : String(error),
      });
      closeQuietly(conn);
      return;
    }
    // The server's resource id, to keep a WebSocket session open (see
    // #upgrade). Resource ids only increase and nothing else ran since the
    // server's resource was added: it is the one just before a fresh one.
    const probe = core.createCancelHandle();
    core.tryClose(probe);
    if (probe - 1 > connRid) client.httpRid = probe - 1;
    client.server = server;
    client.finished = server.finished.then(
      () => this.#ended(client),
      () => this.#ended(client),
    );
    this.#clients.add(client);
    this.#options.metrics.clientConnections.add({}, 1);
  }

  /**
   * A 101: the connection becomes a WebSocket session, exempt from the
   * timers.
   *
   * Deno's per-connection server ends right after the upgrade and then
   * force-closes the WebSockets it upgraded (Deno 2.9.6). Releasing its
   * resource once the socket is open, before that server's end is handled,
   * leaves the session alone. Which of the two Deno reports first is not
   * defined, and nothing in reach reports the handoff earlier. Measured
   * through the gateway: of 400 upgrades at once, 10-27% were lost when they
   * all raced, 0-0.3% when they pass one at a time from the 101 until their
   * socket is open (about one event-loop turn each, >1000 upgrades/s;
   * ordinary requests never wait for it); with 100 other sessions closing
   * meanwhile, about 1% still were. A lost session ends abnormally at the
   * client, which has to reconnect, and is logged once
   * (`websocket_upgrade_lost`). Only a fix in Deno removes that.
   */
  async #upgrade(client: Client, response: Response): Promise<Response> {
    const previous = this.#upgradeGate;
    let open!: () => void;
    this.#upgradeGate = new Promise<void>((resolve) => open = resolve);
    await previous;
    // Every way an upgrade ends releases the turn; the timer only guards
    // against a way overlooked here, which would stall all later upgrades.
    const timer = setTimeout(() => release(), UPGRADE_TURN_MS);
    function release(): void {
      clearTimeout(timer);
      open();
    }
    const socket = associatedSocket(response);
    if (socket === undefined) {
      release();
      if (!this.#warnedUntracked) {
        this.#warnedUntracked = true;
        this.#options.logger.warn("websocket_untracked", {
          message: "Cannot find the WebSocket of an upgrade response; this Deno may close it",
        });
      }
      return response;
    }
    client.socket = socket;
    const core = this.#internals.core;
    socket.addEventListener("open", () => {
      release();
      if (client.httpRid === -1) return;
      try {
        core.close(client.httpRid);
      } catch {
        // Deno had already ended that server, closing this session with it
        // (or a shutdown did).
        if (!this.#warnedLost && !this.#stopping) {
          this.#warnedLost = true;
          this.#options.logger.warn("websocket_upgrade_lost", {
            message:
              "Deno closed a WebSocket session right after its upgrade; the client has to reconnect",
          });
        }
      }
    }, { once: true });
    // A failed upgrade (client gone before the 101, say) must not hold the next one.
    socket.addEventListener("error", () => release(), { once: true });
    socket.addEventListener("close", () => {
      release();
      this.#forget(client);
    }, { once: true });
    client.finished.then(release);
    if (this.#stopping) closeSocket(socket);
    return response;
  }

  #ended(client: Client): void {
    const socket = client.socket;
    // An open session outlives its HTTP server; its close event forgets it.
    if (
      socket !== undefined &&
      (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CLOSING)
    ) {
      return;
    }
    this.#forget(client);
  }

  #forget(client: Client): void {
    if (!this.#clients.delete(client)) return;
    this.#options.metrics.clientConnections.add({}, -1);
    if (this.#clients.size === 0) this.#drained?.();
  }

  #sweep(): void {
    const now = performance.now();
    const { requestHeadTimeoutMs, idleTimeoutMs } = this.#bounds;
    const closed = this.#options.metrics.clientConnectionsClosed;
    for (const client of this.#clients) {
      if (
        client.inFlight > 0 || client.upgrading || client.socket !== undefined || client.closing
      ) {
        continue;
      }
      let reason: "head_timeout" | "idle_timeout" | undefined;
      if (client.requests === 0) {
        if (now - client.acceptedAt >= requestHeadTimeoutMs) reason = "head_timeout";
      } else if (now - client.idleSince >= idleTimeoutMs) {
        reason = "idle_timeout";
      }
      if (reason === undefined) continue;
      client.closing = true;
      client.kill.fire();
      closed.inc({ reason });
    }
  }

  #startSweeper(): void {
    this.#sweeper = setInterval(() => this.#sweep(), sweepTick(this.#bounds));
  }

  #stopSweeper(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

const ACCEPT_RETRY_MS = 100;
/** At most this long from an upgrade's 101 until the next upgrade may go. */
const UPGRADE_TURN_MS = 2000;

/**
 * How often the sweep runs: a tenth of the shorter timeout, between 10 ms
 * and 1 s, so a connection is closed at most that long after its deadline.
 */
function sweepTick(bounds: ConnectionBounds): number {
  const shorter = Math.min(bounds.requestHeadTimeoutMs, bounds.idleTimeoutMs);
  return Math.min(1000, Math.max(10, Math.floor(shorter / 10)));
}

/** The WebSocket that Deno.upgradeWebSocket keeps on its 101 response (under a private symbol). */
function associatedSocket(response: Response): WebSocket | undefined {
  for (const key of Object.getOwnPropertySymbols(response)) {
    const value = (response as unknown as Record<symbol, unknown>)[key];
    if (value instanceof WebSocket) return value;
  }
  return undefined;
}

/** What Deno.serve's graceful shutdown sends to open sessions. */
function closeSocket(socket: WebSocket): void {
  if (socket.readyState === WebSocket.CONNECTING) {
    // The 101 is not on the wire yet: close right after it.
    socket.addEventListener("open", () => closeSocket(socket), { once: true });
    return;
  }
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  try {
    socket.close(1001, "Server shutting down");
  } catch {
    socket.close();
  }
}

/**
 * What the per-connection server gets as its AbortSignal: it only
 * subscribes to "abort" (a forced close). Calling that listener here, not
 * through a real AbortSignal, lets the BadResource it throws when the
 * server's resource is already gone (the connection was ending anyway) be
 * caught instead of surfacing as an uncaught error.
 */
class KillSwitch {
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

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Plain Deno.serve: what the gateway ran before, for a Deno without the internal API. */
function serveUnbounded(options: ListenerOptions, handler: ClientHandler): ProxyListener {
  const abort = new AbortController();
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    signal: abort.signal,
    onListen() {},
    onError: options.onError,
  }, function serve(request, info) {
    return handler(request, { remoteAddr: info.remoteAddr, localAddr: server.addr });
  });
  let stopped: Promise<void> | undefined;
  return {
    addr: server.addr,
    bounded: false,
    setBounds() {},
    shutdown: () => stopped ??= server.shutdown(),
    async close() {
      // Once a graceful shutdown has begun, the server's resource is gone and
      // an abort would throw (uncaught): nothing more can be cut off then.
      if (stopped !== undefined) return;
      abort.abort();
      await server.finished.catch(() => {});
    },
  };
}
