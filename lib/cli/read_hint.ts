/**
 * When a config file lies outside what the task may read (`--allow-read=.`), the command line
 * that would read it: the task's own definition from deno.json with the file's directory added
 * to `--allow-read`, so the advice stays right when the tasks change.
 *
 * @module
 */

import { dirname, resolve } from "node:path";

/** What {@linkcode readPermissionHint} needs to know. */
export interface ReadHintOptions {
  /** The task that is running: its definition is the base of the command line. */
  readonly task: "start" | "validate";
  /** The config path as the user gave it. */
  readonly configPath: string;
  /** deno.json's text, or undefined when there is none to read (a compiled binary). */
  readonly denoJson: string | undefined;
  /** Directory of deno.json, where `deno task` runs its tasks. */
  readonly projectDir: string;
  /** The working directory, which relative paths start from. */
  readonly cwd: string;
  /** Whether this process may read `absolutePath` (defaults to asking Deno, without a prompt). */
  readonly mayRead?: (absolutePath: string) => boolean;
}

/** The advice to print, or undefined when the file is readable under this process's flags. */
export function readPermissionHint(options: ReadHintOptions): string | undefined {
  const absolute = resolve(options.cwd, options.configPath);
  const mayRead = options.mayRead ?? grantedRead;
  if (mayRead(absolute)) return undefined;
  const directory = dirname(absolute);
  const command = taskCommand(options);
  if (command === undefined) {
    return `${absolute} is outside the directories this process may read: add ${directory} ` +
      `to its --allow-read flag, or copy the file into ${options.cwd}`;
  }
  const words = withReadAccess(command, directory);
  const script = words.findIndex((word) => /\.ts$/.test(word));
  const after = words.slice(script + 1);
  if (options.task === "start" && after.length === 0) words.push("start");
  words.push(...(options.task === "start" ? ["--config", absolute] : [absolute]));
  const where = options.cwd === options.projectDir ? "" : ` (in ${options.projectDir})`;
  return `deno task ${options.task} may read only files inside the project directory, and ` +
    `${absolute} is outside it. To read it, run${where}:

  ${words.map(shellWord).join(" ")}

or copy the file into the project directory.`;
}

/** The words of the task's definition in deno.json, if it can be read. */
function taskCommand(options: ReadHintOptions): string[] | undefined {
  if (options.denoJson === undefined) return undefined;
  let tasks: unknown;
  try {
    tasks = JSON.parse(options.denoJson).tasks;
  } catch {
    return undefined;
  }
  const task = (tasks as Record<string, unknown> | undefined)?.[options.task];
  const command = typeof task === "string"
    ? task
    : (task as { command?: unknown } | undefined)?.command;
  return typeof command === "string" ? command.trim().split(/\s+/) : undefined;
}

/** `--allow-read=.` becomes `--allow-read=.,DIR`; without the flag, one is added. */
function withReadAccess(words: string[], directory: string): string[] {
  const out = [...words];
  const at = out.findIndex((word) => word === "--allow-read" || word.startsWith("--allow-read="));
  if (at >= 0) {
    // A bare --allow-read already allows every path: nothing to add.
    if (out[at] !== "--allow-read") out[at] = `${out[at]},${directory}`;
    return out;
  }
  const run = out.indexOf("run");
  out.splice(run >= 0 ? run + 1 : out.length, 0, `--allow-read=${directory}`);
  return out;
}

function grantedRead(path: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "read", path }).state === "granted";
  } catch {
    return false;
  }
}

/** A word as a POSIX shell reads it back: quoted only when it has to be. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
