/**
 * Vanguard's command line: `start` (the default), `validate [FILE]`, `demo`, `apikey ID`; each
 * with `--help`. The only place that wires real dependencies together.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { newApiKey, sha256Hex } from "./lib/auth/api_keys.ts";
import { parseArgs } from "./lib/cli/args.ts";
import { readPermissionHint } from "./lib/cli/read_hint.ts";
import { usage } from "./lib/cli/usage.ts";
import { formatProblem, loadConfigFile, type LoadResult } from "./lib/config/load.ts";
import type { Config, ConfigProblem } from "./lib/config/types.ts";
import { runDemo } from "./lib/demo/demo.ts";
import {
  batchedStdout,
  createLogger,
  type Logger,
  type LogLineFormat,
  resolveLogFormat,
} from "./lib/log/logger.ts";
import { startGateway } from "./lib/server/gateway.ts";
import { startConfigReloader } from "./lib/server/reloader.ts";
import { untilSignal } from "./lib/server/signals.ts";

const PROJECT_DIR = dirname(fileURLToPath(import.meta.url));

async function main(args: string[]): Promise<number> {
  const invocation = parseArgs(args, { isFile });
  switch (invocation.kind) {
    case "help":
      console.log(usage(invocation.command));
      return 0;
    case "error": {
      const help = invocation.command === undefined
        ? `\n\n${usage()}`
        : `\n\nRun deno task ${invocation.command} --help for its usage.`;
      console.error(invocation.message + help);
      return 2;
    }
    case "validate":
      return await validate(invocation.config);
    case "start":
      return await start(invocation.config);
    case "demo":
      return await withLogger(resolveLogFormat("auto"), (logger) => runDemo(logger));
    case "apikey":
      return apikey(invocation.id);
  }
}

/** Whether `path` is an existing file, asked only where this process may read (no prompt). */
function isFile(path: string): boolean {
  try {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return false;
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Runs `body` with the logger of `format`, flushed at the end. */
async function withLogger(
  format: LogLineFormat,
  body: (logger: Logger) => Promise<number>,
  sink: { lineAtomic?: boolean } = {},
): Promise<number> {
  const logger = createLogger(format, batchedStdout(sink));
  try {
    return await body(logger);
  } finally {
    logger.flush();
  }
}

function printProblems(problems: readonly ConfigProblem[], stream: (line: string) => void) {
  for (const problem of problems) stream(formatProblem(problem));
}

/** Warnings in the same words in `validate` and at start: `FILE:LINE:COLUMN: field: warning: ...`. */
function printWarnings(result: LoadResult): void {
  printProblems(
    result.warnings.map((w) => ({ ...w, message: `warning: ${w.message}` })),
    console.error,
  );
}

/** What to run instead when the config lies outside what this task may read. */
function printReadHint(task: "start" | "validate", configPath: string): void {
  let denoJson: string | undefined;
  try {
    denoJson = Deno.readTextFileSync(`${PROJECT_DIR}/deno.json`);
  } catch { /* a compiled binary has none: the hint says it in general words */ }
  const hint = readPermissionHint({
    task,
    configPath,
    denoJson,
    projectDir: PROJECT_DIR,
    cwd: Deno.cwd(),
  });
  if (hint !== undefined) console.error(`\n${hint}`);
}

function apikey(id: string | undefined): number {
  if (id === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
    console.error("Usage: deno task apikey ID   (ID: 1 to 64 of A-Z a-z 0-9 . _ -)");
    return 2;
  }
  const key = newApiKey();
  console.log(`API key for "${id}" (give it to the client; it is not stored anywhere):

  ${key}

Add this to auth.api_key.keys in config.yaml:

      - id: ${id}
        sha256: "${sha256Hex(key)}"`);
  return 0;
}

async function validate(path: string): Promise<number> {
  // Checked where it is written, maybe far from the gateway's environment: a variable that is
  // not set here is said, not fatal (start refuses it).
  const result = await loadConfigFile(path, { unsetEnvIsWarning: true });
  printWarnings(result);
  if (!result.ok) {
    printProblems(result.problems, console.log);
    printReadHint("validate", path);
    return 1;
  }
  console.log("config OK");
  return 0;
}

async function start(path: string): Promise<number> {
  const result = await loadConfigFile(path);
  const format = resolveLogFormat(result.ok ? result.config.log.format : "auto");
  return await withLogger(format, async (logger) => {
    // A person at a terminal reads the warnings as validate prints them; a log collector gets
    // them as records.
    if (format === "text") printWarnings(result);
    else {
      for (const warning of result.warnings) {
        logger.warn("config_warning", { problem: formatProblem(warning) });
      }
    }
    if (!result.ok) {
      printProblems(result.problems, console.error);
      printReadHint("start", path);
      logger.error("config_invalid", { file: path, problems: result.problems.length });
      return 1;
    }
    return await serve(result.config, path, logger, format);
  }, {
    // Worker threads write the same stdout: every thread's writes are whole lines then.
    lineAtomic: result.ok && result.config.server.workers !== 1,
  });
}

async function serve(
  config: Config,
  path: string,
  logger: Logger,
  logFormat: LogLineFormat,
): Promise<number> {
  let gateway;
  try {
    gateway = await startGateway({ config, logger, logFormat });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    logger.error("startup_failed", { message });
    console.error(`Vanguard cannot start: ${message}`);
    return 1;
  }
  const reloader = startConfigReloader({ path, gateway, logger });
  const onHangup = () => {
    logger.info("signal_received", { signal: "SIGHUP" });
    reloader.reload("SIGHUP");
  };
  Deno.addSignalListener("SIGHUP", onHangup);
  await untilSignal(logger);
  Deno.removeSignalListener("SIGHUP", onHangup);
  reloader.stop();
  await gateway.shutdown();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
