import { isMap } from "yaml";
import { BUILTIN_PLUGINS, type MiddlewareSpec, modulePath } from "../plugins/registry.ts";
import { type Check, describe, INVALID, report } from "./schema.ts";

/**
 * One entry of a `middleware:` list: `{name: <built-in>, options: ...}` or
 * `{module: ./plugins/x.ts, options: ...}`. Built-in options are checked
 * here; a module's options are checked when the module is loaded
 * (checkPluginModules), with this entry's position.
 */
export const middlewareSpec: Check<MiddlewareSpec> = function checkMiddleware(node, path, walk) {
  if (!isMap(node)) {
    report(walk, { node, field: path, message: `must be a mapping, got ${describe(node)}` });
    return INVALID;
  }
  const before = walk.problems.length;
  const value = node.toJSON() as Record<string, unknown>;
  const pairOf = (key: string) =>
    node.items.find((pair) => (pair.key as { value?: unknown })?.value === key);
  type At = Parameters<typeof report>[1]["node"];
  const keyNode = (key: string) => pairOf(key)?.key as At | undefined;
  // Wrong values are reported at the value, like the rest of the config.
  const valueNode = (key: string) => (pairOf(key)?.value ?? pairOf(key)?.key) as At | undefined;
  for (const key of Object.keys(value)) {
    if (!["name", "module", "options"].includes(key)) {
      report(walk, {
        node: keyNode(key),
        field: `${path}.${key}`,
        message: `unknown key "${key}" (expected one of: name, module, options)`,
      });
    }
  }
  const { name, module } = value;
  if ((name === undefined) === (module === undefined)) {
    report(walk, {
      node,
      field: path,
      message: "needs exactly one of name (a built-in) or module",
    });
  } else if (name !== undefined) {
    if (typeof name !== "string" || !(name in BUILTIN_PLUGINS)) {
      report(walk, {
        node: valueNode("name"),
        field: `${path}.name`,
        message: `unknown built-in ${JSON.stringify(name)} (built-ins: ${
          Object.keys(BUILTIN_PLUGINS).join(", ")
        }; a plugin of your own goes in module:)`,
      });
    } else {
      const problems = BUILTIN_PLUGINS[name].validateOptions?.(value.options) ?? [];
      for (const problem of problems) {
        reportOption(walk, valueNode("options") ?? node, path, problem);
      }
    }
  } else if (typeof module !== "string" || !/\.(ts|js|mjs|mts)$/.test(module)) {
    report(walk, {
      node: valueNode("module"),
      field: `${path}.module`,
      message: "must be the path of a .ts or .js file",
    });
  }
  if (walk.problems.length > before) return INVALID;
  const { line, col } = walk.lines.linePos(node.range?.[0] ?? 0);
  return {
    ...(typeof name === "string" ? { name } : {}),
    ...(typeof module === "string" ? { module: modulePath(module, walk.baseDir) } : {}),
    options: value.options ?? {},
    file: walk.file,
    line,
    column: col,
    field: path,
  };
};

/** Reports an option problem ("field: message") at the options node, with a full field path. */
export function reportOption(
  walk: Parameters<typeof report>[0],
  node: Parameters<typeof report>[1]["node"],
  path: string,
  problem: string,
): void {
  const colon = problem.indexOf(": ");
  const looksLikeField = colon > 0 && /^[\w.[\]-]+$/.test(problem.slice(0, colon));
  report(walk, {
    node,
    field: looksLikeField ? `${path}.options.${problem.slice(0, colon)}` : `${path}.options`,
    message: looksLikeField ? problem.slice(colon + 2) : problem,
  });
}
