import type { Middleware } from "../pipeline/types.ts";
import { type MiddlewarePlugin, optionsObject, unknownKeys } from "./api.ts";

function positiveInteger(
  name: string,
  key: string,
  max: number,
): { check(options: unknown): string[]; read(options: unknown): number } {
  const check = (options: unknown) => {
    const o = optionsObject(options);
    if (typeof o === "string") return [o];
    const problems = unknownKeys(o, [key]);
    const value = o[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
      problems.push(`${key}: must be a whole number from 1 to ${max}`);
    }
    return problems;
  };
  return {
    check,
    read(options) {
      const problems = check(options);
      if (problems.length > 0) throw new Error(`${name}: ${problems.join("; ")}`);
      return (options as Record<string, number>)[key];
    },
  };
}

const timeoutOption = positiveInteger("timeout", "upstream_timeout_ms", 3_600_000);

/** `timeout`: this route's own upstream timeout (no response headers by then: 504). */
export const timeout: MiddlewarePlugin = {
  validateOptions: timeoutOption.check,
  createMiddleware(options) {
    const ms = timeoutOption.read(options);
    const middleware: Middleware = function timeout(ctx, next) {
      ctx.upstreamTimeoutMs = ms;
      return next();
    };
    return middleware;
  },
};

const bodyOption = positiveInteger("max_body_bytes", "bytes", Number.MAX_SAFE_INTEGER);

/** `max_body_bytes`: this route's own request body limit (over it: 413). */
export const maxBodyBytes: MiddlewarePlugin = {
  validateOptions: bodyOption.check,
  createMiddleware(options) {
    const bytes = bodyOption.read(options);
    const middleware: Middleware = function maxBodyBytes(ctx, next) {
      ctx.maxBodyBytes = bytes;
      return next();
    };
    return middleware;
  },
};
