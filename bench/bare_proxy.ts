/**
 * The runtime's ceiling for `deno task bench`: Deno.serve in front of a
 * minimal pooled HTTP/1.1 client on Deno.connect, and nothing else (no
 * routing, no header policy, no timeouts, no logging, no metrics). What a
 * Deno process can proxy at all, to compare the gateway with.
 *
 *   deno run --allow-net=127.0.0.1 bench/bare_proxy.ts LISTEN_PORT UPSTREAM_PORT
 *
 * Small, and correct enough for the bench's backends: keep-alive pool,
 * Content-Length, chunked and close-delimited response bodies, streamed
 * through as they arrive (a body that came whole with the head is passed as
 * bytes). Request bodies are read whole and sent with a Content-Length. Not
 * the gateway's client, on purpose: it shares no code with `lib/`.
 */

const CR = 13;
const LF = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Request headers not forwarded (hop-by-hop; the length is recomputed). */
const DROP_REQUEST = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/** Response headers not passed back (hop-by-hop; Deno.serve frames the body itself). */
const DROP_RESPONSE = DROP_REQUEST;

/** One upstream connection and its read buffer (bytes after a head stay for the body). */
class Upstream {
  readonly conn: Deno.TcpConn;
  buffer: Uint8Array<ArrayBuffer> = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  /** Bytes received on this connection so far (0: a reused connection that died idle). */
  received = 0;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  get buffered(): number {
    return this.end - this.start;
  }

