import type { Middleware } from "../pipeline/types.ts";

/**
 * Tracing with Deno's built-in OpenTelemetry (`OTEL_DENO=true`): Deno makes
 * a server span per request; this link names it after the matched route,
 * adds the route id, and opens a client span for the upstream call whose
 * `traceparent` the upstream receives, so the upstream's spans join the
 * client's trace under the gateway's. Without OTEL_DENO the client's
 * `traceparent` and `tracestate` simply pass through unchanged (they are
 * ordinary end-to-end headers), and this link is not in the chain at all.
 */
export async function tracing(): Promise<Middleware> {
  // Loaded only when tracing is on; Deno registers its providers with this API.
  const { context, propagation, SpanKind, SpanStatusCode, trace } = await import(
    "@opentelemetry/api"
  );
  const tracer = trace.getTracer("vanguard");

  return async function tracing(ctx, next) {
    const route = ctx.route!;
    const server = trace.getActiveSpan();
    server?.updateName(`${ctx.request.method} ${route.pathPrefix}`);
    server?.setAttribute("http.route", route.pathPrefix);
    server?.setAttribute("vanguard.route_id", route.id);
    server?.setAttribute("vanguard.request_id", ctx.requestId);

    const span = tracer.startSpan(`proxy ${route.id}`, {
      kind: SpanKind.CLIENT,
      attributes: { "vanguard.route_id": route.id, "vanguard.service": route.serviceName },
    });
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(context.active(), span), carrier);
    ctx.upstreamHeaders = { ...ctx.upstreamHeaders, ...carrier };
    try {
      const response = await next();
      span.setAttribute("http.response.status_code", response.status);
      if (ctx.upstream) span.setAttribute("server.address", ctx.upstream);
      if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      return response;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      span.end();
    }
  };
}
