/**
 * Writes the status the translation decided (GatewayClass, Gateway,
 * HTTPRoute, Ingress) through each object's `/status` subresource, and only
 * when it differs from the status the object has now. Only the replica that
 * holds the status Lease writes (`isLeader`).
 *
 * Writes are PUTs of the object we hold with its `resourceVersion`, so a write
 * based on a stale copy answers 409 instead of overwriting what another
 * controller wrote meanwhile; the watch then brings the newer object and the
 * next sync decides again. Writes go one at a time, each bounded by a
 * timeout; failures back off (doubling to 30 s) and are retried with the
 * latest wanted statuses, so a dead API server costs nothing but a log line.
 *
 * @module
 */
import { backoffDelay } from "../discovery/list_watch.ts";
import type { KubeAccess } from "../discovery/kube_access.ts";
import { describeFailure } from "../discovery/list_watch.ts";
import type { Logger } from "../log/logger.ts";
import type { StatusUpdate } from "./result.ts";

/** An object as the watches hold it: what the writer needs to write its status. */
export interface StatusTarget {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  status?: unknown;
}

/** Timing of the writer; tests shrink it. */
export interface StatusWriterTuning {
  /** Each write gives up after this: default 5 s. */
  readonly requestTimeoutMs: number;
  /** After a failure or a conflict the next try waits this long at first: default 500 ms. */
  readonly retryInitialMs: number;
  /** ... doubling up to this: default 30 s. */
  readonly retryMaxMs: number;
}

const DEFAULT_TUNING: StatusWriterTuning = {
  requestTimeoutMs: 5000,
  retryInitialMs: 500,
  retryMaxMs: 30_000,
};

/** Where each kind's `/status` lives. */
const KINDS: Record<
  StatusUpdate["kind"],
  { apiVersion: string; plural: string; namespaced: boolean }
> = {
  GatewayClass: {
    apiVersion: "gateway.networking.k8s.io/v1",
    plural: "gatewayclasses",
    namespaced: false,
  },
  Gateway: { apiVersion: "gateway.networking.k8s.io/v1", plural: "gateways", namespaced: true },
  HTTPRoute: { apiVersion: "gateway.networking.k8s.io/v1", plural: "httproutes", namespaced: true },
  Ingress: { apiVersion: "networking.k8s.io/v1", plural: "ingresses", namespaced: true },
};

/** What the writer remembers of its last write to one object. */
interface Written {
  /** The status we asked for (canonical JSON). */
  readonly wanted: string;
  /** The resourceVersion our write was based on. */
  readonly base: string | undefined;
  /** The status the server stored (canonical JSON), as it answered. */
  readonly stored: string;
}

/** How a {@linkcode StatusWriter} is set up. */
export interface StatusWriterOptions {
  readonly access: KubeAccess;
  readonly logger: Logger;
  /** Whether this replica may write now (it holds the Lease). */
  readonly isLeader: () => boolean;
  /** The object as the watches hold it now; undefined when it is gone. */
  readonly current: (update: StatusUpdate) => StatusTarget | undefined;
  readonly tuning?: Partial<StatusWriterTuning>;
}

/** Keeps the objects' status equal to the wanted statuses, writing only differences. */
export class StatusWriter {
  readonly #access: KubeAccess;
  readonly #logger: Logger;
  readonly #isLeader: () => boolean;
  readonly #current: (update: StatusUpdate) => StatusTarget | undefined;
  readonly #tuning: StatusWriterTuning;
  #wanted: readonly StatusUpdate[] = [];
  readonly #written = new Map<string, Written>();
  #running?: Promise<void>;
  #again = false;
  #stopped = false;
  #retryTimer: number | undefined;
  #failures = 0;
  #abort?: AbortController;
  /** Objects whose last write failed, to log a failure once, not at every retry. */
  readonly #failing = new Set<string>();
  /** Writes done (2xx), for tests and metrics. */
  writes = 0;

