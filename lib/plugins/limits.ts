import type { RequestContext } from "../pipeline/types.ts";
import { type Field, reject, required } from "../config/schema.ts";
import { plain, pluginOptions } from "../config/plugin_options.ts";
import { type MiddlewarePlugin, schemaPlugin } from "./api.ts";

/** A plugin whose one option is a whole number that it copies onto every request's context. */
function perRequestNumber(spec: {
  name: string;
  key: string;
  max: number;
  apply(ctx: RequestContext, value: number): void;
}): MiddlewarePlugin {
  const wholeNumber = `must be a whole number from 1 to ${spec.max}`;
  const fields: Record<string, Field<number> & { presence: "always" }> = {
    [spec.key]: required(
      plain((value) =>
        typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= spec.max
          ? value
          : reject(wholeNumber)
      ),
      wholeNumber,
    ),
  };
  return schemaPlugin<Record<string, number>>({
    name: spec.name,
    options: pluginOptions(fields),
    build(parsed) {
      // The one option, whatever its name.
      const [value] = Object.values(parsed);
      return function perRequestLimit(ctx, next) {
        spec.apply(ctx, value);
        return next();
      };
    },
  });
}

/** `timeout`: this route's own upstream timeout (no response headers by then: 504). */
export const timeout: MiddlewarePlugin = perRequestNumber({
  name: "timeout",
  key: "upstream_timeout_ms",
  max: 3_600_000,
  apply: (ctx, ms) => ctx.upstreamTimeoutMs = ms,
});

/** `max_body_bytes`: this route's own request body limit (over it: 413). */
export const maxBodyBytes: MiddlewarePlugin = perRequestNumber({
  name: "max_body_bytes",
  key: "bytes",
  max: Number.MAX_SAFE_INTEGER,
  apply: (ctx, bytes) => ctx.maxBodyBytes = bytes,
});
