/**
 * What the proxy forwards of a request and of a response: the canonical
 * Content-Length, the upstream path, the request headers (hop-by-hop
 * removed, forwarding headers set) and the response headers for the client.
 */
import { GatewayError } from "../pipeline/errors.ts";
import type { RequestContext } from "../pipeline/types.ts";
import { connectionNamed, isHopByHop } from "./headers.ts";

/**
 * The request's Content-Length, canonical: one value, or the same value
 * repeated (`74, 74`, which Deno's server makes of two identical headers).
 * Anything else, or a Content-Length together with Transfer-Encoding, is
 * refused with 400: a lenient upstream could read the difference as a
 * second request.
 */
export function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null) return undefined;
  if (headers.has("transfer-encoding")) {
    throw new GatewayError(
      400,
      "bad_request",
      "A request must not carry both Content-Length and Transfer-Encoding",
    );
  }
  let length: number | undefined;
  for (const part of value.split(",")) {
    const item = part.trim();
    if (!/^\d{1,15}$/.test(item) || (length !== undefined && Number(item) !== length)) {
      throw new GatewayError(400, "bad_request", "The request's Content-Length is invalid");
    }
    length = Number(item);
  }
  return length;
}

export function upstreamPath(ctx: RequestContext): string {
  const route = ctx.route!;
  let path = ctx.encodedPath;
  if (route.stripPrefix && route.prefixSegments > 0) {
    const segments = path.split("/");
    path = "/" + segments.slice(1 + route.prefixSegments).join("/");
  }
  return path + ctx.query;
}

/** Header overrides with lower-case names (plugins may write `X-Tenant`). */
function lowerCaseNames(
  overrides: Record<string, string | null> | undefined,
): Record<string, string | null> | undefined {
  if (overrides === undefined) return undefined;
  for (const name in overrides) {
    if (name !== name.toLowerCase()) {
      const lower: Record<string, string | null> = {};
      for (const key in overrides) lower[key.toLowerCase()] = overrides[key];
      return lower;
    }
  }
  return overrides;
}

export function upstreamHeaders(ctx: RequestContext): Record<string, string> {
  const source = ctx.request.headers;
  const named = connectionNamed(source.get("connection"));
  const overrides = lowerCaseNames(ctx.upstreamHeaders);
  const out: Record<string, string> = {};
  // forEach: measured 5x cheaper than iterating Headers with for...of.
  const trusted = ctx.peerTrusted;
  source.forEach((value, name) => {
    if (isHopByHop(name, named) || name === "host" || name.startsWith("x-vanguard-")) return;
    // Only a trusted proxy may tell us who the client is.
    if (
      !trusted &&
      (name === "x-forwarded-for" || name === "x-forwarded-proto" || name === "forwarded")
    ) {
      return;
    }
    // Skipped rather than deleted later: `delete` turns the object into a slow dictionary.
    if (overrides !== undefined && name in overrides) return;
    out[name] = value;
  });
  const prior = out["x-forwarded-for"];
  out["x-forwarded-for"] = prior ? `${prior}, ${ctx.peerAddress}` : ctx.peerAddress;
  // A trusted proxy's value stands (it saw the client's scheme); else our own listener's.
  out["x-forwarded-proto"] ??= ctx.secure ? "https" : "http";
  const host = source.get("host");
  if (host !== null) out["x-forwarded-host"] = host;
  out["x-request-id"] = ctx.requestId;
  if (ctx.consumer !== undefined) out["x-vanguard-consumer"] = ctx.consumer;
  if (overrides !== undefined) {
    for (const name in overrides) {
      const value = overrides[name];
      if (value !== null) out[name] = value;
    }
  }
  return out;
}

/**
 * Fills a fresh Response's own headers: measured 3x cheaper than building a
 * Headers object and handing it to the Response, which copies it.
 */
export function copyClientHeaders(
  raw: readonly string[],
  headers: Headers,
  requestId: string,
): void {
  let named: ReadonlySet<string> = NONE;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === "connection") named = connectionNamed(raw[i + 1]);
  }
  // (A Response made from bytes or a stream adds no content-type of its own.)
  for (let i = 0; i < raw.length; i += 2) {
    if (isHopByHop(raw[i].toLowerCase(), named)) continue;
    headers.append(raw[i], raw[i + 1]);
  }
  headers.set("x-request-id", requestId);
}

const NONE: ReadonlySet<string> = new Set();
