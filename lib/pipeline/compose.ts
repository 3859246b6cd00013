import type { Handler, Middleware, RequestContext } from "./types.ts";

const DIRECT = Symbol("direct link");

/** A link that calls the rest of the chain itself: `rest(ctx)` at most once, by construction. */
export type DirectLink = (ctx: RequestContext, rest: Handler) => Promise<Response>;

/**
 * A built-in link written as a {@linkcode DirectLink}. It is an ordinary
 * Middleware to whoever calls it with `next`; compose() calls the direct
 * form, which needs no guard closure per request (the guard is for
 * middleware from plugins and config, which could call `next()` twice).
 */
export function directLink(link: DirectLink): Middleware {
  const middleware = (ctx: RequestContext, next: () => Promise<Response>) =>
    link(ctx, () => next());
  Object.defineProperty(middleware, "name", { value: link.name });
  return Object.assign(middleware, { [DIRECT]: link });
}

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
    const direct = (link as { [DIRECT]?: DirectLink })[DIRECT];
    if (direct !== undefined) {
      run = function chained(ctx: RequestContext): Promise<Response> {
        return direct(ctx, rest);
      };
      continue;
    }
    run = function guarded(ctx: RequestContext): Promise<Response> {
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