  /** Reads more bytes; false at end of stream. */
  async fill(): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buffer.length) {
      if (this.start > 0) {
        this.buffer.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const bigger = new Uint8Array(this.buffer.length * 2);
        bigger.set(this.buffer);
        this.buffer = bigger;
      }
    }
    const n = await this.conn.read(this.buffer.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    this.received += n;
    return true;
  }

  /** The bytes before the next CRLF CRLF, as text; null if the stream ended before any byte. */
  async readHead(): Promise<string | null> {
    // Offsets relative to start: fill() may move the buffered bytes to the front.
    let scanned = 3;
    for (;;) {
      const b = this.buffer;
      for (let i = this.start + scanned; i < this.end; i++) {
        if (b[i] === LF && b[i - 1] === CR && b[i - 2] === LF && b[i - 3] === CR) {
          const head = decoder.decode(b.subarray(this.start, i - 3));
          this.start = i + 1;
          return head;
        }
      }
      if (this.buffered > 64 * 1024) throw new Error("Response head too large");
      scanned = Math.max(3, this.buffered);
      if (!(await this.fill())) {
        if (this.buffered === 0) return null;
        throw new Error("Upstream closed in a response head");
      }
    }
  }

  /** One line without its CRLF (chunk sizes, trailers). */
  async readLine(): Promise<string> {
    // Offsets relative to start: fill() may move the buffered bytes to the front.
    let scanned = 0;
    for (;;) {
      for (let i = this.start + scanned; i < this.end; i++) {
        if (this.buffer[i] === LF) {
          const line = decoder.decode(this.buffer.subarray(this.start, i));
          this.start = i + 1;
          return line.endsWith("\r") ? line.slice(0, -1) : line;
        }
      }
      if (this.buffered > 8 * 1024) throw new Error("Chunk line too long");
      scanned = this.buffered;
      if (!(await this.fill())) throw new Error("Upstream closed in a chunk line");
    }
  }

  /**
   * Up to `max` body bytes: buffered ones first (copied, the buffer is
   * reused), else read straight into a fresh buffer; null at end of stream.
   */
  async readBody(max: number): Promise<Uint8Array<ArrayBuffer> | null> {
    if (this.buffered > 0) return this.take(max);
    const bytes = new Uint8Array(Math.min(max, 64 * 1024));
    const n = await this.conn.read(bytes);
    if (n === null) return null;
    this.received += n;
    return bytes.subarray(0, n);
  }

  /** Up to `max` buffered bytes, copied (the buffer is reused). */
  take(max: number): Uint8Array<ArrayBuffer> {
    const n = Math.min(max, this.buffered);
    const bytes = this.buffer.slice(this.start, this.start + n);
    this.start += n;
    return bytes;
  }

  async writeAll(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** Idle keep-alive connections to the upstream, most recently used last. */
class Pool {
  readonly #idle: Upstream[] = [];
  readonly #port: number;

  constructor(port: number) {
    this.#port = port;
  }

  /** An idle connection (reused: true) or a new one. */
  async acquire(): Promise<{ upstream: Upstream; reused: boolean }> {
    const idle = this.#idle.pop();
    if (idle) return { upstream: idle, reused: true };
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.#port });
    conn.setNoDelay(true);
    return { upstream: new Upstream(conn), reused: false };
  }

  /** Gives a connection back after a complete response (with nothing left over). */
  release(upstream: Upstream): void {
    if (upstream.buffered === 0 && this.#idle.length < 512) this.#idle.push(upstream);
    else upstream.close();
  }
}

/** What the head of a response says about it. */
interface ResponseHead {
  status: number;
  statusText: string;
  headers: [string, string][];
  contentLength: number | undefined;
  chunked: boolean;
  keepAlive: boolean;
}

function parseHead(text: string): ResponseHead {
  const lines = text.split("\r\n");
  const statusLine = lines[0].match(/^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/);
  if (!statusLine) throw new Error(`Bad status line ${JSON.stringify(lines[0])}`);
  const head: ResponseHead = {
    status: Number(statusLine[2]),
    statusText: statusLine[3] ?? "",
    headers: [],
    contentLength: undefined,
    chunked: false,
    keepAlive: statusLine[1] === "1",
  };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`Bad header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d+$/.test(value)) throw new Error(`Bad Content-Length ${value}`);
      head.contentLength = Number(value);
    } else if (name === "transfer-encoding") {
      head.chunked = value.toLowerCase().split(",").at(-1)?.trim() === "chunked";
      if (!head.chunked) head.keepAlive = false; // close-delimited
    } else if (name === "connection") {
      const tokens = value.toLowerCase().split(",").map((token) => token.trim());
      if (tokens.includes("close")) head.keepAlive = false;
      else if (tokens.includes("keep-alive")) head.keepAlive = true;
    }
    if (!DROP_RESPONSE.has(name)) head.headers.push([name, value]);
  }
  return head;
}

/** The response body as a stream that reads the upstream as the client reads it. */
function streamBody(
  upstream: Upstream,
  head: ResponseHead,
  done: () => void,
): ReadableStream<Uint8Array> {
  let remaining = head.chunked ? 0 : head.contentLength ?? Infinity;
  let finished = false;
  async function next(): Promise<Uint8Array | null> {
    if (head.chunked) {
      if (remaining === 0) {
        const size = parseInt((await upstream.readLine()).split(";")[0].trim(), 16);
        if (!Number.isFinite(size) || size < 0) throw new Error("Bad chunk size");
        if (size === 0) {
          while ((await upstream.readLine()) !== "") { /* trailers: dropped */ }
          return null;
        }
        remaining = size;
      }
      const bytes = await upstream.readBody(remaining);
      if (bytes === null) throw new Error("Upstream closed in a chunk");
      remaining -= bytes.length;
      if (remaining === 0 && (await upstream.readLine()) !== "") {
        throw new Error("Chunk not followed by CRLF");
      }
      return bytes;
    }
    if (remaining === 0) return null;
    const bytes = await upstream.readBody(remaining);
    if (bytes === null) {
      if (remaining === Infinity) return null; // close-delimited: this is the end
      throw new Error("Upstream closed before the end of the body");
    }
    remaining -= bytes.length;
    return bytes;
  }
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const bytes = await next();
        if (bytes === null) {
          finished = true;
          controller.close();
          done();
        } else {
          controller.enqueue(bytes);
        }
      } catch (error) {
        upstream.close();
        controller.error(error);
      }
    },
    cancel() {
      if (!finished) upstream.close();
    },
  });
}

/** Proxies one request to the upstream behind `pool`. */
async function proxy(pool: Pool, request: Request): Promise<Response> {
  const url = request.url;
  const target = url.slice(url.indexOf("/", url.indexOf("//") + 2));
  const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
  let text = `${request.method} ${target} HTTP/1.1\r\n`;
  request.headers.forEach((value, name) => {
    if (!DROP_REQUEST.has(name)) text += `${name}: ${value}\r\n`;
  });
  if (body) text += `content-length: ${body.length}\r\n`;
  const requestHead = encoder.encode(text + "\r\n");
  const idempotent = request.method === "GET" || request.method === "HEAD";

  for (let attempt = 0;; attempt++) {
    const { upstream, reused } = await pool.acquire();
    try {
      await upstream.writeAll(requestHead);
      if (body) await upstream.writeAll(body);
      let headText = await upstream.readHead();
      let head = headText === null ? undefined : parseHead(headText);
      while (head && head.status >= 100 && head.status < 200 && head.status !== 101) {
        headText = await upstream.readHead();
        head = headText === null ? undefined : parseHead(headText);
      }
      if (head === undefined) throw new Error("Upstream closed without a response");
      return respond(pool, upstream, head, request.method === "HEAD");
    } catch (error) {
      upstream.close();
      // A pooled connection the upstream closed while idle: try once more on a new one.
      if (reused && upstream.received === 0 && idempotent && attempt === 0) continue;
      return new Response(`Bad gateway: ${(error as Error).message}\n`, { status: 502 });
    }
  }
}

function respond(pool: Pool, upstream: Upstream, head: ResponseHead, isHead: boolean): Response {
  const init = { status: head.status, statusText: head.statusText, headers: head.headers };
  const done = () => head.keepAlive ? pool.release(upstream) : upstream.close();
  const noBody = isHead || head.status === 204 || head.status === 304;
  if (noBody || (!head.chunked && head.contentLength === 0)) {
    done();
    return new Response(null, init);
  }
  if (
    !head.chunked && head.contentLength !== undefined && upstream.buffered >= head.contentLength
  ) {
    // The whole body came with the head (small responses): pass the bytes.
    const bytes = upstream.take(head.contentLength);
    done();
    return new Response(bytes, init);
  }
  if (!head.chunked && head.contentLength === undefined) head.keepAlive = false;
  return new Response(streamBody(upstream, head, done), init);
}

if (import.meta.main) {
  const [listenPort, upstreamPort] = Deno.args.map(Number);
  if (!(listenPort > 0 && upstreamPort > 0)) {
    console.error("Usage: bare_proxy.ts LISTEN_PORT UPSTREAM_PORT");
    Deno.exit(2);
  }
  const pool = new Pool(upstreamPort);
  Deno.serve(
    { hostname: "127.0.0.1", port: listenPort, onListen() {} },
    (request) => proxy(pool, request),
  );
}
