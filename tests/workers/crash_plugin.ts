/**
 * A plugin with bugs, for the worker restart tests: a request to `/crash`
 * is answered, then an uncaught error ends the worker thread it ran in; a
 * request to `/hang` blocks its worker's event loop for 2 s.
 */
import type { MiddlewarePlugin } from "../../lib/plugins/api.ts";

export const plugin: MiddlewarePlugin = {
  createMiddleware() {
    return async function crashAfterwards(ctx, next) {
      if (ctx.rawPath === "/crash") {
        setTimeout(() => {
          throw new Error("plugin bug");
        }, 50);
      }
      if (ctx.rawPath === "/hang") {
        const until = Date.now() + 2000;
        while (Date.now() < until) { /* a bug that never yields */ }
      }
      return await next();
    };
  },
};
