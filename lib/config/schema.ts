/**
 * A small set of validators over the `yaml` package's AST. They walk the nodes
 * rather than plain JS values so that every problem carries the line and
 * column of the node that caused it, and they keep going after a problem so
 * that one run reports everything.
 *
 * @module
 */

import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter, Scalar } from "yaml";
import type { Node as YamlNode } from "yaml";
import type { ConfigProblem } from "./types.ts";
import { didYouMean } from "./did_you_mean.ts";
import { missingColonHint, registerList, registerObject, unknownKeyHint } from "./key_hints.ts";

/** A node of the parsed YAML document. */
export type Node = YamlNode;

/** Marks a value that failed validation; its problem is already reported. */
export const INVALID: unique symbol = Symbol("invalid");
/** The type of {@linkcode INVALID}. */
export type Invalid = typeof INVALID;

/** State shared by all validators during one load. */
export interface Walk {
  readonly file: string;
  readonly lines: LineCounter;
  readonly doc: Document.Parsed;
  /** Directory of the config file, the base for relative paths. */
  readonly baseDir: string;
  /** Reads an environment variable; may throw when the process may not read it. */
  readonly env: (name: string) => string | undefined;
  /** Reads a text file by absolute path; throws like `Deno.readTextFileSync`. */
  readonly readFile: (absolutePath: string) => string;
  readonly problems: ConfigProblem[];
  readonly warnings: ConfigProblem[];
  /** `deno task validate`: an unset `*_env` variable is a warning (checked away from the gateway). */
  readonly unsetEnvIsWarning?: boolean;
}

/** Validates one node at `path` and converts it, or reports and returns INVALID. */
export type Check<T> = (node: Node, path: string, walk: Walk) => T | Invalid;

/** Records a problem (or warning) located at `node`'s first character. */
export function report(
  walk: Walk,
  where: { node: Node | null | undefined; field: string; message: string; warning?: boolean },
): void {
  const offset = where.node?.range?.[0] ?? 0;
  const { line, col } = walk.lines.linePos(offset);
  const entry = { file: walk.file, line, column: col, field: where.field, message: where.message };
  (where.warning ? walk.warnings : walk.problems).push(entry);
}

function fail(walk: Walk, node: Node, field: string, message: string): Invalid {
  report(walk, { node, field, message });
  return INVALID;
}

/** Thrown by scalar converters; becomes a problem at the scalar's position. */
export class Rejection extends Error {}

/** An unset `*_env` variable under {@linkcode Walk.unsetEnvIsWarning}: warned, value kept. */
export class UnsetEnvironment extends Rejection {}

/** Rejects the scalar being converted with `message`. */
export function reject(message: string): never {
  throw new Rejection(message);
}

/** Follows an alias to its anchored node; an unknown alias reads as null. */
export function deref(node: Node | null | undefined, walk: Walk, at?: Node | null): Node {
  if (isAlias(node)) node = node.resolve(walk.doc) ?? null;
  if (node) return node;
  // A key written without a value (`port:`) or a dangling alias: an explicit null placed where the
  // value was expected, so it is reported like any other wrong value.
  const empty = new Scalar(null);
  empty.range = at?.range ?? null;
  return empty;
}

/** `string "abc"`, `number 1.5`, `a list`...: what a node holds, for messages. */
export function describe(node: Node): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (!isScalar(node) || node.value === null || node.value === undefined) return "null";
  const value = node.value;
  return typeof value === "string"
    ? `string ${JSON.stringify(value)}`
    : `${typeof value} ${String(value)}`;
}

function scalarValue(node: Node): unknown {
  return isScalar(node) ? node.value : undefined;
}

function bounds(value: number, min: number, max: number): string | undefined {
  if (value >= min && value <= max) return undefined;
  if (max === Infinity || max === Number.MAX_SAFE_INTEGER) {
    return `must be at least ${min}, got ${value}`;
  }
  return `must be between ${min} and ${max}, got ${value}`;
}

/** An integer in `[min, max]`; YAML strings such as `"8000"` are not integers. */
export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER): Check<number> {
  return function checkInteger(node, path, walk) {
    const value = scalarValue(node);
    if (typeof value !== "number" || !Number.isSafeInteger(value)) {
      return fail(walk, node, path, `must be an integer, got ${describe(node)}`);
    }
    const outside = bounds(value, min, max);
    return outside ? fail(walk, node, path, outside) : value;
  };
}

/** A finite number, at least `min`. */
export function number(min: number): Check<number> {
  return function checkNumber(node, path, walk) {
    const value = scalarValue(node);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return fail(walk, node, path, `must be a number, got ${describe(node)}`);
    }
    const outside = bounds(value, min, Infinity);
    return outside ? fail(walk, node, path, outside) : value;
  };
}

