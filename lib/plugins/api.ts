/**
 * The plugin API: what a middleware module exports. Built-in middleware
 * uses the same API as user plugins; the built-ins also declare their
 * options with the config's schema ({@linkcode schemaPlugin}), so their
 * problems point at each option's own line.
 *
 * ```ts
 * import type { MiddlewarePlugin } from "../../lib/plugins/api.ts";
 * export const plugin: MiddlewarePlugin = {
 *   validateOptions(options) { return []; },          // problems, "field: message"
 *   createMiddleware(options, deps) {                 // once per config load
 *     return async function myPlugin(ctx, next) { return await next(); };
 *   },
 * };
 * ```
 */
import type { Check } from "../config/schema.ts";
import { checkPlainOptions } from "../config/plugin_options.ts";
import type { Logger } from "../log/logger.ts";
import type { Middleware } from "../pipeline/types.ts";

/** What a plugin gets besides its options. */
export interface PluginDeps {
  /** The gateway's logger (JSON lines; never log secrets). */
  readonly logger: Logger;
  /** Client-address checks honour these (already parsed), for plugins that filter by address. */
  readonly trustedProxies: readonly string[];
  /**
   * Registers what releases this instance (a timer, a connection): it runs
   * when the config the instance was built for is retired (after a reload,
   * at shutdown), or at once when a later step of that build fails.
   */
  readonly onClose: (release: () => void | Promise<void>) => void;
}

/**
 * Where a plugin runs: `before_auth` (after route matching; for what must
 * work without credentials, such as CORS preflights, or should refuse
 * before any work, such as address filters) or `after_auth` (the default:
 * after authentication and rate limiting, with `ctx.consumer` set).
 */
export type PluginPhase = "before_auth" | "after_auth";

/** A middleware plugin: built-in or a user module exporting `plugin`. */
export interface MiddlewarePlugin {
  /** Default `after_auth`. */
  readonly phase?: PluginPhase;
  /**
   * Checks the options from the config; returns one problem per mistake,
   * each as `"field.path: message"` (or just `"message"`). Runs at load
   * time (`deno task validate` too), so problems carry the config's line.
   */
  validateOptions?(options: unknown): string[];
  /**
   * The options declared with the config's schema (lib/config/schema.ts), as
   * {@linkcode schemaPlugin} sets it. The loader runs it on a built-in's
   * `options` node, so each problem carries the option's own line and
   * column; a module is imported after parsing, so its options go through
   * validateOptions, with the entry's line.
   */
  readonly optionsSchema?: Check<unknown>;
  /** Builds the middleware, once per config load; never per request. */
  createMiddleware(options: unknown, deps: PluginDeps): Middleware;
}

/**
 * A plugin whose options are declared with the config's schema: the loader checks the options'
 * YAML with `options` (problems at each option's line), and validateOptions and
 * createMiddleware run the same declaration on plain options.
 */
export function schemaPlugin<T>(spec: {
  name: string;
  phase?: PluginPhase;
  options: Check<T>;
  build(parsed: T, deps: PluginDeps): Middleware;
}): MiddlewarePlugin {
  return {
    phase: spec.phase,
    optionsSchema: spec.options,
    validateOptions(options) {
      const checked = checkPlainOptions(spec.options, options);
      return "problems" in checked ? checked.problems : [];
    },
    createMiddleware(options, deps) {
      const checked = checkPlainOptions(spec.options, options);
      // Validation reported these at load time; reaching here means a caller skipped it.
      if ("problems" in checked) throw new Error(`${spec.name}: ${checked.problems.join("; ")}`);
      return spec.build(checked.value, deps);
    },
  };
}