  constructor(options: StatusWriterOptions) {
    this.#access = options.access;
    this.#logger = options.logger;
    this.#isLeader = options.isLeader;
    this.#current = options.current;
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning };
  }

  /**
   * The statuses wanted now (the whole set, from the latest translation):
   * written in the background where they differ. Safe to call at every change.
   */
  sync(wanted: readonly StatusUpdate[]): void {
    this.#wanted = wanted;
    this.kick();
  }

  /** Checks the wanted statuses again (on becoming leader, after a conflict). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.kick();
      }
    });
  }

  /** Settles once no write is running (tests use it). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Stops writing; an in-flight write is aborted. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#abort?.abort();
    await this.#running?.catch(() => {});
  }

  async #drain(): Promise<void> {
    if (!this.#isLeader()) return;
    let retry = false;
    const live = new Set<string>();
    for (const update of this.#wanted) {
      if (this.#stopped || !this.#isLeader()) return;
      const key = keyOf(update);
      live.add(key);
      const outcome = await this.#reconcile(update, key);
      if (outcome === "retry") retry = true;
    }
    // Forget objects no translation wants any more (deleted ones).
    for (const key of [...this.#written.keys()]) if (!live.has(key)) this.#written.delete(key);
    if (retry) this.#scheduleRetry();
    else this.#failures = 0;
  }

  async #reconcile(update: StatusUpdate, key: string): Promise<"done" | "retry"> {
    const object = this.#current(update);
    if (object === undefined) return "done"; // deleted meanwhile
    const wanted = canonical(update.status);
    const now = canonical(object.status);
    if (wanted === now) return "done";
    const written = this.#written.get(key);
    if (written !== undefined && written.wanted === wanted) {
      // Our write is not in the watch's copy yet, or the server stored it in its own spelling.
      if (object.metadata.resourceVersion === written.base || now === written.stored) {
        return "done";
      }
    }
    const kind = KINDS[update.kind];
    const namespace = "namespace" in update ? update.namespace : undefined;
    const path = `/apis/${kind.apiVersion}/` +
      (kind.namespaced ? `namespaces/${encodeURIComponent(namespace ?? "")}/` : "") +
      `${kind.plural}/${encodeURIComponent(update.name)}/status`;
    const abort = new AbortController();
    this.#abort = abort;
    const timer = setTimeout(() => abort.abort(), this.#tuning.requestTimeoutMs);
    try {
      const response = await this.#access.send({
        method: "PUT",
        path,
        body: {
          ...object,
          apiVersion: kind.apiVersion,
          kind: update.kind,
          status: update.status,
        },
        signal: abort.signal,
      });
      const text = await response.text();
      if (response.status === 409 || response.status === 404) {
        // 409: our copy is stale, the watch brings the newer one; 404: deleted meanwhile.
        return response.status === 409 ? "retry" : "done";
      }
      if (!response.ok) {
        let message = "";
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? "";
        } catch {
          // not a Status object
        }
        throw new Error(
          `API server answered ${response.status} to the status of ${describe(update)}${
            message ? `: ${message}` : ""
          }`,
        );
      }
      let stored = wanted;
      try {
        stored = canonical((JSON.parse(text) as { status?: unknown }).status);
      } catch {
        // keep what we sent
      }
      this.#written.set(key, { wanted, base: object.metadata.resourceVersion, stored });
      this.writes++;
      if (this.#failing.delete(key)) {
        this.#logger.info("status_write_recovered", { object: describe(update) });
      }
      this.#logger.info("status_written", { object: describe(update) });
      return "done";
    } catch (error) {
      if (this.#stopped) return "done";
      if (!this.#failing.has(key)) {
        this.#failing.add(key);
        this.#logger.warn("status_write_failed", {
          object: describe(update),
          server: this.#access.server,
          message: describeFailure(error),
        });
      }
      return "retry";
    } finally {
      clearTimeout(timer);
    }
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    this.#failures++;
    const { retryInitialMs, retryMaxMs } = this.#tuning;
    const delay = backoffDelay(this.#failures, retryInitialMs, retryMaxMs);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.kick();
    }, delay) as unknown as number;
  }
}

function keyOf(update: StatusUpdate): string {
  return `${update.kind}/${"namespace" in update ? update.namespace : ""}/${update.name}`;
}

function describe(update: StatusUpdate): string {
  return "namespace" in update
    ? `${update.kind} ${update.namespace}/${update.name}`
    : `${update.kind} ${update.name}`;
}

/**
 * JSON with object keys sorted and absent values dropped: the API server
 * answers in its own key order, which must not count as a change.
 */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value) ?? null);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => sortKeys(item) ?? null);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = sortKeys((value as Record<string, unknown>)[key]);
    if (item !== undefined) out[key] = item;
  }
  return out;
}
