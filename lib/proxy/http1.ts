/**
 * The HTTP/1.1 wire format, as much of it as a proxy's upstream side needs:
 * a buffered reader over a connection, response heads, and the three body
 * framings (Content-Length, chunked, until close). Kept free of pooling and
 * policy so it can be tested on its own.
 */

/** The peer broke the protocol or the connection ended early. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

const CR = 13;
const LF = 10;

/** Reads from a connection through one buffer, so bytes after a head stay for the body. */
export class BufferedReader {
  readonly #conn: Deno.Conn;
  #buffer: Uint8Array<ArrayBuffer>;
  #start = 0;
  #end = 0;
  /** Total bytes ever received (0 means the peer sent nothing yet). */
  received = 0;

  constructor(conn: Deno.Conn, size = 16 * 1024) {
    this.#conn = conn;
    this.#buffer = new Uint8Array(size);
  }

  /** Bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Reads more into the buffer; false at end of stream. */
  async fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#end === this.#buffer.length) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer.subarray(0, this.#end));
        this.#buffer = bigger;
      }
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.received += n;
    return true;
  }

  /**
   * The bytes up to the blank line that ends a message head, without it;
   * null if the stream ends before any byte of a head arrived.
   */
  async readHead(limit: number): Promise<Uint8Array | null> {
    // Offsets are relative to #start: fill() may move the buffered bytes.
    let scanned = 3;
    for (;;) {
      const b = this.#buffer;
      for (let i = this.#start + scanned; i < this.#end; i++) {
        if (b[i] === LF && b[i - 1] === CR && b[i - 2] === LF && b[i - 3] === CR) {
          const head = b.slice(this.#start, i - 3);
          this.#start = i + 1;
          return head;
        }
      }
      scanned = Math.max(3, this.#end - this.#start);
      if (this.#end - this.#start > limit) {
        throw new ProtocolError(`Upstream response head is larger than ${limit} bytes`);
      }
      if (!(await this.fill())) {
        if (this.#end === this.#start) return null;
        throw new ProtocolError("Upstream connection closed in the middle of a response head");
      }
    }
  }

  /** One CRLF-terminated line, without the CRLF (chunk sizes, trailers). */
  async readLine(limit: number): Promise<string> {
    let scanned = 1;
    for (;;) {
      const b = this.#buffer;
      for (let i = this.#start + scanned; i < this.#end; i++) {
        if (b[i] === LF && b[i - 1] === CR) {
          const line = latin1(b.subarray(this.#start, i - 1));
          this.#start = i + 1;
          return line;
        }
      }
      scanned = Math.max(1, this.#end - this.#start);
      if (this.#end - this.#start > limit) throw new ProtocolError("Chunk line too long");
      if (!(await this.fill())) {
        throw new ProtocolError("Upstream connection closed before the response body ended");
      }
    }
  }

  /** Exactly `n` already-buffered bytes (n <= buffered), copied, without touching the connection. */
  takeBuffered(n: number): Uint8Array<ArrayBuffer> {
    const chunk = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    return chunk;
  }

  /**
   * Up to `max` bytes, a fresh copy the caller may keep; reads from the
   * connection only when nothing is buffered. Null at end of stream.
   */
  async take(max: number): Promise<Uint8Array | null> {
    if (this.buffered === 0) {
      // Large bodies bypass the buffer: read straight into a chunk of their own.
      if (max >= this.#buffer.length) {
        const chunk = new Uint8Array(Math.min(max, 64 * 1024));
        const n = await this.#conn.read(chunk);
        if (n === null) return null;
        this.received += n;
        return chunk.subarray(0, n);
      }
      if (!(await this.fill())) return null;
    }
    const n = Math.min(max, this.buffered);
    const chunk = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    return chunk;
  }
}

/** A parsed response head. */
export interface ResponseHead {
  readonly status: number;
  /** HTTP/1.0 responses close unless they say keep-alive. */
  readonly http10: boolean;
  /** `[name, value, name, value, ...]` as sent. */
  readonly rawHeaders: string[];
  /** Lower-cased values of the headers framing needs. */
  readonly contentLength: number | undefined;
  readonly chunked: boolean;
  readonly connectionClose: boolean;
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;

/** Parses a response head (status line and header lines). */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const lines = latin1(bytes).split("\r\n");
  const status = STATUS_LINE.exec(lines[0]);
  if (status === null) throw new ProtocolError("Upstream sent an invalid status line");
  const rawHeaders: string[] = [];
  let contentLength: number | undefined;
  let chunked = false;
  let connection = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) {
      // no name, or obsolete line folding (RFC 9112 5.2): refuse rather than guess
      throw new ProtocolError("Upstream sent an invalid header line");
    }
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      if (
        !/^\d{1,15}$/.test(value) ||
        (contentLength !== undefined && contentLength !== Number(value))
      ) {
        throw new ProtocolError("Upstream sent an invalid Content-Length");
      }
      contentLength = Number(value);
    } else if (lower === "transfer-encoding") {
      chunked = value.toLowerCase().split(",").map((c) => c.trim()).includes("chunked");
    } else if (lower === "connection") {
      connection += "," + value.toLowerCase();
    }
  }
  const http10 = status[1] === "0";
  const connectionClose = connection.includes("close") ||
    (http10 && !connection.includes("keep-alive"));
  // With both, Transfer-Encoding wins and the message cannot be trusted to
  // leave the connection in a known state (RFC 9112 6.3): close it after.
  return {
    status: Number(status[2]),
    http10,
    rawHeaders,
    contentLength: chunked ? undefined : contentLength,
    chunked,
    connectionClose: connectionClose || (chunked && contentLength !== undefined),
  };
}

const ASCII = new TextDecoder("utf-8");

/** Decodes bytes as Latin-1 (what HTTP/1.1 heads are, byte for character). */
export function latin1(bytes: Uint8Array): string {
  // Heads are nearly always ASCII, where any decoder agrees and the native
  // one is three times faster than building the string here.
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return ASCII.decode(bytes);
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

/** Encodes a head written by us (ASCII only, values validated by Headers) as bytes. */
export function ascii(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

/**
 * Reads one chunked body, yielding data as it arrives; throws ProtocolError
 * when the stream ends before the last chunk.
 */
export async function* chunkedBody(reader: BufferedReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const line = await reader.readLine(4096);
    const size = parseInt(line.split(";")[0].trim(), 16);
    if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line.trim())) {
      throw new ProtocolError("Upstream sent an invalid chunk size");
    }
    if (size === 0) {
      // trailers, then the blank line
      while ((await reader.readLine(8192)) !== "");
      return;
    }
    yield* fixedBody(reader, size);
    if ((await reader.readLine(2)) !== "") throw new ProtocolError("Chunk data too long");
  }
}

/** Reads exactly `length` bytes of body. */
export async function* fixedBody(
  reader: BufferedReader,
  length: number,
): AsyncGenerator<Uint8Array> {
  let left = length;
  while (left > 0) {
    const data = await reader.take(left);
    if (data === null) {
      throw new ProtocolError("Upstream connection closed before the response body ended");
    }
    left -= data.byteLength;
    yield data;
  }
}

/** Reads until the peer closes. */
export async function* untilClose(reader: BufferedReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const data = await reader.take(64 * 1024);
    if (data === null) return;
    yield data;
  }
}
