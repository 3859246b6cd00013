/**
 * Reads the command line (what follows `main.ts` in a deno.json task) into what to run, or a
 * usage error that says what to type instead.
 *
 * @module
 */

import { didYouMean } from "../config/did_you_mean.ts";
import { type CommandName, COMMANDS } from "./usage.ts";

/** What the command line asks for. */
export type Invocation =
  | { readonly kind: "help"; readonly command?: CommandName }
  | { readonly kind: "start"; readonly config: string }
  | { readonly kind: "validate"; readonly config: string }
  | { readonly kind: "demo" }
  | { readonly kind: "apikey"; readonly id: string | undefined }
  /** A usage error (exit code 2): `message` says what to type instead. */
  | { readonly kind: "error"; readonly message: string; readonly command?: CommandName };

/** How {@linkcode parseArgs} tells a file name from a mistyped word. */
export interface ArgsOptions {
  /** Whether `path` names an existing file; must not prompt for a permission. */
  readonly isFile?: (path: string) => boolean;
}

const DEFAULT_CONFIG = "config.yaml";
const HELP = new Set(["-h", "--help", "-help", "help"]);

/**
 * `[COMMAND] [ARGUMENTS]`; without a command word it is `start` (the `deno task start` task has
 * none).
 */
export function parseArgs(args: readonly string[], options: ArgsOptions = {}): Invocation {
  const isFile = options.isFile ?? (() => false);
  const first = args[0];
  if (first === "help") {
    const topic = args[1];
    return topic !== undefined && isCommand(topic)
      ? { kind: "help", command: topic }
      : { kind: "help" };
  }
  const named = first !== undefined && !first.startsWith("-");
  if (named && !isCommand(first)) return unknownCommand(first, isFile);
  const command: CommandName = named ? first as CommandName : "start";
  const rest = named ? args.slice(1) : args;
  // -h anywhere: help wins over any mistake next to it.
  if (rest.some((arg) => HELP.has(arg) && arg !== "help")) return { kind: "help", command };
  switch (command) {
    case "start":
      return parseStart(rest, isFile);
    case "validate":
      return parseValidate(rest, isFile);
    case "demo":
      return rest.length === 0
        ? { kind: "demo" }
        : usageError("demo", `deno task demo takes no arguments, got ${quote(rest[0])}`);
    case "apikey":
      return rest.length <= 1
        ? { kind: "apikey", id: rest[0] }
        : usageError("apikey", `deno task apikey takes one ID, got ${rest.map(quote).join(" ")}`);
  }
}

function isCommand(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

/** Whether `arg` names a config file: an existing file, or a name ending like one. */
function looksLikeFile(arg: string, isFile: (path: string) => boolean): boolean {
  return /\.(ya?ml|json)$/i.test(arg) || isFile(arg);
}

function unknownCommand(word: string, isFile: (path: string) => boolean): Invocation {
  if (looksLikeFile(word, isFile)) {
    return {
      kind: "error",
      command: "start",
      message: `${quote(word)} is not a command. To run the gateway with this config:

  deno task start --config ${word}

or to check it:

  deno task validate ${word}`,
    };
  }
  const hint = didYouMean(word, [...COMMANDS, "help"]);
  return { kind: "error", message: `Unknown command ${quote(word)}${hint}` };
}

function parseStart(args: readonly string[], isFile: (path: string) => boolean): Invocation {
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    let value: string | undefined;
    if (arg === "--config") {
      value = args[++i];
      if (value === undefined) {
        return usageError("start", "--config needs a file: deno task start --config FILE");
      }
    } else if (arg.startsWith("--config=")) {
      value = arg.slice("--config=".length);
    } else if (looksLikeFile(arg, isFile)) {
      return usageError(
        "start",
        `Unknown argument ${quote(arg)}: to run the gateway with this config, write\n\n` +
          `  deno task start --config ${arg}`,
      );
    } else {
      return usageError("start", unknownArgument(arg, ["--config", "--help"]));
    }
    if (config !== undefined) {
      return usageError("start", `--config is given twice (${quote(config)} and ${quote(value)})`);
    }
    if (value === "") {
      return usageError("start", "--config needs a file: deno task start --config FILE");
    }
    config = value;
  }
  return { kind: "start", config: config ?? DEFAULT_CONFIG };
}

function parseValidate(args: readonly string[], isFile: (path: string) => boolean): Invocation {
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    // `--config FILE` is how start takes it: accepted here too rather than refused.
    if (arg === "--config" && args[i + 1] !== undefined) files.push(args[++i]);
    else if (arg.startsWith("--config=")) files.push(arg.slice("--config=".length));
    else if (arg.startsWith("-") && !looksLikeFile(arg, isFile)) {
      return usageError("validate", unknownArgument(arg, ["--help"]));
    } else files.push(arg);
  }
  if (files.length > 1) {
    return usageError(
      "validate",
      `deno task validate checks one file at a time, got ${files.map(quote).join(" ")}`,
    );
  }
  if (files[0] === "") return usageError("validate", "the file name is empty");
  return { kind: "validate", config: files[0] ?? DEFAULT_CONFIG };
}

function unknownArgument(arg: string, known: readonly string[]): string {
  return `Unknown argument ${quote(arg)}${didYouMean(arg.split("=")[0], known)}`;
}

function usageError(command: CommandName, message: string): Invocation {
  return { kind: "error", message, command };
}

function quote(text: string): string {
  return JSON.stringify(text);
}
