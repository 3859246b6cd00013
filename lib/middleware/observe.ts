import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { BodyOutcome, Middleware, RequestContext } from "../pipeline/types.ts";
import { requestHost } from "../routing/match.ts";

/**
 * The outermost link: counts the request in /metrics and writes one access
 * log line when the response body has finished (so status, bytes and
 * duration are final). The path logged is the raw one without the query:
 * query strings may carry secrets.
 */
export function observe(
  deps: { logger: Logger; metrics: Metrics; accessLog: boolean; accessLogSample?: number },
): Middleware {
  const { logger, metrics } = deps;
  const sample = deps.accessLogSample ?? 1;
  const accessLog = deps.accessLog && sample > 0;

  return async function observe(ctx, next) {
    metrics.inFlight.add({}, 1);
    let response: Response;
    try {
      response = await next();
    } catch (error) {
      // The error boundary sits right inside; reaching here is a bug in it.
      metrics.inFlight.add({}, -1);
      throw error;
    }
    const finish = (outcome: BodyOutcome) => {
      metrics.inFlight.add({}, -1);
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      const route = ctx.route?.id ?? "";
      const status = String(response.status);
      metrics.requests.inc({ route, status });
      metrics.duration.observe({ route, status }, seconds);
      if (accessLog && (sample >= 1 || Math.random() < sample)) {
        logger.info("request", accessRecord(ctx, response.status, seconds, outcome));
      }
    };
    if (ctx.bodyDone !== undefined) ctx.bodyDone.then(finish);
    else {finish({
        outcome: "complete",
        bytes: Number(response.headers.get("content-length") ?? 0),
      });}
    return response;
  };
}

function accessRecord(
  ctx: RequestContext,
  status: number,
  seconds: number,
  body: BodyOutcome,
): Record<string, unknown> {
  return {
    request_id: ctx.requestId,
    method: ctx.request.method,
    host: requestHost(ctx.request.url) ?? null,
    path: ctx.rawPath,
    route: ctx.route?.id ?? "",
    backend: ctx.backend ?? null,
    status,
    duration_ms: Math.round(seconds * 1e6) / 1e3,
    client: ctx.clientAddress,
    upstream: ctx.upstream ?? null,
    bytes_in: ctx.bytesIn,
    bytes_out: body.bytes,
    body: body.outcome,
  };
}
