import type { Handler, Middleware, RequestContext } from "./types.ts";

/**
 * Composes middleware into one handler, once per snapshot: the chain is
 * built when a config or routing table is applied, not per request.
 * Calling `next()` a second time in one link throws instead of running the
 * rest of the chain (the proxy included) twice.
 */
export function compose(middleware: readonly Middleware[], handler: Handler): Handler {
  // Built back to front so each link closes over its successor.
  let run: Handler = handler;
  for (let i = middleware.length - 1; i >= 0; i--) {
    const link = middleware[i];
    const rest = run;
    run = function chained(ctx: RequestContext): Promise<Response> {
      let called = false;
      return link(ctx, function next() {
        if (called) {
          return Promise.reject(
            new Error(`next() called multiple times in ${link.name || "a middleware"}`),
          );
        }
        called = true;
        return rest(ctx);
      });
    };
  }
  return run;
}