/** A real YAML boolean (`true`/`false`); `yes`, `"true"` and `1` are not. */
export function boolean(): Check<boolean> {
  return function checkBoolean(node, path, walk) {
    const value = scalarValue(node);
    return typeof value === "boolean"
      ? value
      : fail(walk, node, path, `must be a boolean (true or false), got ${describe(node)}`);
  };
}

/** A string, passed through `convert`, which may {@linkcode reject} it or normalize it. */
export function text<T = string>(
  convert: (value: string, walk: Walk) => T = (value) => value as T,
): Check<T> {
  return function checkText(node, path, walk) {
    const value = scalarValue(node);
    if (typeof value !== "string") {
      return fail(walk, node, path, `must be a string, got ${describe(node)}`);
    }
    try {
      return convert(value, walk);
    } catch (error) {
      if (error instanceof UnsetEnvironment) {
        report(walk, { node, field: path, message: error.message, warning: true });
        return value as T;
      }
      if (error instanceof Rejection) return fail(walk, node, path, error.message);
      throw error;
    }
  };
}

/** One of a fixed set of strings. */
export function choice<const T extends string>(values: readonly T[]): Check<T> {
  return text(function convertChoice(value) {
    if ((values as readonly string[]).includes(value)) return value as T;
    return reject(
      `must be one of ${values.join(", ")}, got ${JSON.stringify(value)}${
        didYouMean(value, values)
      }`,
    );
  });
}

/** What {@linkcode list} calls after its items, with every item (INVALID where one failed). */
export type ListRefine<T> = (
  items: readonly (T | Invalid)[],
  context: { nodes: readonly Node[]; path: string; walk: Walk },
) => void;

/** A YAML sequence whose items all pass `item`. */
export function list<T>(
  item: Check<T>,
  options: { nonEmpty?: boolean; refine?: ListRefine<T> } = {},
): Check<T[]> {
  function checkList(node: Node, path: string, walk: Walk): T[] | Invalid {
    if (!isSeq(node)) return fail(walk, node, path, `must be a list, got ${describe(node)}`);
    if (options.nonEmpty && node.items.length === 0) {
      return fail(walk, node, path, "must not be empty");
    }
    const nodes = node.items.map((child) => deref(child as Node, walk, node));
    const items = nodes.map((child, index) => item(child, `${path}[${index}]`, walk));
    const before = walk.problems.length;
    options.refine?.(items, { nodes, path, walk });
    const ok = walk.problems.length === before && !items.includes(INVALID);
    return ok ? (items as T[]) : INVALID;
  }
  registerList(checkList, item);
  return checkList;
}

/** A mapping with free-form keys (each checked by `key`, which may reject it) to values of one kind. */
export function record<T>(key: (name: string) => void, value: Check<T>): Check<Record<string, T>> {
  return function checkRecord(node, path, walk) {
    if (!isMap(node)) return fail(walk, node, path, `must be a mapping, got ${describe(node)}`);
    const out: Record<string, T> = {};
    let ok = true;
    for (const pair of node.items) {
      const keyNode = deref(pair.key as Node, walk, node);
      const name = String(scalarValue(keyNode));
      const field = joinPath(path, name);
      try {
        key(name);
      } catch (error) {
        if (!(error instanceof Rejection)) throw error;
        report(walk, { node: keyNode, field, message: error.message });
        ok = false;
      }
      const result = value(deref(pair.value as Node, walk, keyNode), field, walk);
      if (result === INVALID) ok = false;
      else out[name] = result;
    }
    return ok ? out : INVALID;
  };
}

/** How a key of an {@linkcode object} is read. */
export interface Field<T> {
  readonly check: Check<T>;
  /** "always": the output always has a value (required or defaulted). */
  readonly presence: "always" | "maybe";
  readonly required?: boolean;
  /** The problem reported when a required key is absent; default "is required". */
  readonly missing?: string;
  /** An explicit null counts as absent (sections whose children were all commented out). */
  readonly nullable?: boolean;
  /** Produces the value when the key is absent. */
  readonly fallback?: (path: string, walk: Walk) => T | Invalid;
}

/** A key that must be present; `missing` is the problem when it is not. */
export function required<T>(
  check: Check<T>,
  missing = "is required",
): Field<T> & { presence: "always" } {
  return { check, presence: "always", required: true, missing };
}

/** A key that may be absent (the output then lacks it). */
export function optional<T>(check: Check<T>): Field<T> & { presence: "maybe" } {
  return { check, presence: "maybe" };
}

/** A key that takes `value` when absent. */
export function defaulted<T>(check: Check<T>, value: T): Field<T> & { presence: "always" } {
  return { check, presence: "always", fallback: () => structuredClone(value) };
}

/** An optional sub-mapping; null counts as absent. */
export function section<T>(check: Check<T>): Field<T> & { presence: "maybe" } {
  return { check, presence: "maybe", nullable: true };
}

