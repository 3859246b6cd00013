/**
 * The header modifiers' options (`set`, `add`, `remove`), shared by the
 * `request_headers`/`response_headers` built-ins and the route keys of the
 * same names.
 *
 * @module
 */
import { isMap } from "yaml";
import {
  defaulted,
  deref,
  INVALID,
  type Invalid,
  joinPath,
  type Node,
  reject,
  report,
  type Walk,
} from "./schema.ts";
import { items, orDefault, plainValue, pluginOptions } from "./plugin_options.ts";

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Hop-by-hop headers and the gateway's own identity headers are not for plugins to forge.
const RESERVED = new Set([
  "connection",
  "transfer-encoding",
  "content-length",
  "host",
  "x-vanguard-consumer",
]);

/** `set:` or `add:`: header name to value, each problem at its own name or value. */
function headerPairs(node: Node, path: string, walk: Walk): [string, string][] | Invalid {
  if (!isMap(node)) {
    report(walk, { node, field: path, message: "must be a mapping of header name to value" });
    return INVALID;
  }
  const out: [string, string][] = [];
  const before = walk.problems.length;
  for (const pair of node.items) {
    const keyNode = deref(pair.key as Node, walk, node);
    const name = String(plainValue(keyNode, walk));
    const valueNode = deref(pair.value as Node, walk, keyNode);
    const value = plainValue(valueNode, walk);
    const field = joinPath(path, name);
    if (!TOKEN.test(name)) {
      report(walk, { node: keyNode, field, message: "not a valid header name" });
    } else if (RESERVED.has(name.toLowerCase())) {
      report(walk, { node: keyNode, field, message: "may not be changed" });
    } else if (typeof value !== "string" && typeof value !== "number") {
      report(walk, { node: valueNode, field, message: "value must be a string" });
    } else if (/[\r\n\0]/.test(String(value))) {
      report(walk, { node: valueNode, field, message: "value must not contain CR, LF or NUL" });
    } else out.push([name.toLowerCase(), String(value)]);
  }
  return walk.problems.length === before ? out : INVALID;
}

function headerToRemove(name: unknown): string {
  if (typeof name === "string" && TOKEN.test(name)) return name.toLowerCase();
  return reject(`${JSON.stringify(name)} is not a header name`);
}

/** `set`/`add`/`remove`, each problem at its own name or value; at least one given. */
export const headerChanges = pluginOptions({
  set: defaulted(headerPairs, []),
  add: defaulted(headerPairs, []),
  remove: orDefault(items("must be a list of header names", headerToRemove), []),
}, {
  refine({ set, add, remove }, refiner) {
    if (set.length + add.length + remove.length === 0) {
      refiner.mappingProblem("set, add or remove: give at least one");
    }
  },
});
