/**
 * Vanguard's command line: `start` (the default), `validate [PATH]`, `demo`.
 * The only place that wires real dependencies together.
 */
import { newApiKey, sha256Hex } from "./lib/auth/api_keys.ts";
import { formatProblem, loadConfigFile } from "./lib/config/load.ts";
import type { ConfigProblem } from "./lib/config/types.ts";
import { runDemo } from "./lib/demo/demo.ts";
import { jsonLogger } from "./lib/log/logger.ts";
import { startGateway } from "./lib/server/gateway.ts";
import { startConfigReloader } from "./lib/server/reloader.ts";
import { untilSignal } from "./lib/server/signals.ts";

const USAGE = `Usage:
  main.ts [start] [--config PATH]   run the gateway (default config: ./config.yaml)
  main.ts validate [PATH]           check a config file and exit
  main.ts demo                      run two sample services behind the gateway
  main.ts apikey ID                 print a new API key and its config entry`;

const logger = jsonLogger();

async function main(args: string[]): Promise<number> {
  const command = args[0] && !args[0].startsWith("-") ? args[0] : "start";
  const rest = command === args[0] ? args.slice(1) : args;
  if (rest.includes("--help") || rest.includes("-h") || command === "help") {
    console.log(USAGE);
    return 0;
  }
  switch (command) {
    case "validate":
      return await validate(rest[0] ?? "config.yaml");
    case "start":
      return await start(rest);
    case "demo":
      return await runDemo(logger);
    case "apikey":
      return apikey(rest[0]);
    default:
      console.error(`Unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

function printProblems(problems: readonly ConfigProblem[], stream: (line: string) => void) {
  for (const problem of problems) stream(formatProblem(problem));
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
  const result = await loadConfigFile(path);
  printProblems(
    result.warnings.map((w) => ({ ...w, message: `warning: ${w.message}` })),
    console.error,
  );
  if (!result.ok) {
    printProblems(result.problems, console.log);
    return 1;
  }
  console.log("config OK");
  return 0;
}

async function start(args: string[]): Promise<number> {
  let path = "config.yaml";
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--config" && args[i + 1] !== undefined) path = args[++i];
    else if (args[i].startsWith("--config=")) path = args[i].slice("--config=".length);
    else {
      console.error(`Unknown argument "${args[i]}"\n${USAGE}`);
      return 2;
    }
  }
  const result = await loadConfigFile(path);
  for (const warning of result.warnings) {
    logger.warn("config_warning", { problem: formatProblem(warning) });
  }
  if (!result.ok) {
    printProblems(result.problems, console.error);
    logger.error("config_invalid", { file: path, problems: result.problems.length });
    return 1;
  }
  let gateway;
  try {
    gateway = await startGateway({ config: result.config, logger });
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
  const code = await main(Deno.args);
  logger.flush();
  Deno.exit(code);
}