/** A sub-mapping that, when absent or null, is read as an empty mapping so its defaults apply. */
export function filledSection<T>(check: Check<T>): Field<T> & { presence: "always" } {
  return {
    check,
    presence: "always",
    nullable: true,
    fallback: (path, walk) => check(walk.doc.createNode({}) as Node, path, walk),
  };
}

type Camel<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<Camel<Tail>>}`
  : S;

type FieldValue<F> = F extends Field<infer T> & { presence: "always" } ? T
  : F extends Field<infer T> ? T | undefined
  : never;

/** The object an {@linkcode object} check produces: snake_case keys become camelCase. */
export type Shape<S> = { [K in keyof S & string as Camel<K>]: FieldValue<S[K]> };

/** Reports against a key of the mapping being refined. */
export interface Refiner {
  /** Whether the YAML mapping has `key`. */
  has(key: string): boolean;
  /** A problem at `key`'s value (or at the mapping when absent); field defaults to `key`'s path. */
  problem(key: string, message: string): void;
  /** A problem at `key` itself (or at the mapping when absent), for a key that is wrong where it is. */
  keyProblem(key: string, message: string): void;
  /** A problem at the mapping itself, under its own field path. */
  mappingProblem(message: string): void;
}

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** `a.b`, or `b` at the top level. */
export function joinPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/**
 * A mapping with a fixed set of keys; any other key is reported as unknown.
 * `exclusive` lists groups of keys of which exactly one must be present;
 * `refine` runs only when every field is valid.
 */
export function object<S extends Record<string, Field<unknown>>>(
  fields: S,
  options: {
    exclusive?: readonly (readonly string[])[];
    refine?: (value: Shape<S>, refiner: Refiner, walk: Walk) => void;
    /** The problem for a key not in `fields`; `expected` lists the keys that are. */
    unknownKey?: (name: string, expected: string) => string;
  } = {},
): Check<Shape<S>> {
  const expected = Object.keys(fields).join(", ");
  const unknownKey = options.unknownKey ??
    ((name: string) => `unknown key ${JSON.stringify(name)} (expected one of: ${expected})`);
  registerObject(checkObject, Object.keys(fields));
  return checkObject;
  function checkObject(node: Node, path: string, walk: Walk): Shape<S> | Invalid {
    if (!isMap(node)) {
      // At the top level there is no field path to name the subject.
      const subject = path === "" ? "the config must" : "must";
      const hint = missingColonHint(scalarValue(node), Object.keys(fields));
      return fail(walk, node, path, `${subject} be a mapping, got ${describe(node)}${hint}`);
    }
    const before = walk.problems.length;
    const present = new Map<string, { key: Node; value: Node }>();
    for (const pair of node.items) {
      const keyNode = deref(pair.key as Node, walk, node);
      const name = String(scalarValue(keyNode));
      if (!Object.hasOwn(fields, name)) {
        report(walk, {
          node: keyNode,
          field: joinPath(path, name),
          message: unknownKey(name, expected) + unknownKeyHint(name, fields),
        });
      } else if (!present.has(name)) {
        // Later duplicates are already reported by the parser.
        present.set(name, { key: keyNode, value: deref(pair.value as Node, walk, keyNode) });
      }
    }
    let ok = true;
    const out: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(fields)) {
      const child = present.get(name)?.value;
      const childPath = joinPath(path, name);
      let value: unknown;
      if (child === undefined || (field.nullable && isScalar(child) && child.value === null)) {
        if (field.required) {
          report(walk, { node, field: childPath, message: field.missing ?? "is required" });
        }
        value = field.required ? INVALID : field.fallback?.(childPath, walk);
      } else {
        value = field.check(child, childPath, walk);
      }
      if (value === INVALID) ok = false;
      else if (value !== undefined) out[camel(name)] = value;
    }
    const refiner: Refiner = {
      has: (key) => present.has(key),
      problem(key, message) {
        report(walk, {
          node: present.get(key)?.value ?? node,
          field: joinPath(path, key),
          message,
        });
      },
      keyProblem(key, message) {
        report(walk, { node: present.get(key)?.key ?? node, field: joinPath(path, key), message });
      },
      mappingProblem(message) {
        report(walk, { node, field: path, message });
      },
    };
    for (const group of options.exclusive ?? []) {
      const given = group.filter((key) => present.has(key));
      if (given.length === 0) {
        report(walk, { node, field: path, message: `needs one of: ${group.join(", ")}` });
      }
      for (const extra of given.slice(1)) {
        report(walk, {
          node: present.get(extra)?.key,
          field: joinPath(path, extra),
          message: `cannot be combined with ${given[0]} (set only one of: ${group.join(", ")})`,
        });
      }
    }
    if (ok && walk.problems.length === before) options.refine?.(out as Shape<S>, refiner, walk);
    return walk.problems.length === before ? (out as Shape<S>) : INVALID;
  }
}
