import { GatewayError } from "../pipeline/errors.ts";
import type { RequestContext } from "../pipeline/types.ts";
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { Endpoint, RouteEntry, RoutingTable } from "../routing/table.ts";
import { Balancer } from "./balancer.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket.ts";
import {
  clientHeaders,
  declaredLength,
  upstreamHeaders,
  upstreamHost,
  upstreamPath,
} from "./forwarding.ts";
import { UpstreamClient, UpstreamError, type UpstreamResponse } from "./upstream_client.ts";
import type { UpstreamHealth } from "./health.ts";
import type { ServiceConcurrency } from "./in_flight.ts";
import type { UpstreamSettings } from "./settings.ts";
import { ReplayableBody } from "./replay.ts";

/** What the proxy needs; main.ts wires the real ones. */
export interface ProxyDeps {
  readonly client: UpstreamClient;
  readonly balancer: Balancer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly upstreamTimeoutMs: number;
  /** No upstream body byte for this long aborts the response (default: upstreamTimeoutMs). */
  readonly upstreamBodyTimeoutMs?: number;
  /** Request bodies up to this size are kept, so a failed attempt can be resent (default 64 KiB). */
  readonly retryBufferBytes?: number;
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
 * idempotent request a second try is safe. Timeouts are not among them: an
 * upstream that is slow under load would get every request `retries + 1`
 * times, amplifying the overload that made it slow.
 */
const RETRIED_KINDS = new Set(["refused", "reset", "dns"]);
/** Answers that say "try elsewhere" (and that `retries:` retries). */
const RETRIED_STATUSES = new Set([502, 503, 504]);
/** Exchange failures that count against an endpoint's health (the client going away does not). */
const FAILURE_KINDS = new Set(["refused", "reset", "timeout", "dns", "protocol"]);
/**
 * Attempts beyond the first for failures the upstream cannot have acted on
 * (see `unseen`), whatever the method: during a rollout a request may meet
 * several closing pods in a row.
 */
const MAX_UNSEEN_RETRIES = 3;
const DEFAULT_RETRY_BUFFER_BYTES = 64 * 1024;

/**
 * Forwards a request to one service's endpoints: the proxy of one backend
 * of one route on one table.
 */
export type ServiceProxy = (ctx: RequestContext) => Promise<Response>;

/**
 * What makes each backend's proxy: the service, its ready endpoints and
 * its settings are resolved when a snapshot is compiled, not per request.
 */
export function serviceProxies(
  deps: ProxyDeps,
): (serviceName: string, route: RouteEntry, table: RoutingTable) => ServiceProxy {
  const { client, balancer, metrics } = deps;
  const retryBufferBytes = deps.retryBufferBytes ?? DEFAULT_RETRY_BUFFER_BYTES;
  const deniedLogged = new Set<string>();
  /** One log line per address refused by the permission flags (bounded). */
  const noteDenied = (service: string, url: string) => {
    if (deniedLogged.has(url) || deniedLogged.size >= 1000) return;
    deniedLogged.add(url);
    deps.logger.error("upstream_permission_denied", {
      service,
      endpoint: url,
      message:
        `Deno's --allow-net does not permit ${url}: widen the --allow-net flag (in Kubernetes, VANGUARD_UPSTREAM_CIDR) to include it`,
    });
  };

  return function serviceProxy(
    serviceName: string,
    route: RouteEntry,
    table: RoutingTable,
  ): ServiceProxy {
    const ready = table.service(serviceName)?.ready ?? [];
    const settings = deps.settingsFor(serviceName);
    const routeTimeoutMs = route.timeoutMs ?? deps.upstreamTimeoutMs;
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
    return async function proxy(ctx: RequestContext): Promise<Response> {
      ctx.backend = serviceName;
      if (ready.length === 0) {
        throw new GatewayError(
          503,
          "no_healthy_upstream",
          `Service "${serviceName}" has no ready endpoint`,
        );
      }

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
      try {
        if (isWebSocketUpgrade(ctx.request)) {
          const endpoint = balancer.pick(ready) as Endpoint;
          ctx.upstream = endpoint.url;
          // An open session counts as a request in flight, for least-loaded
          // picking and for max_in_flight, until it closes.
          const end = balancer.begin(endpoint.url);
          const slot = releaseSlot;
          releaseSlot = undefined;
          const finished = () => {
            end();
            slot?.();
          };
          try {
            const response = await proxyWebSocket(ctx, {
              origin: endpoint.url,
              path: upstreamPath(ctx),
              headers: upstreamHeaders(ctx),
              handshakeTimeoutMs: ctx.upstreamTimeoutMs ?? routeTimeoutMs,
            });
            if (ctx.bodyDone) ctx.bodyDone.finally(finished);
            else finished();
            return response;
          } catch (error) {
            finished();
            throw error;
          }
        }

        const maxBodyBytes = ctx.maxBodyBytes ?? deps.maxBodyBytes;
        const length = declaredLength(ctx.request.headers);
        if (length !== undefined && length > maxBodyBytes) throw payloadTooLarge(maxBodyBytes);
        const source = ctx.requestBody !== undefined ? ctx.requestBody : ctx.request.body;
        const body = source === null ? null : new ReplayableBody(source, retryBufferBytes);

        const noteRetry = (from: string, why: { kind?: string; status?: number }) => {
          metrics.upstreamRetries.inc({ service: serviceName });
          deps.logger.warn("upstream_retry", {
            request_id: ctx.requestId,
            service: serviceName,
            endpoint: from,
            ...why,
          });
        };
        // Configured retries: only where a second try cannot do what the first did twice.
        const retriesAllowed = settings.retries > 0 && source === null &&
          IDEMPOTENT.has(ctx.request.method);
        /** The endpoints tried so far; made at the first failure (most requests have none). */
        let tried: Set<string> | undefined;
        /** Another endpoint when one exists, else the same one again. */
        const retryTarget = (last: Endpoint) =>
          balancer.pick(ready, tried) ?? balancer.pick(ready, last.url) ?? last;

        const headers = upstreamHeaders(ctx);
        if (length !== undefined) headers["content-length"] = String(length);
        const path = upstreamPath(ctx);
        const headersTimeoutMs = ctx.upstreamTimeoutMs ?? routeTimeoutMs;
        const bodyTimeoutMs = deps.upstreamBodyTimeoutMs ?? headersTimeoutMs;
        let endpoint = balancer.pick(ready) as Endpoint;
        let fresh = false;
        let unseenRetries = 0;
        for (let attempt = 0;; attempt++) {
          tried?.add(endpoint.url);
          const end = balancer.begin(endpoint.url);
          ctx.upstream = endpoint.url;
          let response: UpstreamResponse;
          try {
            response = await client.send({
              origin: endpoint.url,
              host: upstreamHost(ctx),
              method: ctx.request.method,
              path,
              headers,
              body: body === null ? null : body.stream(),
              signal: ctx.request.signal,
              headersTimeoutMs,
              bodyTimeoutMs,
              fresh,
              caCerts: settings.caCerts,
              maxBodyBytes,
              onBodyBytes: body === null ? undefined : (total) => ctx.bytesIn = total,
            });
          } catch (error) {
            end();
            tried ??= new Set([endpoint.url]);
            if (!(error instanceof UpstreamError)) throw error;
            if (error.kind === "body_too_large") throw payloadTooLarge(maxBodyBytes);
            if (error.kind === "invalid_request") {
              deps.logger.error("upstream_request_refused", {
                request_id: ctx.requestId,
                service: serviceName,
                reason: error.message,
              });
              throw new GatewayError(
                500,
                "invalid_upstream_request",
                "The gateway refused to send a request with an invalid header upstream",
                { cause: error },
              );
            }
            metrics.upstreamErrors.inc({ service: serviceName, kind: error.kind });
            if (error.kind === "denied") noteDenied(serviceName, endpoint.url);
            const stale = error.kind === "reset" && error.reusedConnection &&
              !error.responseStarted;
            // A pooled connection the peer had closed says nothing about the endpoint's health.
            if (FAILURE_KINDS.has(error.kind) && !stale) reportFailure(endpoint.url);
            if (
              (body === null || body.replayable) && unseen(error) &&
              unseenRetries < MAX_UNSEEN_RETRIES
            ) {
              // Another endpoint if there is one; after a stale pooled
              // connection, the same endpoint on a new connection will do.
              const next = balancer.pick(ready, tried) ?? (stale ? endpoint : undefined);
              if (next !== undefined) {
                unseenRetries++;
                noteRetry(endpoint.url, { kind: error.kind });
                fresh = next === endpoint;
                endpoint = next;
                continue;
              }
            }
            if (
              retriesAllowed && attempt < settings.retries + unseenRetries &&
              RETRIED_KINDS.has(error.kind)
            ) {
              noteRetry(endpoint.url, { kind: error.kind });
              endpoint = retryTarget(endpoint);
              fresh = false;
              continue;
            }
            throw upstreamFailure(error, serviceName);
          }
          if (response.status >= 500) reportFailure(endpoint.url);
          else deps.health.recordSuccess(endpoint.url);
          if (
            retriesAllowed && attempt < settings.retries + unseenRetries &&
            RETRIED_STATUSES.has(response.status)
          ) {
            // The answer is dropped; cancelling its body closes that connection.
            if (response.body instanceof ReadableStream) await response.body.cancel();
            end();
            tried ??= new Set([endpoint.url]);
            noteRetry(endpoint.url, { status: response.status });
            endpoint = retryTarget(endpoint);
            fresh = false;
            continue;
          }
          const slot = releaseSlot;
          releaseSlot = undefined;
          response.done.finally(() => {
            end();
            slot?.();
          });
          ctx.bodyDone = response.done;
          return new Response(response.body, {
            status: response.status,
            headers: clientHeaders(response.rawHeaders, ctx.requestId),
          });
        }
      } finally {
        // Set only when no response took the slot over: the request failed.
        releaseSlot?.();
      }
    };
  };
}

/**
 * Whether the upstream cannot have acted on the request, so that sending it
 * again (to another endpoint) is safe whatever the method: the connection
 * was refused or the name did not resolve, or a pooled connection turned
 * out to be closed by the peer before any byte of a response. That last one
 * is how a rolling update looks from here: a pod that shuts down closes its
 * idle keep-alive connections, and one of them may already carry our request.
 */
function unseen(error: UpstreamError): boolean {
  if (error.kind === "refused" || error.kind === "dns") return true;
  return error.kind === "reset" && error.reusedConnection && !error.responseStarted;
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
  if (error.kind === "denied") {
    return new GatewayError(
      502,
      "bad_gateway",
      `Cannot reach upstream "${service}": the gateway's network permission does not include it`,
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
