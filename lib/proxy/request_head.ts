/**
 * The upstream request head, written only from valid HTTP/1.1 syntax: the
 * one place a request's method, target and headers become bytes.
 */
import type { UpstreamRequest } from "./exchange.ts";
import { ascii, isFieldName, isFieldValue } from "./http1.ts";
import { UpstreamError } from "./upstream_error.ts";

const BODYLESS_METHODS_WITH_LENGTH = new Set(["POST", "PUT", "PATCH"]);

/**
 * The request head for `host` (`host:port`), refusing (UpstreamError
 * `invalid_request`, nothing written) any method, target, header name or
 * value that is not valid HTTP/1.1 syntax, whatever its source: a JWT claim,
 * a plugin, the config or the client. A CR or LF in a value would otherwise
 * start a header or a whole request of the sender's choosing.
 */
export function requestHead(req: UpstreamRequest, host: string): Uint8Array {
  if (!isFieldName(req.method) || !isRequestTarget(req.path)) {
    throw invalidRequest("The request method or target is not valid HTTP/1.1 syntax");
  }
  const sentHost = req.host ?? host;
  if (!isFieldValue(sentHost) || sentHost === "") {
    throw invalidRequest("The Host is not valid HTTP field syntax");
  }
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${sentHost}\r\n`;
  let hasLength = false;
  for (const name in req.headers) {
    if (name === "host" || name === "transfer-encoding") continue;
    if (name === "content-length") {
      if (req.body === null) continue;
      hasLength = true;
    }
    const value = req.headers[name];
    if (!isFieldName(name)) throw invalidRequest("A header name is not a valid HTTP token");
    if (!isFieldValue(value)) {
      throw invalidRequest(`Header "${name}" has a value that is not valid HTTP field syntax`);
    }
    head += `${name}: ${value}\r\n`;
  }
  if (req.body !== null && !hasLength) head += "transfer-encoding: chunked\r\n";
  if (req.body === null && BODYLESS_METHODS_WITH_LENGTH.has(req.method)) {
    head += "content-length: 0\r\n";
  }
  return ascii(head + "\r\n");
}

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
