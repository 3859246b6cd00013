/** The per-request context, made from the request and the connection it came on. */
import { clientAddress } from "../net/client_address.ts";
import type { CidrSet } from "../net/cidr.ts";
import type { RequestContext } from "../pipeline/types.ts";
import { requestIdFor } from "../proxy/headers.ts";
import type { RoutingTable } from "../routing/table.ts";
import type { ClientConnection } from "./listener.ts";
import { requestTarget, type TargetChecked } from "./request_target.ts";

/** A request's context on the table it pins. */
export function newContext(
  request: Request,
  client: ClientConnection,
  table: RoutingTable,
  trusted: CidrSet,
): RequestContext & TargetChecked {
  // request.url keeps the request target as sent (dot-segments, escapes and
  // all); the WHATWG URL parser would resolve them before we could refuse
  // them. The path comes from the target only, never from the Host header.
  const { rawPath, query, refusal } = requestTarget(request, client.localAddr);
  const peerAddress = client.remoteAddr.hostname;
  const peerTrusted = trusted.contains(peerAddress);
  return {
    request,
    startedAt: performance.now(),
    requestId: requestIdFor(request.headers.get("x-request-id")),
    peerAddress,
    peerTrusted,
    secure: client.secure === true,
    listenerPort: client.localAddr.port,
    clientAddress: peerTrusted
      ? clientAddress(peerAddress, trusted, request.headers.get("x-forwarded-for"))
      : peerAddress,
    table,
    rawPath,
    query,
    path: rawPath,
    encodedPath: rawPath,
    bytesIn: 0,
    targetRefusal: refusal,
  };
}
