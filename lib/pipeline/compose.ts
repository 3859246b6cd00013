import type { Handler, Middleware, RequestContext } from "./types.ts";

/**
 * Composes middleware into one handler, once per config: the chain is built
 * when the gateway starts, not per request.
 */
export function compose(middleware: readonly Middleware[], handler: Handler): Handler {
  // Build back to front so each link closes over its successor; no per-request
  // index bookkeeping and no way to call next() twice into the same link.
  let run: Handler = handler;
  for (let i = middleware.length - 1; i >= 0; i--) {
    const link = middleware[i];
    const rest = run;
    run = function chained(ctx: RequestContext): Promise<Response> {
      return link(ctx, () => rest(ctx));
    };
  }
  return run;
}
