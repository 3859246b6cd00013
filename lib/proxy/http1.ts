/**
 * The HTTP/1.1 wire format, as much of it as a proxy's upstream side needs:
 * a buffered reader over a connection, response heads and field syntax (the
 * three body framings are in `http1_body.ts`). Kept free of pooling and
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
  fill(): Promise<boolean> {
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      return pending;
    }
    return this.#read();
  }

  /**
   * Starts a read now without waiting for it (an idle pooled connection):
   * it settles when the peer sends anything or closes. The next fill() or
   * take() consumes it, so no byte is lost if the connection is used after
   * all. Returns the read; a rejection means the connection failed.
   */
  watch(): Promise<boolean> {
    this.#pending ??= this.#read();
    return this.#pending;
  }

  #pending: Promise<boolean> | undefined;

  async #read(): Promise<boolean> {
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
   * null if the stream ends before any byte of a head arrived. A view of
   * the read buffer (a copy costs an ArrayBuffer per response): valid until
   * the next read from this reader.
   */
  async readHead(limit: number): Promise<Uint8Array | null> {
    // Offsets are relative to #start: fill() may move the buffered bytes.
    let scanned = 3;
    for (;;) {
      const b = this.#buffer;
      // Each LF (the native search, not a byte loop) that ends CR LF CR LF.
      for (let i = b.indexOf(LF, this.#start + scanned); i !== -1 && i < this.#end;) {
        if (b[i - 1] === CR && b[i - 2] === LF && b[i - 3] === CR) {
          if (i - 3 - this.#start > limit) {
            throw new ProtocolError(`Upstream response head is larger than ${limit} bytes`);
          }
          const head = b.subarray(this.#start, i - 3);
          this.#start = i + 1;
          return head;
        }
        i = b.indexOf(LF, i + 1);
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
    let scanned = 0;
    for (;;) {
      const b = this.#buffer;
      for (let i = this.#start + scanned; i < this.#end; i++) {
        if (b[i] === LF) {
          // CRLF only: a bare LF (or a CR before anything but LF) is refused,
          // since peers that disagree on line ends disagree on framing.
          if (
            i === this.#start || b[i - 1] !== CR || b.subarray(this.#start, i - 1).includes(CR)
          ) {
            throw new ProtocolError("Upstream sent a line not ended by CRLF");
          }
          const line = latin1(b.subarray(this.#start, i - 1));
          this.#start = i + 1;
          return line;
        }
      }
      scanned = this.#end - this.#start;
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
      // Large bodies bypass the buffer: read straight into a chunk of their own
      // (unless a read into the buffer is already under way).
      if (max >= this.#buffer.length && this.#pending === undefined) {
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

/** How a response's body is delimited (RFC 9112 section 6.3). */
export type Framing = "length" | "chunked" | "close";

/** A parsed response head. */
export interface ResponseHead {
  readonly status: number;
  /** HTTP/1.0 responses close unless they say keep-alive. */
  readonly http10: boolean;
  /**
   * `[name, value, name, value, ...]` as sent, except a Content-Length that
   * Transfer-Encoding overrides: that one is dropped, it describes nothing.
   */
  readonly rawHeaders: string[];
  /** Set when the body is delimited by length. */
  readonly contentLength: number | undefined;
  readonly chunked: boolean;
  /** How the body (if the request and status allow one) is delimited. */
  readonly framing: Framing;
  /**
   * The head says the connection ends after this exchange (Connection:
   * close, HTTP/1.0 without keep-alive, or both length headers). A body
   * delimited by close ends it too.
   */
  readonly connectionClose: boolean;
}

/** RFC 9110 token characters, by char code (1: a token character). */
export const TOKEN: Readonly<Uint8Array> = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  (TOKEN as Uint8Array)[c.charCodeAt(0)] = 1;
}

/** Whether `name` is a valid header field name (an RFC 9110 token). */
export function isFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/**
 * Whether `value` is a valid header field value: visible ASCII, spaces,
 * tabs and obs-text (0x80-0xFF, one byte each on the wire), no CR, LF, NUL
 * or other controls, and no leading or trailing white space (RFC 9110 5.5).
 */
export function isFieldValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  return first !== 0x20 && first !== 0x09 && last !== 0x20 && last !== 0x09;
}

/**
 * `HTTP/1.x NNN[ reason]`: version 1.0 or 1.1, a status of 100-599, and a
 * reason of tabs, spaces, visible ASCII and obs-text. Char checks, no regex.
 */
function isStatusLine(line: string): boolean {
  if (line.length < 12 || !line.startsWith("HTTP/1.")) return false;
  const minor = line.charCodeAt(7);
  const hundreds = line.charCodeAt(9);
  if ((minor !== 0x30 && minor !== 0x31) || line.charCodeAt(8) !== 0x20) return false;
  if (hundreds < 0x31 || hundreds > 0x35 || !isDigit(line.charCodeAt(10))) return false;
  if (!isDigit(line.charCodeAt(11))) return false;
  if (line.length === 12) return true;
  if (line.charCodeAt(12) !== 0x20) return false;
  for (let i = 13; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

const DIGITS = /^\d{1,15}$/;

/**
 * Parses a response head (status line and header lines), strictly: an
 * invalid status line, status outside 100-599, header name or value, a
 * conflicting Content-Length or a Transfer-Encoding other than `chunked`
 * throws ProtocolError, so the proxy answers 502 instead of guessing where
 * the message ends (RFC 9112 sections 4, 5 and 6).
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const lines = latin1(bytes).split("\r\n");
  const statusLine = lines[0];
  if (!isStatusLine(statusLine)) throw new ProtocolError("Upstream sent an invalid status line");
  const rawHeaders: string[] = [];
  let contentLength: number | undefined;
  let codings: string[] | undefined;
  let connection = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    // No name, white space before the colon, or obsolete line folding (RFC 9112 5.1, 5.2).
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!isFieldName(name)) throw new ProtocolError("Upstream sent an invalid header line");
    const value = trimOws(line.slice(colon + 1));
    if (!isFieldValue(value)) {
      throw new ProtocolError(`Upstream sent an invalid value for header "${name}"`);
    }
    rawHeaders.push(name, value);
    // Only the three names that decide framing are compared, by length first.
    const length = name.length;
    if (length !== 14 && length !== 17 && length !== 10) continue;
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      // A list of one repeated value is the same length said twice (RFC 9110 8.6).
      for (const part of value.split(",")) {
        const item = trimOws(part);
        if (!DIGITS.test(item) || (contentLength !== undefined && contentLength !== Number(item))) {
          throw new ProtocolError("Upstream sent an invalid Content-Length");
        }
        contentLength = Number(item);
      }
    } else if (lower === "transfer-encoding") {
      // Every Transfer-Encoding line adds codings; none replaces another.
      codings ??= [];
      for (const part of value.split(",")) {
        const coding = trimOws(part).toLowerCase();
        if (coding !== "") codings.push(coding);
      }
    } else if (lower === "connection") {
      connection += "," + value.toLowerCase();
    }
  }
  const http10 = statusLine.charCodeAt(7) === 0x30;
  let connectionClose = connection.includes("close") ||
    (http10 && !connection.includes("keep-alive"));
  let framing: Framing = contentLength !== undefined ? "length" : "close";
  if (codings !== undefined) {
    // Only a single `chunked` can be decoded and passed on faithfully: another
    // coding would reach the client undeclared once Transfer-Encoding (hop by
    // hop) is removed, and chunked not last means "read until close", which
    // a hostile upstream uses to smuggle. HTTP/1.0 has no Transfer-Encoding.
    if (codings.length !== 1 || codings[0] !== "chunked" || http10) {
      throw new ProtocolError(
        `Upstream sent an unsupported Transfer-Encoding: ${codings.join(", ") || "(empty)"}`,
      );
    }
    framing = "chunked";
    if (contentLength !== undefined) {
      // Both: Transfer-Encoding wins, and a sender that says both cannot be
      // trusted to leave the connection in a known state (RFC 9112 6.3).
      connectionClose = true;
      for (let i = rawHeaders.length - 2; i >= 0; i -= 2) {
        if (rawHeaders[i].toLowerCase() === "content-length") rawHeaders.splice(i, 2);
      }
      contentLength = undefined;
    }
  }
  return {
    status: (statusLine.charCodeAt(9) - 0x30) * 100 + (statusLine.charCodeAt(10) - 0x30) * 10 +
      statusLine.charCodeAt(11) - 0x30,
    http10,
    rawHeaders,
    contentLength,
    chunked: framing === "chunked",
    framing,
    connectionClose,
  };
}

/** Strips optional white space (spaces and tabs) from both ends. */
export function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 0x20 || text.charCodeAt(start) === 0x09)) {
    start++;
  }
  while (end > start && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) {
    end--;
  }
  return start === 0 && end === text.length ? text : text.slice(start, end);
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

/**
 * Encodes a head written by us as bytes, one per character: values were
 * checked to be field syntax, so a character is at most 0xFF (obs-text, one
 * byte on the wire). A plain loop: for a few hundred bytes it is cheaper
 * than a call into the native encoder, and needs no ASCII check first.
 */
export function ascii(text: string): Uint8Array {
  const n = text.length;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
