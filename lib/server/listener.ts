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
 * the 101; see `UpgradeGuard` (upgrade_guard.ts) for how sessions are kept
 * open, and for the rare case where that fails.
 *
 * With `tls` the listener is a Deno.listenTls one (ALPN h2 and http/1.1;
 * the per-connection server speaks HTTP/2 on a TlsConn that negotiated h2)
 * and the same bounds apply; a TLS handshake counts as part of the first
 * request head. Certificates are chosen per client hello through Deno's
 * unstable SNI resolver option when present. Deno keeps each name's answer
 * for the listener's lifetime, so a certificate change (or many distinct
 * names) opens a new listener on the same port (SO_REUSEPORT) and closes
 * the old one: open connections are untouched, new ones get the new
 * certificate (see docs/tls.md for the one race).
 *
 * Without the internal API (another Deno version) it falls back to plain
 * Deno.serve, unbounded, and says so once (`listener_unbounded`).
 */
import { Client, type ClientConnection } from "./client_connection.ts";
import { type DenoInternals, denoInternals } from "./deno_internals.ts";
import { closeSocket, UpgradeGuard } from "./upgrade_guard.ts";
import type {
  ClientHandler,
  ConnectionBounds,
  ListenerOptions,
  ProxyListener,
} from "./listener_types.ts";
import {
  closeListener,
  closeQuietly,
  messageOf,
  openSocket,
  REUSE_PORT,
  serveUnbounded,
} from "./proxy_socket.ts";

export type { ClientConnection };
export { listenFailure } from "./listen_failure.ts";

export type {
  ClientHandler,
  ConnectionBounds,
  ListenerOptions,
  ProxyListener,
} from "./listener_types.ts";

/** The reasons of `vanguard_client_connections_closed_total`. */
export const CLOSE_REASONS = ["head_timeout", "idle_timeout", "over_limit"] as const;

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

class BoundedListener implements ProxyListener {
  readonly addr: Deno.NetAddr;
  readonly bounded = true;
  readonly #options: ListenerOptions;
  readonly #internals: DenoInternals;
  readonly #handler: ClientHandler;
  #listener: Deno.Listener;
  readonly #clients = new Set<Client>();
  /** One accept loop per listener opened (a certificate change opens another). */
  readonly #accepting = new Set<Promise<void>>();
  /** Distinct server names the current TLS listener's resolver was asked for. */
  #namesAsked = 0;
  #renewing: Promise<void> = Promise.resolve();
  #bounds: ConnectionBounds;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #wakeAccept: (() => void) | undefined;
  readonly #upgrades: UpgradeGuard;

  constructor(options: ListenerOptions, internals: DenoInternals, handler: ClientHandler) {
    this.#options = options;
    this.#internals = internals;
    this.#handler = handler;
    this.#bounds = options;
    this.#upgrades = new UpgradeGuard({
      core: internals.core,
      logger: options.logger,
      stopping: () => this.#stopping,
      closed: (client) => this.#forget(client),
    });
    this.#listener = this.#open(options.port);
    this.addr = this.#listener.addr as Deno.NetAddr;
    this.#startSweeper();
    this.#startAccepting(this.#listener);
    options.tls?.onChange(() => this.#renew("certificates_changed"));
  }

  #open(port: number): Deno.Listener {
    const { hostname, tls } = this.#options;
    this.#namesAsked = 0;
    return openSocket({
      hostname,
      port,
      tls,
      reusePort: this.#options.reusePort,
      resolverSymbol: this.#internals.resolverSymbol,
      // Deno keeps every resolver answer for the listener's lifetime: bound that memory.
      onServerName: () => {
        if (++this.#namesAsked === MAX_SERVER_NAMES) {
          queueMicrotask(() => this.#renew("server_names"));
        }
      },
    });
  }

  /** Opens a new listener on the same port and closes the old one; open connections stay. */
  #renew(why: string): void {
    this.#renewing = this.#renewing.then(() => this.#renewNow(why));
  }

  async #renewNow(why: string): Promise<void> {
    if (this.#stopping) return;
    const port = this.addr.port;
    const old = this.#listener;
    if (REUSE_PORT) {
      // Both listen for a moment; the old one's queue is all that can be lost.
      let next: Deno.Listener;
      try {
        next = this.#open(port);
      } catch (error) {
        this.#options.logger.error("tls_reload_failed", {
          reason: `cannot open a new listener on port ${port}: ${messageOf(error)}`,
          message: "The listener keeps the certificates it had",
        });
        return;
      }
      this.#adopt(next, old);
    } else {
      // Without --unstable-net no second listener may share the port: close,
      // then listen again as soon as the port is free (one event-loop turn
      // here); a connection attempt in between is refused.
      closeListener(old);
      for (let attempt = 0; !this.#stopping; attempt++) {
        try {
          this.#adopt(this.#open(port), old);
          break;
        } catch (error) {
          if (attempt === 10) {
            this.#options.logger.error("listener_reopen_failed", {
              port,
              reason: messageOf(error),
              message: "Retrying every second: no new client connection is accepted meanwhile",
            });
          }
          await new Promise((resolve) => setTimeout(resolve, attempt < 10 ? attempt * 10 : 1000));
        }
      }
    }
    this.#options.logger.info("listener_renewed", { reason: why, port });
  }

  #adopt(next: Deno.Listener, old: Deno.Listener): void {
    if (this.#stopping) {
      closeListener(next);
      return;
    }
    this.#listener = next;
    this.#startAccepting(next);
    closeListener(old);
  }

  #startAccepting(listener: Deno.Listener): void {
    const loop = this.#acceptLoop(listener);
    this.#accepting.add(loop);
    loop.finally(() => this.#accepting.delete(loop));
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
    await this.#renewing;
    closeListener(this.#listener);
    await Promise.all(this.#accepting);
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

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    while (!this.#stopping && listener === this.#listener) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (
          this.#stopping || listener !== this.#listener || error instanceof Deno.errors.BadResource
        ) {
          return;
        }
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

  #serve(conn: Deno.Conn): void {
    const client = new Client(conn, performance.now(), this.#options.tls !== undefined);
    const handler = this.#handler;
    const upgrades = this.#upgrades;
    function checkUpgrade(response: Response): Response | Promise<Response> {
      if (response.status === 101) return upgrades.upgrade(client, response);
      client.upgrading = false;
      return response;
    }
    function handle(
      request: Request,
      info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    ): Response | Promise<Response> {
      client.requests++;
      client.inFlight++;
      info.completed.then(client.settled, client.settled);
      // Only a request that asks for an upgrade can get a 101: no extra await
      // for the others. Asked first: once upgraded, the request is closed.
      // get, not has: has() makes Deno copy and lower-case every header name now.
      const upgrade = request.headers.get("upgrade") !== null;
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
    // UpgradeGuard). Resource ids only increase and nothing else ran since the
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
/** Distinct TLS server names one listener answers before a new listener forgets them. */
const MAX_SERVER_NAMES = 10_000;

/**
 * How often the sweep runs: a tenth of the shorter timeout, between 10 ms
 * and 1 s, so a connection is closed at most that long after its deadline.
 */
function sweepTick(bounds: ConnectionBounds): number {
  const shorter = Math.min(bounds.requestHeadTimeoutMs, bounds.idleTimeoutMs);
  return Math.min(1000, Math.max(10, Math.floor(shorter / 10)));
}
