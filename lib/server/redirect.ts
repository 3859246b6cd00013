/**
 * The `server.http_redirect_port` listener's handler: every request gets a
 * 308 to the same host, path and query over HTTPS (contract section 9).
 *
 * @module
 */
import { errorResponse } from "../middleware/error_boundary.ts";
import { GatewayError } from "../pipeline/errors.ts";
import { requestIdFor } from "../proxy/headers.ts";

// A host name or an IPv4 literal, or a bracketed IPv6 literal, then an optional port.
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

/** Answers with 308 to `https://<host>[:<tlsPort, when not 443>]<path>[?<query>]`. */
export function httpsRedirect(options: { tlsPort: () => number }): (request: Request) => Response {
  return function httpsRedirect(request) {
    const host = HOST.exec(request.headers.get("host") ?? "")?.[1];
    if (host === undefined) {
      return errorResponse(
        { requestId: requestIdFor(request.headers.get("x-request-id")) },
        new GatewayError(400, "bad_request", "A request to the HTTPS redirect needs a valid Host"),
      );
    }
    const port = options.tlsPort();
    const authority = port === 443 ? host : `${host}:${port}`;
    return new Response(null, {
      status: 308,
      headers: {
        location: `https://${authority}${targetOf(request.url)}`,
        "content-length": "0",
      },
    });
  };
}

/**
 * The path and query of `url` as the client sent them: request.url keeps the
 * request target unparsed, and URL would resolve dot-segments in it.
 */
function targetOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const hash = url.indexOf("#", start);
  return hash < 0 ? url.slice(start) : url.slice(start, hash);
}
