import { loadPluginModule } from "../plugins/registry.ts";
import type { MiddlewareSpec } from "./types.ts";
import { optionProblem } from "./plugin_options.ts";
import type { Config, ConfigProblem } from "./types.ts";

/**
 * Loads every plugin module a config names and checks its options with the
 * module's own validateOptions, reporting at the entry's position. Async
 * (modules are imported), so it runs after parseConfig, in loadConfigFile.
 */
export async function checkPluginModules(config: Config): Promise<ConfigProblem[]> {
  const specs: MiddlewareSpec[] = [
    ...config.middleware,
    ...config.routes.flatMap((route) => route.middleware),
  ].filter((spec) => spec.module !== undefined);
  const problems: ConfigProblem[] = [];
  for (const spec of specs) {
    const at = { file: spec.file, line: spec.line, column: spec.column };
    let plugin;
    try {
      plugin = await loadPluginModule(spec.module!);
    } catch (error) {
      problems.push({
        ...at,
        field: `${spec.field}.module`,
        message: error instanceof Error ? error.message : String(error),
      });
      continue;
    }
    let found: string[];
    try {
      found = plugin.validateOptions?.(spec.options) ?? [];
    } catch (error) {
      found = [`validateOptions threw: ${error instanceof Error ? error.message : String(error)}`];
    }
    for (const problem of found) problems.push({ ...at, ...optionProblem(spec.field, problem) });
  }
  return problems;
}
