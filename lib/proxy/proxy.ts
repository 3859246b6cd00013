import { GatewayError } from "../pipeline/errors.ts";
import type { Handler, RequestContext } from "../pipeline/types.ts";
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { Endpoint } from "../routing/table.ts";
import { Balancer } from "./balancer.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket.ts";
import { connectionNamed, isHopByHop } from "./headers.ts";
import { UpstreamClient, UpstreamError, type UpstreamResponse } from "./upstream_client.ts";
import type { UpstreamHealth } from "./health.ts";
import type { ServiceConcurrency } from "./in_flight.ts";
import type { UpstreamSettings } from "./settings.ts";

/** What the proxy needs; main.ts wires the real ones. */
export interface ProxyDeps {
  readonly client: UpstreamClient;
  readonly balancer: Balancer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly upstreamTimeoutMs: number;
  /** Passive health: every exchange's outcome is reported here. */
  readonly health: UpstreamHealth;
  /** Per-service in-flight counts, for max_in_flight. */
  readonly concurrency: ServiceConcurrency;
  /** The config's per-service settings, looked up by the route's service name. */
  readonly settingsFor: (serviceName: string) => UpstreamSettings;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
/**
 * Failures that `retries:` retries: the upstream never answered, and for an
 * idempotent request without a body a second try is safe. Timeouts are not
 * among them: an upstream that is slow under load would get every request
 * `retries + 1` times, amplifying the overload that made it slow.
 */
const RETRIED_KINDS = new Set(["refused", "reset", "dns"]);
/** Answers that say "try elsewhere" (and that `retries:` retries). */
const RETRIED_STATUSES = new Set([502, 503, 504]);
/** Exchange failures that count against an endpoint's health (the client going away does not). */
const FAILURE_KINDS = new Set(["refused", "reset", "timeout", "dns", "protocol"]);

/** The end of the chain: forwards the request to an endpoint of the route's service, streaming both ways. */
export function proxy(deps: ProxyDeps): Handler {
  const { client, balancer, metrics } = deps;

  return async function proxy(ctx: RequestContext): Promise<Response> {
    const route = ctx.route;
    if (route === undefined) throw new Error("proxy reached without a matched route");
    const service = ctx.table.service(route.serviceName);
    const ready = service?.ready ?? [];
    if (ready.length === 0) {
      throw new GatewayError(
        503,
        "no_healthy_upstream",
        `Service "${route.serviceName}" has no ready endpoint`,
      );
    }

    if (isWebSocketUpgrade(ctx.request)) {
      const endpoint = balancer.pick(ready) as Endpoint;
      ctx.upstream = endpoint.url;
      // An open session counts as a request in flight for least-loaded picking.
      const end = balancer.begin(endpoint.url);
      try {
        const response = await proxyWebSocket(ctx, {
          origin: endpoint.url,
          path: upstreamPath(ctx),
          headers: upstreamHeaders(ctx),
          handshakeTimeoutMs: ctx.upstreamTimeoutMs ?? deps.upstreamTimeoutMs,
        });
        if (ctx.bodyDone) ctx.bodyDone.finally(end);
        else end();
        return response;
      } catch (error) {
        end();
        throw error;
      }
    }

    const declared = ctx.request.headers.get("content-length");
    const maxBodyBytes = ctx.maxBodyBytes ?? deps.maxBodyBytes;
    if (declared !== null && Number(declared) > maxBodyBytes) {
      throw payloadTooLarge(maxBodyBytes);
    }

    const serviceName = route.serviceName;
    const settings = deps.settingsFor(serviceName);
    const noteRetry = (from: string, why: { kind?: string; status?: number }) => {
      metrics.upstreamRetries.inc({ service: serviceName });
      deps.logger.warn("upstream_retry", {
        request_id: ctx.requestId,
        service: serviceName,
        endpoint: from,
        ...why,
      });
    };
    let releaseSlot: (() => void) | undefined;
    if (settings.maxInFlight !== undefined) {
      releaseSlot = deps.concurrency.tryAcquire(serviceName, settings.maxInFlight);
      if (releaseSlot === undefined) {
        metrics.upstreamOverloaded.inc({ service: serviceName });
        throw new GatewayError(
          503,
          "upstream_overloaded",
          `Service "${serviceName}" already has ${settings.maxInFlight} requests in flight`,
          { headers: { "retry-after": "1" } },
        );
      }
    }
    const reportFailure = (url: string) => {
      const ms = deps.health.recordFailure(url, {
        settings: settings.passiveHealth,
        endpoints: ready,
      });
      if (ms === 0) return;
      metrics.upstreamEjections.inc({ service: serviceName });
      deps.logger.warn("upstream_ejected", {
        service: serviceName,
        endpoint: url,
        ejection_ms: ms,
      });
    };
    // Configured retries: only where a second try cannot do what the first did twice.
    const retriesAllowed = settings.retries > 0 && ctx.request.body === null &&
      IDEMPOTENT.has(ctx.request.method);
    const tried = new Set<string>();
    /** Another endpoint when one exists, else the same one again. */
    const retryTarget = (last: Endpoint) =>
      balancer.pick(ready, tried) ?? balancer.pick(ready, last.url) ?? last;

    const headers = upstreamHeaders(ctx);
    const path = upstreamPath(ctx);
    let endpoint = balancer.pick(ready) as Endpoint;
    try {
      for (let attempt = 0;; attempt++) {
        tried.add(endpoint.url);
        const end = balancer.begin(endpoint.url);
        ctx.upstream = endpoint.url;
        let response: UpstreamResponse;
        try {
          response = await client.send({
            origin: endpoint.url,
            method: ctx.request.method,
            path,
            headers,
            body: ctx.request.body,
            signal: ctx.request.signal,
            headersTimeoutMs: ctx.upstreamTimeoutMs ?? deps.upstreamTimeoutMs,
            maxBodyBytes,
            onBodyBytes: (total) => ctx.bytesIn = total,
          });
        } catch (error) {
          end();
          if (!(error instanceof UpstreamError)) throw error;
          if (error.kind === "body_too_large") throw payloadTooLarge(maxBodyBytes);
          metrics.upstreamErrors.inc({ service: serviceName, kind: error.kind });
          if (FAILURE_KINDS.has(error.kind)) reportFailure(endpoint.url);
          const untouched = !error.bodyStarted && !ctx.request.bodyUsed;
          const next = retriesAllowed && untouched && attempt < settings.retries &&
              RETRIED_KINDS.has(error.kind)
            ? retryTarget(endpoint)
            : attempt === 0 && retryable(error, ctx.request)
            ? balancer.pick(ready, endpoint.url)
            : undefined;
          if (next !== undefined) {
            noteRetry(endpoint.url, { kind: error.kind });
            endpoint = next;
            continue;
          }
          throw upstreamFailure(error, serviceName);
        }
        if (response.status >= 500) reportFailure(endpoint.url);
        else deps.health.recordSuccess(endpoint.url);
        if (
          retriesAllowed && attempt < settings.retries && RETRIED_STATUSES.has(response.status)
        ) {
          // The answer is dropped; cancelling its body closes that connection.
          if (response.body instanceof ReadableStream) await response.body.cancel();
          end();
          noteRetry(endpoint.url, { status: response.status });
          endpoint = retryTarget(endpoint);
          continue;
        }
        const slot = releaseSlot;
        releaseSlot = undefined;
        response.done.finally(() => {
          end();
          slot?.();
        });
        ctx.bodyDone = response.done;
        const answer = new Response(response.body, { status: response.status });
        copyClientHeaders(response.rawHeaders, answer.headers, ctx.requestId);
        return answer;
      }
    } finally {
      // Set only when no response took the slot over: the request failed.
      releaseSlot?.();
    }
  };
}

/**
 * Retry only when the upstream cannot have acted on the request: the
 * connection was refused, or a pooled connection turned out to be closed
 * before an idempotent request's body started. The request body stream
 * can be replayed only if none of it was read.
 */
function retryable(error: UpstreamError, request: Request): boolean {
  if (error.bodyStarted || request.bodyUsed) return false;
  if (error.kind === "refused") return request.body === null;
  return error.kind === "reset" && error.reusedConnection && request.body === null &&
    IDEMPOTENT.has(request.method);
}

function upstreamFailure(error: UpstreamError, service: string): GatewayError {
  if (error.kind === "timeout") {
    return new GatewayError(
      504,
      "upstream_timeout",
      `Upstream "${service}" sent no response in time`,
      { cause: error },
    );
  }
  if (error.kind === "aborted") {
    // The client is gone; nobody reads this response, but the log records why.
    return new GatewayError(499, "client_closed_request", "Client closed the request", {
      cause: error,
    });
  }
  return new GatewayError(
    502,
    "bad_gateway",
    `Cannot reach upstream "${service}": ${error.message}`,
    { cause: error },
  );
}

function payloadTooLarge(limit: number): GatewayError {
  return new GatewayError(413, "payload_too_large", `Request body is larger than ${limit} bytes`);
}

function upstreamPath(ctx: RequestContext): string {
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

function upstreamHeaders(ctx: RequestContext): Record<string, string> {
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
  out["x-forwarded-proto"] ??= "http";
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
function copyClientHeaders(raw: readonly string[], headers: Headers, requestId: string): void {
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
