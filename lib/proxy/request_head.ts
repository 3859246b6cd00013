/**
 * The upstream request head, written only from valid HTTP/1.1 syntax: the
 * one place a request's method, target and headers become bytes.
 */
import type { UpstreamRequest } from "./exchange.ts";
import { isFieldName, TOKEN } from "./http1.ts";
import { UpstreamError } from "./upstream_error.ts";

const BODYLESS_METHODS_WITH_LENGTH = new Set(["POST", "PUT", "PATCH"]);

/**
 * The request head for `host` (`host:port`), refusing (UpstreamError
 * `invalid_request`, nothing written) any method, target, header name or
 * value that is not valid HTTP/1.1 syntax, whatever its source: a JWT claim,
 * a plugin, the config or the client. A CR or LF in a value would otherwise
 * start a header or a whole request of the sender's choosing.
 *
 * Each piece is checked as it is copied into bytes (one pass per character,
 * no head string built and then encoded). The bytes are a view of a buffer
 * shared by all heads: valid until the next call, so the caller copies them
 * (into its connection's own buffer) before anything else can run.
 */
export function requestHead(req: UpstreamRequest, host: string): Uint8Array {
  const head = new HeadBytes();
  if (!isFieldName(req.method) || !isRequestTarget(req.path)) {
    throw invalidRequest("The request method or target is not valid HTTP/1.1 syntax");
  }
  head.ascii(req.method);
  head.ascii(" ");
  head.ascii(req.path);
  head.ascii(" HTTP/1.1\r\nhost: ");
  const sentHost = req.host ?? host;
  if (sentHost === "" || !head.value(sentHost)) {
    throw invalidRequest("The Host is not valid HTTP field syntax");
  }
  head.ascii("\r\n");
  let hasLength = false;
  for (const name in req.headers) {
    if (name === "host" || name === "transfer-encoding") continue;
    if (name === "content-length") {
      if (req.body === null) continue;
      hasLength = true;
    }
    if (!head.name(name)) throw invalidRequest("A header name is not a valid HTTP token");
    head.ascii(": ");
    if (!head.value(req.headers[name])) {
      throw invalidRequest(`Header "${name}" has a value that is not valid HTTP field syntax`);
    }
    head.ascii("\r\n");
  }
  if (req.body !== null && !hasLength) head.ascii("transfer-encoding: chunked\r\n");
  if (req.body === null && BODYLESS_METHODS_WITH_LENGTH.has(req.method)) {
    head.ascii("content-length: 0\r\n");
  }
  head.ascii("\r\n");
  return head.take();
}

/**
 * Bytes of one head, in a scratch buffer shared by all heads (a head is
 * built start to finish in one synchronous call, then copied out).
 */
class HeadBytes {
  #bytes = scratch;
  #size = 0;

  /** Text already known to be valid (literals, a checked method or target). */
  ascii(text: string): void {
    const bytes = this.#room(text.length);
    let at = this.#size;
    for (let i = 0; i < text.length; i++) bytes[at++] = text.charCodeAt(i);
    this.#size = at;
  }

  /** A header name, copied if it is an RFC 9110 token; false (nothing kept) if not. */
  name(name: string): boolean {
    const n = name.length;
    if (n === 0) return false;
    const bytes = this.#room(n);
    const at = this.#size;
    for (let i = 0; i < n; i++) {
      const c = name.charCodeAt(i);
      if (c >= 128 || TOKEN[c] === 0) return false;
      bytes[at + i] = c;
    }
    this.#size = at + n;
    return true;
  }

  /**
   * A header value, copied if it is field syntax (as isFieldValue in http1.ts: no
   * controls but tab, obs-text as one byte each, no white space at either
   * end); false (nothing kept) if not.
   */
  value(value: string): boolean {
    const n = value.length;
    if (n === 0) return true;
    const bytes = this.#room(n);
    const at = this.#size;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
      bytes[at + i] = c;
    }
    const first = bytes[at];
    const last = bytes[at + n - 1];
    if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
    this.#size = at + n;
    return true;
  }

  /** The head's bytes, a view of the shared buffer. */
  take(): Uint8Array {
    return this.#bytes.subarray(0, this.#size);
  }

  #room(n: number): Uint8Array {
    if (this.#size + n > this.#bytes.length) {
      const bigger = new Uint8Array(Math.max(this.#bytes.length * 2, this.#size + n));
      bigger.set(this.#bytes.subarray(0, this.#size));
      this.#bytes = bigger;
      // Kept for the next heads only up to a size: one huge head must not stay in memory.
      if (bigger.length <= KEPT_SCRATCH_BYTES) scratch = bigger;
    }
    return this.#bytes;
  }
}

let scratch = new Uint8Array(8 * 1024);
/** The largest shared head buffer kept between heads. */
const KEPT_SCRATCH_BYTES = 16 * 1024;

function invalidRequest(message: string): UpstreamError {
  return new UpstreamError("invalid_request", message, {
    bodyStarted: false,
    reusedConnection: false,
  });
}

/** An origin-form target: visible ASCII only (RFC 9112 3.2). */
export function isRequestTarget(target: string): boolean {
  if (target.length === 0 || target.charCodeAt(0) !== 0x2f) return false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}
