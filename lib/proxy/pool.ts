/**
 * Keep-alive connections to upstream origins: a stack of idle connections
 * per origin (the most recently used is reused first), a limit on the
 * connections open per origin with a queue of requests waiting for one, and
 * a sweeper that closes connections idle too long. A connection that
 * receives anything while idle is closed, never handed out.
 */
import { BufferedReader } from "./http1.ts";

/** An upstream origin, parsed once. */
export interface Origin {
  /** The origin as given, e.g. `http://10.0.0.7:8080`: what the pool is keyed by. */
  readonly key: string;
  /** `host:port` as the Host header wants it. */
  readonly host: string;
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
  /** PEM CA certificates an https origin is verified against; undefined: the system roots. */
  readonly caCerts?: readonly string[];
}

const EMPTY = new Uint8Array(0);
/** The largest request head a connection keeps a buffer for (larger ones get a copy each). */
const OWN_HEAD_MAX_BYTES = 16 * 1024;

/** One connection to an origin; it counts in the origin's limit until it closes. */
export class Connection {
  readonly conn: Deno.Conn;
  readonly reader: BufferedReader;
  readonly origin: Origin;
  /** Exchanges started on it; any before the current one make it a reused connection. */
  exchanges = 0;
  idleSince = 0;
  /** In the pool; any byte or EOF that arrives now closes it. */
  idle = false;
  closed = false;
  readonly #onClose: (connection: Connection) => void;
  // The idle watch's handlers, made once per connection, not once per idle spell.
  readonly #arrived = (): void => {
    if (this.idle) this.close();
  };
  readonly #failed = (): void => this.close();

  constructor(conn: Deno.Conn, origin: Origin, onClose: (connection: Connection) => void) {
    this.conn = conn;
    this.reader = new BufferedReader(conn);
    this.origin = origin;
    this.#onClose = onClose;
  }

  /**
   * `head` copied into this connection's own buffer, reused by each of its
   * exchanges (one at a time, and the head is written whole before the
   * response is read): no new buffer per request.
   */
  ownHead(head: Uint8Array): Uint8Array {
    // A head over OWN_HEAD_MAX_BYTES is copied for this request only: a client's huge headers must
    // not stay in memory once per pooled connection.
    if (head.length > OWN_HEAD_MAX_BYTES) return head.slice();
    if (this.#head.length < head.length) {
      this.#head = new Uint8Array(
        Math.min(OWN_HEAD_MAX_BYTES, Math.max(head.length, this.#head.length * 2, 1024)),
      );
    }
    this.#head.set(head);
    return this.#head.subarray(0, head.length);
  }

  #head = EMPTY;

  /** Closes it (once) and frees its place in the origin's limit. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.idle = false;
    try {
      this.conn.close();
    } catch {
      // already closed by the peer or by an abort
    }
    this.#onClose(this);
  }

  /**
   * Watched while idle: whatever arrives now (a late body, a second
   * response, a close) answers no request, so the connection is closed
   * before any request can read it as its own response.
   */
  watch(): void {
    this.reader.watch().then(this.#arrived, this.#failed);
  }
}

/** A request that may give up while it connects or waits for a connection. */
export interface Claim {
  /** The request gave up (timeout, client gone): a connection opened for it is closed. */
  readonly abandoned: boolean;
  /** Rejects when the request gives up; raced against connecting and waiting. */
  readonly interrupted: Promise<never>;
}

/** Pool limits; see UpstreamClientOptions for what each bounds and why. */
export interface PoolOptions {
  readonly maxIdlePerOrigin: number;
  readonly maxConnectionsPerOrigin: number;
  readonly idleTimeoutMs: number;
}

/** A request waiting for a connection to an origin at its limit. */
interface Waiter {
  /** A pooled connection handed over, or null: a slot is free, connect. */
  resolve(connection: Connection | null): void;
  cancelled: boolean;
}

function unset(): void {}

/** Idle keep-alive connections per origin, and the per-origin connection limit. */
export class ConnectionPool {
  readonly #idle = new Map<string, Connection[]>();
  readonly #open = new Map<string, number>();
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #origins = new Map<string, Origin>();
  readonly #caIds = new WeakMap<readonly string[], number>();
  #lastCaId = 0;
  readonly #maxIdle: number;
  readonly #maxConnections: number;
  readonly #idleTimeoutMs: number;
  readonly #sweeper: number;
  readonly #onClose = (connection: Connection): void => this.#freeSlot(connection.origin.key);
  #closed = false;

  constructor(options: PoolOptions) {
    this.#maxIdle = options.maxIdlePerOrigin;
    this.#maxConnections = options.maxConnectionsPerOrigin;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#sweeper = setInterval(() => this.#sweep(), this.#idleTimeoutMs) as unknown as number;
    Deno.unrefTimer(this.#sweeper);
  }

  /**
   * `origin` (e.g. `http://10.0.0.7:8080`) parsed, from a cache. An https
   * origin verified against `caCerts` is pooled apart from the same origin
   * verified otherwise: a connection is only reused under the trust it was
   * verified with.
   */
  origin(origin: string, caCerts?: readonly string[]): Origin {
    const key = caCerts === undefined || !origin.startsWith("https:")
      ? origin
      : `${origin} ca#${this.#caId(caCerts)}`;
    let parsed = this.#origins.get(key);
    if (parsed === undefined) {
      const url = new URL(origin);
      const secure = url.protocol === "https:";
      parsed = {
        key,
        host: url.host,
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: Number(url.port || (secure ? 443 : 80)),
        secure,
        caCerts: secure ? caCerts : undefined,
      };
      if (this.#origins.size > 10_000) this.#origins.clear();
      this.#origins.set(key, parsed);
    }
    return parsed;
  }

  /** A number per CA list (one list per service per config build). */
  #caId(caCerts: readonly string[]): number {
    let id = this.#caIds.get(caCerts);
    if (id === undefined) {
      id = ++this.#lastCaId;
      this.#caIds.set(caCerts, id);
    }
    return id;
  }

  /** The most recently used idle connection to `origin` that is still fresh, if any. */
  takeIdle(origin: Origin): Connection | undefined {
    const stack = this.#idle.get(origin.key);
    const now = performance.now();
    while (stack && stack.length > 0) {
      const connection = stack.pop()!;
      if (now - connection.idleSince < this.#idleTimeoutMs && !connection.closed) {
        connection.idle = false;
        return connection;
      }
      connection.close();
    }
    return undefined;
  }

  /**
   * A new connection once `origin` is below its limit, or a pooled one
   * handed over by a request that finished while this one waited. Rejects
   * as `claim.interrupted` does, or with what connecting threw.
   */
  async acquire(origin: Origin, claim: Claim): Promise<Connection> {
    for (;;) {
      if ((this.#open.get(origin.key) ?? 0) < this.#maxConnections) {
        return await Promise.race([this.#connect(origin, claim), claim.interrupted]);
      }
      const waiter: Waiter = { resolve: unset, cancelled: false };
      const handed = new Promise<Connection | null>((resolve) => waiter.resolve = resolve);
      this.#queue(origin.key).push(waiter);
      let served = false;
      try {
        const connection = await Promise.race([handed, claim.interrupted]);
        served = true;
        if (connection !== null) return connection;
      } finally {
        waiter.cancelled = true;
        // Given up while being served: pass the connection (or the free slot) on.
        if (!served) {
          handed.then((late) => late ? this.release(late) : this.#wake(origin.key, null));
        }
      }
    }
  }

  /**
   * Takes back a connection whose exchange ended cleanly: a waiting request
   * gets it at once, else it waits idle (watched) for the next one.
   */
  release(connection: Connection): void {
    // Bytes after the body mean the upstream broke framing: never reuse that.
    if (this.#closed || connection.closed || connection.reader.buffered > 0) {
      connection.close();
      return;
    }
    const key = connection.origin.key;
    // A request waiting for a connection gets this one at once.
    if (this.#wake(key, connection)) return;
    let stack = this.#idle.get(key);
    if (stack === undefined) {
      stack = [];
      this.#idle.set(key, stack);
    }
    if (stack.length >= this.#maxIdle) {
      connection.close();
      return;
    }
    connection.idleSince = performance.now();
    connection.idle = true;
    stack.push(connection);
    connection.watch();
  }

  /** Closes idle connections and stops the sweeper; later acquires still connect. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const connections of this.#idle.values()) {
      for (const connection of connections) connection.close();
    }
    this.#idle.clear();
  }

  /** Opens a connection, counted in the origin's limit until it closes. */
  async #connect(origin: Origin, claim: Claim): Promise<Connection> {
    this.#open.set(origin.key, (this.#open.get(origin.key) ?? 0) + 1);
    let conn: Deno.Conn;
    try {
      conn = await connect(origin);
    } catch (error) {
      this.#freeSlot(origin.key);
      throw error;
    }
    const connection = new Connection(conn, origin, this.#onClose);
    // The request gave up (timeout, client gone) while this was connecting.
    if (claim.abandoned) connection.close();
    return connection;
  }

  #freeSlot(key: string): void {
    const left = (this.#open.get(key) ?? 1) - 1;
    if (left <= 0) this.#open.delete(key);
    else this.#open.set(key, left);
    this.#wake(key, null);
  }

  #queue(key: string): Waiter[] {
    let queue = this.#waiters.get(key);
    if (queue === undefined) {
      queue = [];
      this.#waiters.set(key, queue);
    }
    return queue;
  }

  /** Hands a connection (or a free slot, null) to the longest-waiting request; false if none waits. */
  #wake(key: string, connection: Connection | null): boolean {
    const queue = this.#waiters.get(key);
    while (queue && queue.length > 0) {
      const waiter = queue.shift()!;
      if (waiter.cancelled) continue;
      waiter.cancelled = true;
      waiter.resolve(connection);
      if (queue.length === 0) this.#waiters.delete(key);
      return true;
    }
    this.#waiters.delete(key);
    return false;
  }

  #sweep(): void {
    const now = performance.now();
    for (const [key, stack] of this.#idle) {
      const keep = stack.filter((c) => now - c.idleSince < this.#idleTimeoutMs && !c.closed);
      for (const connection of stack) if (!keep.includes(connection)) connection.close();
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
  }
}

/** Why an https upstream's certificate was refused; nothing was sent to it. */
export class TlsVerifyError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = "TlsVerifyError";
  }
}

async function connect(origin: Origin): Promise<Deno.Conn> {
  const { hostname, port } = origin;
  if (origin.secure) {
    const caCerts = origin.caCerts === undefined ? undefined : [...origin.caCerts];
    const conn = await Deno.connectTls({ hostname, port, caCerts });
    // The handshake now, before any byte of the request: an upstream whose
    // certificate does not verify gets nothing, and the failure says why.
    try {
      await conn.handshake();
    } catch (error) {
      try {
        conn.close();
      } catch { /* already closed */ }
      const message = error instanceof Error ? error.message : String(error);
      if (/certificate|UnknownIssuer|NotValidForName|BadSignature|Expired/i.test(message)) {
        throw new TlsVerifyError(`TLS certificate not accepted: ${message}`, { cause: error });
      }
      throw error;
    }
    return conn;
  }
  const conn = await Deno.connect({ hostname, port });
  // A request head and its body go out in separate writes: without this,
  // Nagle's algorithm and the peer's delayed ACK hold the body back ~40 ms.
  conn.setNoDelay(true);
  return conn;
}
