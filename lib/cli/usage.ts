/**
 * The help texts, spelled as a user types the commands: `deno task NAME` (the tasks of
 * deno.json), never `main.ts`.
 *
 * @module
 */

/** The commands, in the order the global usage lists them. */
export const COMMANDS = ["start", "validate", "demo", "apikey"] as const;

/** One of {@linkcode COMMANDS}. */
export type CommandName = typeof COMMANDS[number];

const GLOBAL = `Vanguard, an edge API gateway

Usage: deno task COMMAND [ARGUMENTS]

Commands:
  deno task start [--config FILE]   run the gateway (default config: ./config.yaml)
  deno task validate [FILE]         check a config file without starting anything
  deno task demo                    run two sample services behind the gateway
  deno task apikey ID               print a new API key and its config entry
  deno task test                    run the test suite

Run deno task COMMAND --help for one command.`;

const USAGES: Record<CommandName, string> = {
  start: `Usage: deno task start [--config FILE]

Runs the gateway with ./config.yaml, or with FILE, until SIGTERM or Ctrl-C.
SIGHUP reloads the config file.

Options:
  --config FILE   the config file to run (a path inside the project directory:
                  the task may read only there; for a file elsewhere it prints
                  the command line that can read it)
  -h, --help      print this help

A config that does not validate starts nothing (exit code 1).
Check one first with: deno task validate FILE`,

  validate: `Usage: deno task validate [FILE]

Checks FILE (default ./config.yaml) without starting anything: prints
"config OK" and exits 0, or prints every problem as
FILE:LINE:COLUMN: field.path: message and exits 1. Warnings go to stderr
and do not fail the check.

Options:
  -h, --help      print this help`,

  demo: `Usage: deno task demo

Starts two small sample services and the gateway in front of them on
127.0.0.1:8000 (admin on 127.0.0.1:8001), prints curl lines to try, and runs
until Ctrl-C. Needs no config, no Redis and no Kubernetes.

Options:
  -h, --help      print this help`,

  apikey: `Usage: deno task apikey ID

Prints a new random API key for the consumer ID (1 to 64 of A-Z a-z 0-9 . _ -)
and the auth.api_key.keys entry to paste into the config: only the key's
SHA-256 goes there, and the key itself is stored nowhere.

Options:
  -h, --help      print this help`,
};

/** The help of `command`, or the global usage listing every command. */
export function usage(command?: CommandName): string {
  return command === undefined ? GLOBAL : USAGES[command];
}
