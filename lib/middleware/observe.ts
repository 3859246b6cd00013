import { directLink } from "../pipeline/compose.ts";
import type { HistogramChild, NumberChild } from "../admin/metric_kinds.ts";
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { BodyOutcome, Middleware, RequestContext } from "../pipeline/types.ts";
import { requestHost } from "../routing/match.ts";

/**
 * The outermost link: counts the request in /metrics and writes one access
 * log line when the response body has finished (so status, bytes and
 * duration are final). The path logged is the raw one without the query:
 * query strings may carry secrets.
 *
 * With `recover` it is the error boundary too (see error_boundary.ts): what
 * the rest of the chain throws becomes its error response here, in the same
 * async frame.
 */
export function observe(
  deps: {
    logger: Logger;
    metrics: Metrics;
    accessLog: boolean;
    accessLogSample?: number;
    recover?: (ctx: RequestContext, error: unknown) => Response;
  },
): Middleware {
  const { logger, metrics, recover } = deps;
  const sample = deps.accessLogSample ?? 1;
  const accessLog = deps.accessLog && sample > 0;
  const inFlight = metrics.inFlight.child({});
  /** The series of each route and status, held: no label lookup per request. */
  const byRoute = new Map<string, Map<number, RouteSeries>>();
  function seriesFor(route: string, status: number): RouteSeries {
    let statuses = byRoute.get(route);
    if (statuses === undefined) byRoute.set(route, statuses = new Map());
    let series = statuses.get(status);
    if (series === undefined) {
      const labels = { route, status: String(status) };
      series = {
        requests: metrics.requests.child(labels),
        duration: metrics.duration.child(labels),
      };
      statuses.set(status, series);
    }
    return series;
  }

  return directLink(async function observe(ctx, rest) {
    inFlight.add(1);
    let response: Response;
    try {
      response = await rest(ctx);
    } catch (error) {
      if (recover === undefined) {
        inFlight.add(-1);
        throw error;
      }
      response = recover(ctx, error);
    }
    const finish = (outcome: BodyOutcome) => {
      inFlight.add(-1);
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      const status = response.status;
      const series = seriesFor(ctx.route?.id ?? "", status);
      series.requests.add();
      series.duration.observe(seconds);
      if (accessLog && (sample >= 1 || Math.random() < sample)) {
        logger.info("request", accessRecord(ctx, status, seconds, outcome));
      }
    };
    if (ctx.bodyDone !== undefined) ctx.bodyDone.then(finish);
    else {
      finish({
        outcome: "complete",
        bytes: Number(response.headers.get("content-length") ?? 0),
      });
    }
    return response;
  });
}

interface RouteSeries {
  readonly requests: NumberChild;
  readonly duration: HistogramChild;
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
