/**
 * The schema pieces the built-in plugins declare their options with. At load time the
 * declaration runs on the YAML node of `options`, so every problem carries the option's own line
 * and column; when a plugin gets plain options (createMiddleware, validateOptions) the same
 * declaration runs on a node made from them.
 *
 * @module
 */

import { Document, isMap, isScalar, isSeq, LineCounter } from "yaml";
import {
  type Check,
  deref,
  type Field,
  INVALID,
  type Node,
  object,
  type Refiner,
  Rejection,
  report,
  type Shape,
  type Walk,
} from "./schema.ts";

/**
 * A plugin's `options:` mapping with a fixed set of keys; absent or null reads as an empty
 * mapping, so required keys and defaults still apply.
 */
export function pluginOptions<S extends Record<string, Field<unknown>>>(
  fields: S,
  options: { refine?: (value: Shape<S>, refiner: Refiner, walk: Walk) => void } = {},
): Check<Shape<S>> {
  const mapping = object(fields, {
    refine: options.refine,
    unknownKey: (_name, expected) => `unknown option (expected one of: ${expected})`,
  });
  return function checkPluginOptions(node, path, walk) {
    if (isScalar(node) && (node.value === null || node.value === undefined)) {
      const empty = walk.doc.createNode({}) as Node;
      empty.range = node.range;
      node = empty;
    }
    if (!isMap(node)) {
      report(walk, { node, field: path, message: "options must be a mapping" });
      return INVALID;
    }
    return mapping(node, path, walk);
  };
}

/** The node's plain value, as the plugin would receive it. */
export function plainValue(node: Node, walk: Walk): unknown {
  return isScalar(node) ? node.value : node.toJS(walk.doc);
}

/** Any node, read as its plain value and passed to `convert`, which may reject it. */
export function plain<T>(convert: (value: unknown) => T): Check<T> {
  return function checkPlain(node, path, walk) {
    try {
      return convert(plainValue(node, walk));
    } catch (error) {
      if (!(error instanceof Rejection)) throw error;
      report(walk, { node, field: path, message: error.message });
      return INVALID;
    }
  };
}

/**
 * A list whose items `item` converts (or rejects) one by one; a problem is placed at its item
 * but named by the list's field, as the built-ins have always reported it.
 */
export function items<T>(notList: string, item: (value: unknown) => T): Check<T[]> {
  return function checkItems(node, path, walk) {
    if (!isSeq(node)) {
      report(walk, { node, field: path, message: notList });
      return INVALID;
    }
    const out: T[] = [];
    let ok = true;
    for (const child of node.items) {
      const itemNode = deref(child as Node, walk, node);
      try {
        out.push(item(plainValue(itemNode, walk)));
      } catch (error) {
        if (!(error instanceof Rejection)) throw error;
        report(walk, { node: itemNode, field: path, message: error.message });
        ok = false;
      }
    }
    return ok ? out : INVALID;
  };
}

/** A key that may be absent or null, and then takes `value`. */
export function orDefault<T>(check: Check<T>, value: T): Field<T> & { presence: "always" } {
  return { check, presence: "always", nullable: true, fallback: () => structuredClone(value) };
}

/** Runs an options declaration on plain options: the parsed value, or `field: message` problems. */
export function checkPlainOptions<T>(
  check: Check<T>,
  options: unknown,
): { value: T } | { problems: string[] } {
  const doc = new Document(options ?? null, { aliasDuplicateObjects: false });
  const walk: Walk = {
    file: "",
    lines: new LineCounter(),
    doc: doc as Walk["doc"],
    baseDir: ".",
    env: () => undefined,
    readFile: () => {
      throw new Error("plugin options read no files");
    },
    problems: [],
    warnings: [],
  };
  const value = check(deref(doc.contents as Node | null, walk), "", walk);
  if (value !== INVALID && walk.problems.length === 0) return { value };
  return {
    problems: walk.problems.map((problem) =>
      problem.field === "" ? problem.message : `${problem.field}: ${problem.message}`
    ),
  };
}

/**
 * A plugin's `"field: message"` problem (validateOptions) as a config field path and message;
 * a problem without a field names the entry's `options`.
 */
export function optionProblem(entryField: string, problem: string): {
  field: string;
  message: string;
} {
  const colon = problem.indexOf(": ");
  const isField = colon > 0 && /^[\w.[\]-]+$/.test(problem.slice(0, colon));
  return isField
    ? {
      field: `${entryField}.options.${problem.slice(0, colon)}`,
      message: problem.slice(colon + 2),
    }
    : { field: `${entryField}.options`, message: problem };
}
