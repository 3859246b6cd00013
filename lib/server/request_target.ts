/**
 * The request target and the Host header, checked once per request before
 * anything routes on them (RFC 9110 §7.2, RFC 9112 §3.2).
 *
 * Deno hands over `request.url`, not the request line. Probed on Deno 2.9.6
 * (its raw HTTP/1 path), `request.url` is:
 *
 * - origin-form `GET /p?q`: `http://` + the Host header as sent (OWS
 *   trimmed) + the target; without a Host header (or an empty one), Deno's
 *   fallback authority instead (see {@linkcode fallbackAuthority});
 * - absolute-form `GET http://other.example/p`: the target itself (scheme,
 *   authority and path as the client wrote them; the Host header ignored);
 * - authority-form `CONNECT a:443`: `http://a:443`, no path at all;
 * - asterisk-form `OPTIONS *`: `http://host/*`, the same string as
 *   `OPTIONS /*`;
 * - HTTP/2 (h2c): `http://` + `:authority` + path, usually with no Host.
 *
 * So a Host header such as `a/raw/echo?` would move the real target into
 * the query. The path is taken only from after an authority that has been
 * checked to be a plain `host[:port]`, and nothing the client sends can end
 * up in the path except the target's own path. Deno does not say which HTTP
 * version a request used; it does refuse two Host headers itself (400).
 */
import { directLink } from "../pipeline/compose.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { Middleware, RequestContext } from "../pipeline/types.ts";

/** The path and query of a request target, or why the request is refused. */
export interface RequestTarget {
  /** Path as sent, without the query and fragment; `/` when the target has none. */
  readonly rawPath: string;
  /** Query including the leading `?`, or "". */
  readonly query: string;
  /** Set when the request must not be routed; the error boundary answers it. */
  readonly refusal: GatewayError | undefined;
}

/** What {@linkcode requestTarget} reads of a request. */
export type TargetSource = Pick<Request, "method" | "url" | "headers">;

/**
 * Splits `request.url` into the target's path and query, refusing what
 * cannot be routed safely:
 *
 * - `CONNECT`: 501 `not_implemented`. Not 405: 405 says the target resource
 *   exists but does not allow the method, and must list in `Allow` what it
 *   does; a CONNECT target is a tunnel endpoint, not a resource of this
 *   server, and the gateway tunnels to no target at all (RFC 9110 §15.6.2).
 * - a Host header (or absolute-form authority) that is not `host[:port]`: 400.
 * - no Host header on an origin-form HTTP/1.x request: 400. RFC 9112
 *   requires Host on HTTP/1.1 only, but Deno does not expose the version,
 *   so HTTP/1.0 without Host is refused too. Such a request is recognised
 *   by Deno's fallback authority in the URL. An HTTP/2 request names its
 *   authority in `:authority` and passes (unless that equals the fallback
 *   exactly); so does an absolute-form target without Host, which Deno
 *   cannot tell from HTTP/2 either. Its path still comes from the target.
 * - `OPTIONS *`: 400, because Deno reports it exactly as `OPTIONS /*`, and
 *   answering either locally would be a guess. Neither is forwarded.
 * - an absolute-form target whose scheme is not http or https: 400.
 *
 * A char loop, no regex and no URL parsing: this runs for every request.
 */
export function requestTarget(request: TargetSource, localAddr: Deno.NetAddr): RequestTarget {
  const method = request.method;
  if (method === "CONNECT") return refused(connectRefusal());
  const url = request.url;
  const host = request.headers.get("host");
  if (host !== null && !isValidAuthority(host)) {
    return refused(badRequest("The Host header must be host[:port]"));
  }

  const schemeEnd = url.indexOf("://");
  if (!isHttpScheme(url, schemeEnd)) {
    return refused(badRequest("The request target must be an http or https URI"));
  }
  const start = schemeEnd + 3;
  // Deno ends an absolute-form authority at the first "/" or "?" (a "#"
  // stays in it and fails the check below); a valid Host contains neither.
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === SLASH || c === QUESTION) break;
    end++;
  }
  const sameAsHost = host !== null && end - start === host.length && url.startsWith(host, start);
  if (!sameAsHost) {
    const authority = url.slice(start, end);
    if (host === null && authority === fallbackAuthority(localAddr)) {
      return refused(badRequest("The request has no Host header"));
    }
    if (!isValidAuthority(authority)) {
      return refused(
        badRequest("The authority of the request target must be host[:port]"),
      );
    }
  }

  let rawPath = "/";
  let query = "";
  if (end < url.length) {
    const hash = url.indexOf("#", end);
    const stop = hash === -1 ? url.length : hash;
    if (url.charCodeAt(end) === SLASH) {
      const q = url.indexOf("?", end);
      if (q !== -1 && q < stop) {
        rawPath = url.slice(end, q);
        query = url.slice(q, stop);
      } else {
        rawPath = url.slice(end, stop);
      }
    } else {
      query = url.slice(end, stop);
    }
  }
  if (method === "OPTIONS" && query === "" && rawPath === "/*") {
    return { rawPath, query, refusal: badRequest("OPTIONS * (and OPTIONS /*) is not supported") };
  }
  return { rawPath, query, refusal: undefined };
}

/**
 * The authority Deno writes into `request.url` when a request names none
 * (no Host header), derived from the local address the client connected to:
 * `localhost:PORT` on a loopback or unspecified address, else `ADDRESS:PORT`;
 * the port is left out for port 80.
 */
export function fallbackAuthority(localAddr: Deno.NetAddr): string {
  const ip = localAddr.hostname;
  const local = ip.startsWith("127.") || ip === "::1" || ip === "0.0.0.0" || ip === "::";
  if (localAddr.port === 80) return local ? "localhost" : ip;
  if (local) return `localhost:${localAddr.port}`;
  return ip.includes(":") ? `[${ip}]:${localAddr.port}` : `${ip}:${localAddr.port}`;
}

