/** What the admin listener reports on: the pieces of a running gateway it reads. */
import type { Config } from "../config/types.ts";
import type { Endpoint } from "../routing/table.ts";
import type { TableView } from "../snapshot/switch.ts";
import type { Metrics, MetricsSnapshot } from "./metrics.ts";
import type { ReloadLog } from "./reload_log.ts";

/** Endpoint health as the balancer sees it (UpstreamHealth). */
export interface EndpointHealth {
  /** Whether `url` may get traffic now: neither ejected nor failing active checks. */
  available(url: string): boolean;
  /** Whether an active health check has `url` marked down. */
  markedDown(url: string): boolean;
  /** What the balancer picks from: the available endpoints, else all of them (panic mode). */
  usable(endpoints: readonly Endpoint[]): readonly Endpoint[];
}

/** What the admin endpoints report on. */
export interface AdminDeps {
  readonly metrics: Metrics;
  readonly routing: TableView;
  /** True once the gateway can serve (config loaded, initial discovery sync done). */
  readonly isReady: () => boolean;
  /** True from the first shutdown signal until exit. */
  readonly isDraining: () => boolean;
  /**
   * The worker threads' metrics (server.workers above 1), merged into
   * `metrics` for /metrics; it must settle quickly whatever the workers do.
   */
  readonly gather?: () => Promise<readonly MetricsSnapshot[]>;
  /** Worker threads serving and configured, shown by /readyz (server.workers above 1). */
  readonly workers?: () => { serving: number; configured: number };
  /**
   * This thread's endpoint health, for the dashboard's endpoint states. With worker threads it
   * holds the active checks only: passive ejections happen in the workers (the dashboard shows
   * their count per service, from the merged metrics).
   */
  readonly health?: EndpointHealth;
  /** The config in force. */
  readonly config?: () => Config;
  /** The Kubernetes discovery of the config in force; undefined while discovery is off. */
  readonly discovery?: () => { readonly synced: boolean } | undefined;
  /** What the config reloader last did. */
  readonly reloads?: ReloadLog;
  /**
   * The admin token (`server.admin_token_env`): every path but /healthz and /readyz needs it.
   * Absent: the admin listener asks for none.
   */
  readonly token?: string;
  /**
   * Answer only requests addressed to a loopback name (see local_only.ts): set for a listener
   * bound to loopback without a token.
   */
  readonly localOnly?: boolean;
}
