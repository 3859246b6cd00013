/**
 * Loads `config.yaml` into a frozen {@linkcode Config}, reporting every
 * problem with its line, column and field path (contract section 2).
 * The declarations live in config_schema.ts, the rules in rules.ts and
 * secrets.ts, the warnings in warnings.ts.
 *
 * @module
 */

import { resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { INVALID, type Node, report, type Walk } from "./schema.ts";
import { configSchema } from "./config_schema.ts";
import { defaultRouteId } from "./rules.ts";
import { readConfigFile, readEnvironment, readTextFile } from "./secrets.ts";
import { warnAboutSurprises } from "./warnings.ts";
import { explainYamlErrors } from "./yaml_errors.ts";
import { checkPluginModules } from "./plugin_check.ts";
import type { Config, ConfigProblem, ConfigWarning } from "./types.ts";

/** Where {@linkcode parseConfig} reads from, besides the config text. */
export interface ParseOptions {
  /** The config's path as the user gave it; problems name it. */
  displayPath: string;
  /** Becomes Config.file and the base for relative paths. */
  absolutePath: string;
  /** Reads the variables named by `*_env` keys; defaults to `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /** Reads `auth.jwt.public_key_file`; defaults to `Deno.readTextFileSync`. */
  readFile?: (absolutePath: string) => string;
  /** `deno task validate`: an unset `*_env` variable is a warning, not a problem. */
  unsetEnvIsWarning?: boolean;
}

/** The outcome of loading a config: the config, or every problem found. Warnings either way. */
export type LoadResult =
  | { ok: true; config: Config; warnings: ConfigWarning[] }
  | { ok: false; problems: ConfigProblem[]; warnings: ConfigWarning[] };

/**
 * Parses and validates config text, checking the secrets it names (environment variables, key
 * file) through `options.env` and `options.readFile`.
 */
export function parseConfig(text: string, options: ParseOptions): LoadResult {
  const lines = new LineCounter();
  const doc = parseYaml(text, lines);
  const walk: Walk = {
    file: options.displayPath,
    lines,
    doc,
    baseDir: resolve(options.absolutePath, ".."),
    env: options.env ?? readEnvironment,
    readFile: options.readFile ?? readTextFile,
    problems: [],
    warnings: [],
    unsetEnvIsWarning: options.unsetEnvIsWarning,
  };
  for (const warning of doc.warnings) {
    report(walk, { node: null, field: "", message: warning.message, warning: true });
    relocate(walk.warnings, lines, warning.pos[0]);
  }
  for (const problem of explainYamlErrors(text, doc, lines)) {
    walk.problems.push({ file: walk.file, field: "", ...problem });
  }
  // Past a syntax error the tree is a guess, so only duplicate keys (a well-formed tree) go on
  // to validation.
  if (doc.errors.some((error) => error.code !== "DUPLICATE_KEY")) return failure(walk);

  if (doc.contents === null) {
    report(walk, {
      node: null,
      field: "",
      message: "the config is empty: it needs at least a routes: list",
    });
    return failure(walk);
  }
  const contents = doc.contents as Node;
  const parsed = configSchema(contents, "", walk);
  if (parsed === INVALID || walk.problems.length > 0) return failure(walk);

  const config: Config = {
    file: options.absolutePath,
    ...parsed,
    routes: parsed.routes.map((route, index) => ({
      ...route,
      id: route.id ?? defaultRouteId(index),
    })),
  };
  warnAboutSurprises(config, walk);
  sortByPosition(walk.warnings);
  return { ok: true, config: deepFreeze(config), warnings: walk.warnings };
}

/**
 * Reads the file (problems for unreadable/missing file, as a ConfigProblem
 * at 1:1 with field "") then parseConfig. Path may be relative to cwd.
 * `unsetEnvIsWarning`: see {@linkcode ParseOptions}.
 */
export async function loadConfigFile(
  path: string,
  options: { unsetEnvIsWarning?: boolean } = {},
): Promise<LoadResult> {
  const read = await readConfigFile(path);
  if ("problem" in read) {
    const problem = { file: path, line: 1, column: 1, field: "", message: read.problem };
    return { ok: false, problems: [problem], warnings: [] };
  }
  const { text, absolutePath } = read;
  const result = parseConfig(text, { displayPath: path, absolutePath, ...options });
  if (!result.ok) return result;
  const problems = await checkPluginModules(result.config);
  return problems.length > 0 ? { ok: false, problems, warnings: result.warnings } : result;
}

/** `PATH:LINE:COLUMN: field.path: message`, or `PATH:LINE:COLUMN: message` when field is "". */
export function formatProblem(problem: ConfigProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  return problem.field === ""
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.field}: ${problem.message}`;
}

function parseYaml(text: string, lineCounter: LineCounter) {
  // The yaml package reads process.env.LOG_TOKENS and LOG_STREAM while parsing: every task
  // that loads a config grants exactly those two (--allow-env=LOG_TOKENS,LOG_STREAM).
  return parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
}

/** Moves the entry just reported to the parser's own offset (it has no AST node). */
function relocate(entries: ConfigProblem[], lines: LineCounter, offset: number): void {
  const last = entries[entries.length - 1];
  const { line, col } = lines.linePos(offset);
  entries[entries.length - 1] = { ...last, line, column: col };
}

function failure(walk: Walk): LoadResult {
  return {
    ok: false,
    problems: sortByPosition(walk.problems),
    warnings: sortByPosition(walk.warnings),
  };
}

function sortByPosition(entries: ConfigProblem[]): ConfigProblem[] {
  return entries.sort((a, b) => a.line - b.line || a.column - b.column);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
