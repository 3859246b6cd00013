/**
 * The messages between the main thread and its proxy worker threads
 * (`server.workers` above 1). Everything in them is plain, structured-cloneable
 * data: the config, the routing table's data (`RoutingTable.toData()`),
 * endpoint URLs, metric snapshots. No live object crosses a thread.
 *
 * @module
 */
import type { MetricsSnapshot } from "../admin/metrics.ts";
import type { JwksCachePolicy } from "../auth/jwks.ts";
import type { Config } from "../config/types.ts";
import type { CertificatePair } from "../gateway_api/tls_secret.ts";
import type { LogFields, LogLineFormat } from "../log/logger.ts";
import type { TableData } from "../routing/table.ts";

/** What a worker thread starts from. */
export interface WorkerStart {
  readonly type: "start";
  /** 0-based; in every log line the worker writes (`worker`). */
  readonly index: number;
  readonly config: Config;
  /** The table the main thread built for `config` (with discovery's objects). */
  readonly table: TableData;
  /** Endpoint URLs the main thread's active health checks have marked down. */
  readonly down: readonly string[];
  /** The Gateways' and Ingresses' TLS Secret certificates in force, served by SNI. */
  readonly secretCertificates: readonly CertificatePair[];
  /** Where to listen; the port is shared with the other workers (SO_REUSEPORT). */
  readonly listen: { readonly hostname: string; readonly port: number };
  /** GatewayOptions.accessLog (default true). */
  readonly accessLog: boolean;
  /** Post each log record to the main thread (whose logger writes it) instead of writing stdout. */
  readonly forwardLogs: boolean;
  /** The main thread's log format, fixed at its start (a restarted worker keeps it). */
  readonly logFormat: LogLineFormat;
  readonly jwksPolicy?: JwksCachePolicy;
}

/** From the main thread to a worker. */
export type ToWorker =
  | WorkerStart
  /** A new table for the runtime in force (discovery event, health-unrelated rebuild). */
  | { readonly type: "table"; readonly table: TableData }
  /** The whole set of endpoints marked down by active health checks now. */
  | { readonly type: "down"; readonly urls: readonly string[] }
  /** The `server.tls` files changed (the main thread polls them): read them again. */
  | { readonly type: "tls_changed" }
  /** The whole set of TLS Secret certificates (Gateway listeners, Ingress tls) changed. */
  | { readonly type: "secret_certificates"; readonly pairs: readonly CertificatePair[] }
  /** Reload, step 1: build (but do not install) a runtime for `config`. */
  | { readonly type: "prepare"; readonly id: number; readonly config: Config }
  /** Reload, step 2: install the prepared runtime with this table. */
  | { readonly type: "commit"; readonly id: number; readonly table: TableData }
  /** Reload failed elsewhere: release the prepared runtime. */
  | { readonly type: "abort"; readonly id: number }
  | { readonly type: "metrics"; readonly id: number }
  | { readonly type: "ping"; readonly id: number }
  /** Stop accepting, let requests in flight finish within the grace period, release everything. */
  | { readonly type: "shutdown"; readonly graceSeconds: number };

/** From a worker to the main thread. */
export type FromWorker =
  | { readonly type: "listening"; readonly hostname: string; readonly port: number }
  | { readonly type: "start_failed"; readonly reason: string }
  | {
    readonly type: "log";
    readonly level: "info" | "warn" | "error";
    readonly event: string;
    readonly fields: LogFields;
  }
  | { readonly type: "prepared"; readonly id: number }
  | { readonly type: "prepare_failed"; readonly id: number; readonly reason: string }
  | { readonly type: "committed"; readonly id: number }
  | { readonly type: "metrics"; readonly id: number; readonly snapshot: MetricsSnapshot }
  | { readonly type: "pong"; readonly id: number }
  | { readonly type: "stopped"; readonly drained: boolean };
