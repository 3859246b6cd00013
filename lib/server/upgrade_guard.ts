/**
 * Keeps WebSocket sessions open on Deno 2.9.6, whose per-connection HTTP
 * server closes the WebSockets it upgraded when it ends, which it does
 * right after the 101. See {@linkcode UpgradeGuard} for how, and for the
 * rare case where that fails (`websocket_upgrade_lost`).
 */
import type { Logger } from "../log/logger.ts";
import type { Client } from "./client_connection.ts";
import type { DenoInternals } from "./deno_internals.ts";

/** What an {@linkcode UpgradeGuard} needs from its listener. */
export interface UpgradeGuardOptions {
  readonly core: DenoInternals["core"];
  readonly logger: Logger;
  /** Whether the listener is shutting down (read when a session opens). */
  readonly stopping: () => boolean;
  /** The session of `client` closed: the connection is gone. */
  readonly closed: (client: Client) => void;
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
export class UpgradeGuard {
  readonly #options: UpgradeGuardOptions;
  #warnedUntracked = false;
  #warnedLost = false;
  /** Resolves when the upgrade before the next one has its session open (or failed). */
  #gate: Promise<void> = Promise.resolve();

  constructor(options: UpgradeGuardOptions) {
    this.#options = options;
  }

  /** Takes `client` through the 101 in `response`, one upgrade at a time; resolves to `response`. */
  async upgrade(client: Client, response: Response): Promise<Response> {
    const previous = this.#gate;
    let open!: () => void;
    this.#gate = new Promise<void>((resolve) => open = resolve);
    await previous;
    // Every way an upgrade ends releases the turn; the timer only guards
    // against a way overlooked here, which would stall all later upgrades.
    const timer = setTimeout(() => release(), UPGRADE_TURN_MS);
    function release(): void {
      clearTimeout(timer);
      open();
    }
    const { core, logger, stopping, closed } = this.#options;
    const socket = associatedSocket(response);
    if (socket === undefined) {
      release();
      if (!this.#warnedUntracked) {
        this.#warnedUntracked = true;
        logger.warn("websocket_untracked", {
          message: "Cannot find the WebSocket of an upgrade response; this Deno may close it",
        });
      }
      return response;
    }
    client.socket = socket;
    socket.addEventListener("open", () => {
      release();
      if (client.httpRid === -1) return;
      try {
        core.close(client.httpRid);
      } catch {
        // Deno had already ended that server, closing this session with it
        // (or a shutdown did).
        if (!this.#warnedLost && !stopping()) {
          this.#warnedLost = true;
          logger.warn("websocket_upgrade_lost", {
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
      closed(client);
    }, { once: true });
    client.finished.then(release);
    if (stopping()) closeSocket(socket);
    return response;
  }
}

/** At most this long from an upgrade's 101 until the next upgrade may go. */
const UPGRADE_TURN_MS = 2000;

/** The WebSocket that Deno.upgradeWebSocket keeps on its 101 response (under a private symbol). */
function associatedSocket(response: Response): WebSocket | undefined {
  for (const key of Object.getOwnPropertySymbols(response)) {
    const value = (response as unknown as Record<symbol, unknown>)[key];
    if (value instanceof WebSocket) return value;
  }
  return undefined;
}

/** What Deno.serve's graceful shutdown sends to open sessions. */
export function closeSocket(socket: WebSocket): void {
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
