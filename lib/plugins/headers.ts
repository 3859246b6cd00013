import type { Middleware } from "../pipeline/types.ts";
import { headerChanges } from "../config/header_changes.ts";
import type { HeaderChanges } from "../config/types.ts";
import { type MiddlewarePlugin, schemaPlugin } from "./api.ts";

/** Applies `changes` to the request the upstream receives (the `request_headers` route key too). */
export function requestHeaderChanges({ set, add, remove }: HeaderChanges): Middleware {
  return function requestHeaders(ctx, next) {
    const changes: Record<string, string | null> = { ...ctx.upstreamHeaders };
    for (const name of remove) changes[name] = null;
    for (const [name, value] of add) {
      const existing = changes[name] ?? ctx.request.headers.get(name);
      changes[name] = existing ? `${existing}, ${value}` : value;
    }
    for (const [name, value] of set) changes[name] = value;
    ctx.upstreamHeaders = changes;
    return next();
  };
}

/**
 * Applies `changes` to the response the client receives (the
 * `response_headers` route key too); set and add also apply to the
 * gateway's own error answers.
 */
export function responseHeaderChanges({ set, add, remove }: HeaderChanges): Middleware {
  const always = [...set, ...add] as [string, string][];
  return async function responseHeaders(ctx, next) {
    // Error answers get the set/added headers too (removal only concerns upstream headers).
    ctx.responseHeaders = [...(ctx.responseHeaders ?? []), ...always];
    const response = await next();
    if (response.status === 101) return response; // a WebSocket upgrade: nothing to edit
    for (const name of remove) response.headers.delete(name);
    for (const [name, value] of add) response.headers.append(name, value);
    for (const [name, value] of set) response.headers.set(name, value);
    return response;
  };
}

/** `request_headers`: set, add or remove headers on the request the upstream receives. */
export const requestHeaders: MiddlewarePlugin = schemaPlugin({
  name: "request_headers",
  options: headerChanges,
  build: requestHeaderChanges,
});

/**
 * `response_headers`: set, add or remove headers on the response the
 * client receives (set and add also apply to the gateway's error answers).
 */
export const responseHeaders: MiddlewarePlugin = schemaPlugin({
  name: "response_headers",
  options: headerChanges,
  build: responseHeaderChanges,
});
