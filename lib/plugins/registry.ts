import { isAbsolute, resolve } from "node:path";
import { toFileUrl } from "../net/file_url.ts";
import type { MiddlewareSpec } from "../config/types.ts";
import type { Middleware } from "../pipeline/types.ts";
import type { MiddlewarePlugin, PluginDeps } from "./api.ts";
import { cors } from "./cors.ts";
import { requestHeaders, responseHeaders } from "./headers.ts";
import { ipFilter } from "./ip_filter.ts";
import { maxBodyBytes, timeout } from "./limits.ts";

/** The built-in middleware, by the name config uses. */
export const BUILTIN_PLUGINS: Readonly<Record<string, MiddlewarePlugin>> = Object.freeze({
  cors,
  request_headers: requestHeaders,
  response_headers: responseHeaders,
  ip_filter: ipFilter,
  timeout,
  max_body_bytes: maxBodyBytes,
});

/** Resolves a module path written in the config against the config file's directory. */
export function modulePath(written: string, configDir: string): string {
  return isAbsolute(written) ? written : resolve(configDir, written);
}

/**
 * Loads a plugin module: it must export `plugin`, a MiddlewarePlugin.
 * Dynamic import runs under the gateway's permissions: the module is read
 * with --allow-read (so it must sit where the config may be read from).
 */
export async function loadPluginModule(path: string): Promise<MiddlewarePlugin> {
  let module: Record<string, unknown>;
  try {
    module = await import(toFileUrl(path));
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new Error(`cannot load plugin module ${path}: ${message}`);
  }
  const plugin = module.plugin as MiddlewarePlugin | undefined;
  if (plugin === undefined || typeof plugin.createMiddleware !== "function") {
    throw new Error(
      `plugin module ${path} must export \`plugin\` with a createMiddleware(options, deps) function`,
    );
  }
  return plugin;
}

/** The plugin an entry names (built-in or module). */
export async function pluginFor(spec: MiddlewareSpec): Promise<MiddlewarePlugin> {
  if (spec.name !== undefined) return BUILTIN_PLUGINS[spec.name];
  return await loadPluginModule(spec.module!);
}

/** The middleware of a list of entries, built once per config, split by phase. */
export interface PhasedMiddleware {
  readonly beforeAuth: Middleware[];
  readonly afterAuth: Middleware[];
}

/** Builds the middleware of a list of entries, once per config. */
export async function buildMiddleware(
  specs: readonly MiddlewareSpec[],
  deps: PluginDeps,
): Promise<PhasedMiddleware> {
  const out: PhasedMiddleware = { beforeAuth: [], afterAuth: [] };
  for (const spec of specs) {
    const plugin = await pluginFor(spec);
    const middleware = plugin.createMiddleware(spec.options, deps);
    (plugin.phase === "before_auth" ? out.beforeAuth : out.afterAuth).push(middleware);
  }
  return out;
}
