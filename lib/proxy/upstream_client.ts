/**
 * The HTTP/1.1 client the proxy sends upstream requests with, on Deno's raw
 * TCP (and TLS) connections, with keep-alive pooling per origin.
 *
 * Why not fetch: Deno's fetch decodes gzip and br bodies whenever the
 * request's Accept-Encoding is anything but `identity` while keeping
 * Content-Encoding, so a proxy on fetch cannot pass a compressed body
 * through byte for byte (platform notes, deno PR #35124). node:http keeps
 * the bytes but is slower under Deno than a keep-alive client on
 * Deno.connect (measured with throwaway programs when the client was
 * chosen; docs/proxying.md gives no figure since no command repeats it).
 *
 * The parts: `pool.ts` (connections per origin and their limits),
 * `exchange.ts` (one request and its response on one connection),
 * `request_head.ts` (the request head, syntax-checked), `http1.ts` (the
 * wire format) and `upstream_error.ts` (how a send fails).
 */
import { Deadlines } from "./deadlines.ts";
import {
  Exchange,
  type ExchangeParts,
  type UpstreamRequest,
  type UpstreamResponse,
} from "./exchange.ts";
import { ConnectionPool } from "./pool.ts";
import { requestHead } from "./request_head.ts";

// The client's public types live with the parts that use them (no module
// imports this one back, so the parts form no cycle); importers see them here.
export type { UpstreamRequest, UpstreamResponse } from "./exchange.ts";
export { UpstreamError, type UpstreamFailure } from "./upstream_error.ts";

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

/** Sends requests upstream over pooled keep-alive connections. */
export class UpstreamClient {
  readonly #pool: ConnectionPool;
  readonly #deadlines = new Deadlines();
  /** What every exchange works with, made once (not once per request). */
  readonly #parts: ExchangeParts;

  constructor(options: UpstreamClientOptions = {}) {
    this.#pool = new ConnectionPool({
      maxIdlePerOrigin: options.maxIdlePerOrigin ?? 256,
      maxConnectionsPerOrigin: options.maxConnectionsPerOrigin ?? 1024,
      idleTimeoutMs: options.idleTimeoutMs ?? 4000,
    });
    this.#parts = { pool: this.#pool, deadlines: this.#deadlines };
  }

  /** Sends `req`; resolves once response headers arrive, rejects with UpstreamError before that. */
  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const origin = this.#pool.origin(req.origin, req.caCerts);
    // Refused before anything is sent: a header that would break the request head.
    const shared = requestHead(req, origin.host);
    const exchange = new Exchange(req, this.#parts);
    try {
      const idle = req.fresh ? undefined : this.#pool.takeIdle(origin);
      let head: Uint8Array;
      if (idle !== undefined) {
        exchange.use(idle);
        head = idle.ownHead(shared);
      } else {
        // Another request's head may be written into the shared bytes while this one waits.
        head = shared.slice();
        exchange.use(await this.#pool.acquire(origin, exchange));
      }
      await exchange.writeRequest(head);
      return exchange.respond(await exchange.readHead());
    } catch (error) {
      throw exchange.failed(error);
    }
  }

  /** Closes pooled connections; later sends still work but open new ones. */
  close(): void {
    this.#pool.close();
    this.#deadlines.close();
  }
}
