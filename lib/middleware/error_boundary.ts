import type { Logger } from "../log/logger.ts";
import { GatewayError } from "../pipeline/errors.ts";
import type { RequestContext } from "../pipeline/types.ts";

/**
 * The error boundary: turns anything thrown further down the chain into a
 * JSON error response. A GatewayError keeps its status and code; anything
 * else is a bug: a generic 500 for the client, the stack for the log only.
 * Called by the link that catches (observe, the outermost, so that a request
 * runs one async frame for both).
 */
export function recovery(
  deps: { logger: Logger },
): (ctx: RequestContext, error: unknown) => Response {
  const { logger } = deps;
  return function recover(ctx, error) {
    if (error instanceof GatewayError) {
      if (error.status >= 500) {
        logger.warn("request_failed", {
          request_id: ctx.requestId,
          route: ctx.route?.id ?? "",
          status: error.status,
          code: error.code,
          message: error.message,
          upstream: ctx.upstream ?? null,
        });
      }
      return errorResponse(ctx, error);
    }
    logger.error("internal_error", { request_id: ctx.requestId, error });
    return errorResponse(
      ctx,
      new GatewayError(500, "internal_error", "The gateway failed to handle this request"),
    );
  };
}

/** The JSON error body every error response shares. */
export function errorResponse(
  ctx: Pick<RequestContext, "requestId" | "responseHeaders">,
  error: GatewayError,
): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-request-id": ctx.requestId,
  });
  if (error.headers) {
    for (const [name, value] of Object.entries(error.headers)) headers.set(name, value);
  }
  for (const [name, value] of ctx.responseHeaders ?? []) headers.append(name, value);
  const body = JSON.stringify({
    error: error.code,
    message: error.message,
    request_id: ctx.requestId,
  });
  headers.set("content-length", String(new TextEncoder().encode(body).byteLength));
  return new Response(body, { status: error.status, headers });
}
