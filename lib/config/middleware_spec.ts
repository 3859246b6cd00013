import { isMap } from "yaml";
import { BUILTIN_PLUGINS, modulePath } from "../plugins/registry.ts";
import type { MiddlewareSpec } from "./types.ts";
import { type Check, deref, describe, INVALID, type Node, report } from "./schema.ts";
import { optionProblem } from "./plugin_options.ts";
import { didYouMean } from "./did_you_mean.ts";

/**
 * One entry of a `middleware:` list: `{name: <built-in>, options: ...}` or
 * `{module: ./plugins/x.ts, options: ...}`. Built-in options are checked
 * here, by the built-in's optionsSchema, each problem at its option's own
 * position; a module's options are checked when the module is loaded
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
        message: `unknown key "${key}" (expected one of: name, module, options)${
          didYouMean(key, ["name", "module", "options"])
        }`,
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
        }; a plugin of your own goes in module:)${
          typeof name === "string" ? didYouMean(name, Object.keys(BUILTIN_PLUGINS)) : ""
        }`,
      });
    } else {
      const plugin = BUILTIN_PLUGINS[name];
      const optionsPair = pairOf("options");
      const optionsPath = `${path}.options`;
      if (plugin.optionsSchema !== undefined) {
        // Absent options are checked as null placed at the entry, so required options and
        // defaults apply and a missing one points at the entry.
        plugin.optionsSchema(
          deref(optionsPair?.value as Node | undefined, walk, (optionsPair?.key as Node) ?? node),
          optionsPath,
          walk,
        );
      } else {
        for (const problem of plugin.validateOptions?.(value.options) ?? []) {
          report(walk, { node: valueNode("options") ?? node, ...optionProblem(path, problem) });
        }
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
