/** What starting a gateway takes, and what a running one offers. */
import type { LogLineFormat } from "../log/logger.ts";
import type { Metrics } from "../admin/metrics.ts";
import type { ReloadLog } from "../admin/reload_log.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { DiscoveryTuning } from "../discovery/kubernetes.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import type { Middleware } from "../pipeline/types.ts";
import type { TableView } from "../snapshot/switch.ts";
import type { WorkerTuning } from "../workers/pool.ts";

/** How to start a gateway; main.ts passes the real config and logger. */
export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Custom middleware, run after auth and rate limiting, just before the proxy. */
  readonly middleware?: readonly Middleware[];
  /** Overrides for the listen addresses (tests pass port 0). */
  readonly listen?: {
    port?: number;
    host?: string;
    adminPort?: number;
    adminHost?: string;
    redirectPort?: number;
  };
  /** One JSON line per request (default true). */
  readonly accessLog?: boolean;
  /** Environment lookup for secrets named in the config (default Deno.env.get). */
  readonly env?: (name: string) => string | undefined;
  /** File reader for key files (default Deno.readTextFileSync). */
  readonly readFile?: (path: string) => string;
  /** Wall clock in milliseconds (default Date.now); tests move it. */
  readonly now?: () => number;
  /** JWKS caching (default DEFAULT_JWKS_POLICY). */
  readonly jwksPolicy?: JwksCachePolicy;
  /** Kubernetes watch timing (tests shrink it). */
  readonly discoveryTuning?: Partial<DiscoveryTuning>;
  /** How often the `server.tls` files are re-read, in milliseconds (default 2000). */
  readonly tlsPollIntervalMs?: number;
  /**
   * Where worker threads (`server.workers` above 1) write their log lines:
   * `stdout` (default: each its own, tagged `worker`) or `logger` (posted
   * to this thread and written by `logger`; tests read them from memory).
   */
  readonly workerLogs?: "stdout" | "logger";
  /**
   * The format worker threads write their own lines in: the one the main
   * thread's logger was made with (`log.format` is read at start; a reload
   * does not change it). Absent: resolved from the config's `log.format`.
   */
  readonly logFormat?: LogLineFormat;
  /** Worker pool timing (tests shrink it). */
  readonly workerTuning?: Partial<WorkerTuning>;
}

/** A running gateway. */
export interface Gateway {
  readonly proxyAddr: Deno.NetAddr;
  readonly adminAddr: Deno.NetAddr;
  /** The `server.http_redirect_port` listener's address, when there is one. */
  readonly redirectAddr?: Deno.NetAddr;
  /** The table in force (read-only: the state switch is its one writer). */
  readonly routing: TableView;
  /** This thread's registry; with worker threads /metrics merges theirs into it. */
  readonly metrics: Metrics;
  /** What the config reloader last did (the reloader records it; the dashboard shows it). */
  readonly reloads: ReloadLog;
  /** The config now in force. */
  readonly config: Config;
  /**
   * Applies a new, already validated config without dropping a request:
   * everything is built first and swapped in at once; on any failure the
   * running config stays. Listen addresses change only on restart.
   */
  reload(config: Config): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Stops gracefully: readiness 503, no new connections, in-flight requests get the grace period. */
  shutdown(): Promise<void>;
}