/**
 * True for `host[:port]` as RFC 3986 spells it: a reg-name (unreserved,
 * sub-delims, %XX; an IPv4 address is one), or an IPv6 address in brackets
 * (no zone id, no IPvFuture); the port, when there is a colon, 1 to 5 digits
 * and at most 65535. Empty hosts and empty ports are refused.
 */
export function isValidAuthority(text: string): boolean {
  const n = text.length;
  if (n === 0) return false;
  let hostEnd: number;
  if (text.charCodeAt(0) === OPEN_BRACKET) {
    const close = text.indexOf("]");
    if (close === -1 || !isIPv6(text, 1, close)) return false;
    hostEnd = close + 1;
    if (hostEnd < n && text.charCodeAt(hostEnd) !== COLON) return false;
  } else {
    hostEnd = n;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === COLON) {
        hostEnd = i;
        break;
      }
      if (c === PERCENT) {
        if (i + 2 >= n || !isHex(text.charCodeAt(i + 1)) || !isHex(text.charCodeAt(i + 2))) {
          return false;
        }
        i += 2;
      } else if (c >= 128 || REG_NAME[c] === 0) {
        return false;
      }
    }
    if (hostEnd === 0) return false;
  }
  return hostEnd === n || isPort(text, hostEnd + 1, n);
}

/** The request's refusal, if {@linkcode requestTarget} found one: thrown inside the error boundary. */
export interface TargetChecked {
  readonly targetRefusal: GatewayError | undefined;
}

/**
 * The first link after the error boundary: a request whose target or Host
 * was refused is answered here (and logged and counted like any other),
 * before anything routes on its path.
 */
export function refuseBadTarget(): Middleware {
  return directLink(function refuseBadTarget(ctx: RequestContext & Partial<TargetChecked>, rest) {
    const refusal = ctx.targetRefusal;
    return refusal === undefined ? rest(ctx) : Promise.reject(refusal);
  });
}

function refused(refusal: GatewayError): RequestTarget {
  return { rawPath: "/", query: "", refusal };
}

function connectRefusal(): GatewayError {
  return new GatewayError(
    501,
    "not_implemented",
    "CONNECT is not supported: Vanguard is a gateway, not a forward proxy",
  );
}

function badRequest(message: string): GatewayError {
  return new GatewayError(400, "bad_request", message);
}

const SLASH = 0x2f;
const QUESTION = 0x3f;
const COLON = 0x3a;
const PERCENT = 0x25;
const OPEN_BRACKET = 0x5b;
const DOT = 0x2e;

/** reg-name characters (RFC 3986 §3.2.2) other than %: ALPHA DIGIT - . _ ~ ! $ & ' ( ) * + , ; = */
const REG_NAME = (() => {
  const table = new Uint8Array(128);
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=";
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
})();

/** `http://` or `https://` (any case) at the start of `url`, ending at `schemeEnd`. */
function isHttpScheme(url: string, schemeEnd: number): boolean {
  if (schemeEnd !== 4 && schemeEnd !== 5) return false;
  if ((url.charCodeAt(0) | 0x20) !== 0x68) return false; // h
  if ((url.charCodeAt(1) | 0x20) !== 0x74) return false; // t
  if ((url.charCodeAt(2) | 0x20) !== 0x74) return false; // t
  if ((url.charCodeAt(3) | 0x20) !== 0x70) return false; // p
  return schemeEnd === 4 || (url.charCodeAt(4) | 0x20) === 0x73; // s
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** 1 to 5 digits, at most 65535. */
function isPort(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > 5) return false;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) return false;
    value = value * 10 + (c - 0x30);
  }
  return value <= 65535;
}

/** RFC 3986 IPv6address in text[start, end): 8 groups, or fewer with one "::", optionally ending in IPv4. */
function isIPv6(text: string, start: number, end: number): boolean {
  let groups = 0;
  let compressed = false;
  let i = start;
  if (end - start >= 2 && text.charCodeAt(i) === COLON && text.charCodeAt(i + 1) === COLON) {
    compressed = true;
    i += 2;
  } else if (i < end && text.charCodeAt(i) === COLON) {
    return false;
  }
  while (i < end) {
    let j = i;
    while (j < end && j - i < 5 && isHex(text.charCodeAt(j))) j++;
    if (j < end && text.charCodeAt(j) === DOT) {
      // The last 32 bits as a dotted quad.
      if (!isIPv4(text, i, end)) return false;
      groups += 2;
      break;
    }
    const length = j - i;
    if (length === 0 || length > 4) return false;
    groups++;
    if (j === end) break;
    if (text.charCodeAt(j) !== COLON) return false;
    j++;
    if (j < end && text.charCodeAt(j) === COLON) {
      if (compressed) return false;
      compressed = true;
      j++;
    } else if (j === end) {
      return false;
    }
    i = j;
  }
  return compressed ? groups <= 7 : groups === 8;
}

/** Four dec-octets (0-255, no leading zeros) in text[start, end). */
function isIPv4(text: string, start: number, end: number): boolean {
  let octets = 0;
  let i = start;
  while (octets < 4) {
    let j = i;
    let value = 0;
    while (j < end && isDigit(text.charCodeAt(j))) {
      value = value * 10 + (text.charCodeAt(j) - 0x30);
      j++;
    }
    const length = j - i;
    if (length === 0 || length > 3 || value > 255) return false;
    if (length > 1 && text.charCodeAt(i) === 0x30) return false;
    octets++;
    if (octets === 4) return j === end;
    if (j >= end || text.charCodeAt(j) !== DOT) return false;
    i = j + 1;
  }
  return false;
}
