import { formatProblem, loadConfigFile } from "../config/load.ts";
import type { Logger } from "../log/logger.ts";
import type { Gateway } from "./gateway_types.ts";

/** Reloads the config file into a gateway: when the file changes, and on demand (SIGHUP). */
export interface ConfigReloader {
  /** Re-reads, validates and applies the file now; `trigger` goes into the log. */
  reload(trigger: string): Promise<boolean>;
  stop(): void;
}

/**
 * Watches a config file by content, every `intervalMs`. A ConfigMap volume
 * updates its files by swapping a symlink (`..data`), which events on the
 * file itself can miss and which leaves mtimes unreliable; comparing what
 * the path reads as now with what was loaded catches every update.
 */
export function startConfigReloader(options: {
  path: string;
  gateway: Gateway;
  logger: Logger;
  intervalMs?: number;
}): ConfigReloader {
  const { path, gateway, logger } = options;
  let loaded = readOrNull(path);
  let busy: Promise<boolean> = Promise.resolve(true);

  function reload(trigger: string): Promise<boolean> {
    busy = busy.then(async () => {
      loaded = readOrNull(path);
      const result = await loadConfigFile(path);
      for (const warning of result.warnings) {
        logger.warn("config_warning", { problem: formatProblem(warning) });
      }
      if (!result.ok) {
        logger.error("config_reload_rejected", {
          trigger,
          file: path,
          problems: result.problems.map(formatProblem),
          message: "The new config is invalid; the running one stays",
        });
        gateway.reloads.record({
          trigger,
          file: path,
          result: "rejected",
          problems: result.problems.map(formatProblem),
        });
        return false;
      }
      const applied = await gateway.reload(result.config);
      if (applied.ok) logger.info("config_reload_applied", { trigger, file: path });
      gateway.reloads.record({
        trigger,
        file: path,
        result: applied.ok ? "applied" : "failed",
        problems: applied.ok ? [] : [applied.reason],
      });
      return applied.ok;
    });
    return busy;
  }

  const timer = setInterval(() => {
    const now = readOrNull(path);
    if (now !== loaded) reload("file_changed");
  }, options.intervalMs ?? 2000);
  Deno.unrefTimer(timer as unknown as number);

  return {
    reload,
    stop() {
      clearInterval(timer);
    },
  };
}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}
