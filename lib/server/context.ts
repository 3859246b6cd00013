/** The per-request context, made from the request and the connection it came on. */
import type { GatewayError } from "../pipeline/errors.ts";
import { clientAddress } from "../net/client_address.ts";
import type { CidrSet } from "../net/cidr.ts";
import type { BodyOutcome, RequestContext } from "../pipeline/types.ts";
import { requestIdFor } from "../proxy/headers.ts";
import type { RouteEntry, RoutingTable } from "../routing/table.ts";
import type { ClientConnection } from "./listener.ts";
import { requestTarget, type TargetChecked } from "./request_target.ts";

/**
 * A request's context on the table it pins. A class with every field set
 * in the constructor, so that all contexts share one shape (the links that
 * fill `route`, `consumer`, `upstream`... later do not reshape it).
 */
class Context implements RequestContext, TargetChecked {
  readonly request: Request;
  readonly startedAt: number;
  readonly requestId: string;
  readonly peerAddress: string;
  readonly peerTrusted: boolean;
  readonly clientAddress: string;
  readonly secure: boolean;
  readonly table: RoutingTable;
  readonly rawPath: string;
  readonly query: string;
  readonly listenerPort: number;
  readonly targetRefusal: GatewayError | undefined;
  path: string;
  encodedPath: string;
  bytesIn = 0;
  route: RouteEntry | undefined = undefined;
  consumer: string | undefined = undefined;
  upstreamHeaders: Record<string, string | null> | undefined = undefined;
  responseHeaders: [string, string][] | undefined = undefined;
  upstreamTimeoutMs: number | undefined = undefined;
  maxBodyBytes: number | undefined = undefined;
  requestBody: ReadableStream<Uint8Array> | null | undefined = undefined;
  backend: string | undefined = undefined;
  upstream: string | undefined = undefined;
  bodyDone: Promise<BodyOutcome> | undefined = undefined;

  constructor(
    request: Request,
    client: ClientConnection,
    table: RoutingTable,
    trusted: CidrSet,
  ) {
    // request.url keeps the request target as sent (dot-segments, escapes and
    // all); the WHATWG URL parser would resolve them before we could refuse
    // them. The path comes from the target only, never from the Host header.
    const { rawPath, query, refusal } = requestTarget(request, client.localAddr);
    const peerAddress = client.remoteAddr.hostname;
    const peerTrusted = trusted.contains(peerAddress);
    this.request = request;
    this.startedAt = performance.now();
    this.requestId = requestIdFor(request.headers.get("x-request-id"));
    this.peerAddress = peerAddress;
    this.peerTrusted = peerTrusted;
    this.secure = client.secure === true;
    this.listenerPort = client.localAddr.port;
    this.clientAddress = peerTrusted
      ? clientAddress(peerAddress, trusted, request.headers.get("x-forwarded-for"))
      : peerAddress;
    this.table = table;
    this.rawPath = rawPath;
    this.query = query;
    this.path = rawPath;
    this.encodedPath = rawPath;
    this.targetRefusal = refusal;
  }
}

/** A request's context on the table it pins. */
export function newContext(
  request: Request,
  client: ClientConnection,
  table: RoutingTable,
  trusted: CidrSet,
): RequestContext & TargetChecked {
  return new Context(request, client, table, trusted);
}
