import type { Logger } from "../log/logger.ts";
import type { KubeAccess } from "./kube_access.ts";

/** Any object the API server lists: only its identity and version are read here. */
export interface KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** Timing of the list/watch loop; defaults suit a real cluster, tests shrink them. */
export interface WatchTuning {
  /** Asked of the server per watch (it closes the watch after this; we re-watch). */
  readonly watchTimeoutSeconds: number;
  /** No byte (event or bookmark) for this long: the watch is stalled, start another. */
  readonly inactivityMs: number;
  /** Backoff after failures: first delay, cap (jittered, doubling). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Items per LIST page. */
  readonly pageSize: number;
}

/** Defaults: 5 min watches, a stall after 90 s of silence, backoff 0.5 s to 30 s. */
export const DEFAULT_TUNING: WatchTuning = {
  watchTimeoutSeconds: 300,
  inactivityMs: 90_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  pageSize: 500,
};

/** An HTTP status (or watch ERROR event) that is not success. */
export class ApiStatusError extends Error {
  readonly status: number;
  readonly retryAfterMs?: number;
  constructor(status: number, message: string, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Why a request to the API server failed, in words an operator can act on:
 * Deno's fetch says only "fetch failed" and keeps the reason in `cause`.
 */
export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error instanceof ApiStatusError) return error.message;
  const cause = error.cause instanceof Error ? error.cause.message : "";
  const text = `${error.message} ${cause}`;
  if (/connection refused/i.test(text)) return "connection refused";
  if (/dns error|failed to lookup address/i.test(text)) return "its host name does not resolve";
  if (/connection reset/i.test(text)) return "connection reset";
  if (/timed out/i.test(text)) return "connection timed out";
  const detail = (cause || error.message).split("\n")[0]
    .replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \(Connect\): /, "");
  if (/certificate|tls|handshake|corrupt message/i.test(text)) {
    return `TLS handshake failed: ${detail}`;
  }
  return detail;
}

type WatchEnd = "closed" | "gone" | "stalled";

/**
 * Whether a failure means an optional collection cannot be had at all: 404
 * (the API server does not serve the kind: its CRDs are not installed) or
 * 403 (this service account may not read it).
 */
function absence(error: unknown): 404 | 403 | undefined {
  if (!(error instanceof ApiStatusError)) return undefined;
  return error.status === 404 || error.status === 403 ? error.status : undefined;
}

/**
 * Keeps an up-to-date copy of one collection (e.g. the Services of one
 * namespace) by the Kubernetes list/watch protocol: LIST, then WATCH from
 * the list's resourceVersion, following every event's (and bookmark's)
 * resourceVersion, so that a watch the server closes resumes where it
 * ended without a relist. A 410 Gone (as status or as an ERROR event)
 * means the version is too old: LIST again and replace the copy, which
 * also catches deletions missed while disconnected. Failures back off
 * with jitter; the copy is never cleared because the server is away.
 */
export class ListWatch<T extends KubeObject> {
  /** The objects by `namespace/name`. */
  readonly items = new Map<string, T>();
  /** Set after the first complete LIST. */
  synced = false;
  /** Whether a watch is open now. */
  connected = false;
  /** When the last event or bookmark arrived (Date.now()), 0 if never. */
  lastEventAt = 0;
  relists = 0;
  errors = 0;
  /** The last failure (a fetch error or ApiStatusError), kept after recovery; see `describeFailure`. */
  lastError: unknown = undefined;
  /**
   * An optional collection the server answered 404 or 403 for: it counts as
   * listed and empty, and is asked for again every `backoffMaxMs`.
   */
  absent = false;
  /** For messages, e.g. `services in default`. */
  readonly name: string;
  /** Resolves after the first complete LIST. */
  readonly firstSync: Promise<void>;

  readonly #access: KubeAccess;
  readonly #path: string;
  readonly #tuning: WatchTuning;
  readonly #logger: Logger;
  readonly #onChange: () => void;
  readonly #onEvent: (type: string) => void;
  readonly #query: string;
  readonly #optional: boolean;
  #resourceVersion = "";
  #stopped = false;
  #abort?: AbortController;
  #loop?: Promise<void>;
  #sleep?: { timer: number; resolve: () => void };
  #resolveSync!: () => void;
  #outage = false;

  constructor(options: {
    access: KubeAccess;
    /** Collection path, e.g. `/api/v1/namespaces/default/services`. */
    path: string;
    /** For logs, e.g. `services in default`. */
    name: string;
    logger: Logger;
    /** Called after a batch of changes to `items`. */
    onChange: () => void;
    /** Called per event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR, RELIST). */
    onEvent?: (type: string) => void;
    /** Added to every LIST and WATCH, e.g. `fieldSelector=type%3Dkubernetes.io%2Ftls`. */
    query?: string;
    /**
     * A kind the cluster may not have (Gateway API CRDs) or may not grant:
     * 404 or 403 make it `absent` (listed, empty) instead of a failure.
     */
    optional?: boolean;
    tuning?: Partial<WatchTuning>;
  }) {
    this.#access = options.access;
    this.#path = options.path;
    this.name = options.name;
    this.#logger = options.logger;
    this.#onChange = options.onChange;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#query = options.query ? `&${options.query}` : "";
    this.#optional = options.optional ?? false;
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning };
    this.firstSync = new Promise((resolve) => this.#resolveSync = resolve);
  }

  /** Starts the loop in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the loop and waits for it to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!this.#stopped) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
        }
        const started = Date.now();
        const eventsBefore = this.lastEventAt;
        const end = await this.#watch();
        if (end === "gone") {
          needList = true;
          this.relists++;
          this.#onEvent("RELIST");
          failures = 0;
          continue;
        }
        if (end === "stalled") {
          this.errors++;
          this.#logger.warn("discovery_watch_stalled", {
            watch: this.name,
            silent_ms: this.#tuning.inactivityMs,
          });
          continue;
        }
        // A watch the server ends at once, again and again, is a failure in disguise.
        if (Date.now() - started < 1000 && this.lastEventAt === eventsBefore) {
          failures++;
          await this.#pause(this.#backoff(failures));
        } else {
          failures = 0;
        }
      } catch (error) {
        if (this.#stopped) break;
        this.connected = false;
        const missing = this.#optional ? absence(error) : undefined;
        if (missing !== undefined) {
          this.#markAbsent(missing, error);
          needList = true;
          failures = 0;
          await this.#pause(this.#tuning.backoffMaxMs);
          continue;
        }
        this.errors++;
        failures++;
        this.#onEvent("ERROR");
        this.lastError = error;
        if (!this.#outage) {
          this.#outage = true;
          this.#logger.warn("discovery_unavailable", {
            watch: this.name,
            server: this.#access.server,
            message: describeFailure(error),
            keeping: this.items.size,
          });
        }
        const delay = error instanceof ApiStatusError && error.retryAfterMs !== undefined
          ? Math.max(error.retryAfterMs, this.#backoff(failures))
          : this.#backoff(failures);
        await this.#pause(delay);
      }
    }
    this.connected = false;
  }

  /** The collection is not to be had: empty it, count it as listed, say so once. */
  #markAbsent(status: 404 | 403, error: unknown): void {
    this.lastError = error;
    if (!this.absent) {
      this.absent = true;
      const fields = {
        watch: this.name,
        server: this.#access.server,
        message: describeFailure(error),
      };
      if (status === 404) this.#logger.info("discovery_kind_absent", fields);
      else {
        this.#logger.warn("discovery_kind_forbidden", {
          ...fields,
          advice: "grant get, list and watch on it (docs/kubernetes.md#rbac) to use it",
        });
      }
    }
    const had = this.items.size > 0;
    this.items.clear();
    this.#resourceVersion = "";
    if (!this.synced) {
      this.synced = true;
      this.#resolveSync();
    }
    if (had) this.#onChange();
  }

  #backoff(failures: number): number {
    return backoffDelay(failures, this.#tuning.backoffInitialMs, this.#tuning.backoffMaxMs);
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms) as unknown as number;
      this.#sleep = { timer, resolve };
    });
  }

  async #get(query: string): Promise<Response> {
    this.#abort = new AbortController();
    const response = await this.#access.get(`${this.#path}?${query}`, this.#abort.signal);
    return response;
  }

  async #list(): Promise<void> {
    const fresh = new Map<string, T>();
    let next = "";
    let version = "";
    for (;;) {
      const query = `limit=${this.#tuning.pageSize}` + this.#query +
        (next ? `&continue=${encodeURIComponent(next)}` : "");
      const response = await this.#get(query);
      if (response.status === 410 && next) {
        // The continue token expired mid-listing: start over.
        await response.body?.cancel();
        fresh.clear();
        next = "";
        continue;
      }
      if (!response.ok) throw await statusError(response, `the list of ${this.name}`);
      const body = await response.json() as {
        metadata?: { resourceVersion?: string; continue?: string };
        items?: T[];
      };
      for (const item of body.items ?? []) fresh.set(keyOf(item), item);
      version = body.metadata?.resourceVersion ?? version;
      next = body.metadata?.continue ?? "";
      if (!next) break;
    }
    const changed = fresh.size !== this.items.size ||
      [...fresh].some(([key, item]) =>
        this.items.get(key)?.metadata.resourceVersion !== item.metadata.resourceVersion
      );
    if (changed) {
      this.items.clear();
      for (const [key, item] of fresh) this.items.set(key, item);
    }
    this.#resourceVersion = version;
    this.lastEventAt = Date.now();
    this.#recovered();
    if (this.absent) {
      this.absent = false;
      this.#logger.info("discovery_kind_present", { watch: this.name, items: this.items.size });
    }
    if (!this.synced) {
      this.synced = true;
      this.#resolveSync();
    }
    if (changed) this.#onChange();
  }

  async #watch(): Promise<WatchEnd> {
    const query = `watch=1&allowWatchBookmarks=true` +
      `&timeoutSeconds=${this.#tuning.watchTimeoutSeconds}` + this.#query +
      `&resourceVersion=${encodeURIComponent(this.#resourceVersion)}`;
    const response = await this.#get(query);
    if (response.status === 410) {
      await response.body?.cancel();
      return "gone";
    }
    if (!response.ok || response.body === null) {
      throw await statusError(response, `the watch of ${this.name}`);
    }
    this.connected = true;
    this.#recovered();

    const abort = this.#abort!;
    let stalled = false;
    let timer = 0;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        abort.abort();
      }, this.#tuning.inactivityMs) as unknown as number;
    };
    arm();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<string>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (stalled) return "stalled";
          if (this.#stopped) return "closed";
          throw error;
        }
        if (chunk.done) {
          // The server ended the watch (timeoutSeconds, or it restarted):
          // resume from the last version, no relist needed.
          return "closed";
        }
        arm();
        pending += chunk.value;
        if (pending.length > 16 * 1024 * 1024) throw new Error("Watch event larger than 16 MiB");
        let changed = false;
        let newline: number;
        while ((newline = pending.indexOf("\n")) !== -1) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line === "") continue;
          const result = this.#apply(JSON.parse(line));
          if (result === "gone") {
            if (changed) this.#onChange();
            return "gone";
          }
          changed ||= result === "changed";
        }
        if (changed) this.#onChange();
      }
    } finally {
      clearTimeout(timer);
      this.connected = false;
      reader.cancel().catch(() => {});
    }
  }

  #apply(event: { type?: string; object?: T & { code?: number; message?: string } }):
    | "changed"
    | "unchanged"
    | "gone" {
    const type = event.type ?? "";
    const object = event.object;
    this.#onEvent(type);
    this.lastEventAt = Date.now();
    if (type === "ERROR") {
      if (object?.code === 410) return "gone";
      throw new ApiStatusError(
        object?.code ?? 500,
        `watch ERROR event: ${object?.message ?? "unknown"}`,
      );
    }
    if (object?.metadata === undefined) return "unchanged";
    const version = object.metadata.resourceVersion;
    if (version) this.#resourceVersion = version;
    switch (type) {
      case "ADDED":
      case "MODIFIED":
        this.items.set(keyOf(object), object);
        return "changed";
      case "DELETED":
        return this.items.delete(keyOf(object)) ? "changed" : "unchanged";
      default:
        return "unchanged"; // BOOKMARK: only its resourceVersion matters
    }
  }

  #recovered(): void {
    if (!this.#outage) return;
    this.#outage = false;
    this.#logger.info("discovery_recovered", { watch: this.name, items: this.items.size });
  }
}

function keyOf(object: KubeObject): string {
  return `${object.metadata.namespace ?? ""}/${object.metadata.name}`;
}

async function statusError(response: Response, what: string): Promise<ApiStatusError> {
  let detail = "";
  try {
    const body = await response.json() as { message?: string };
    detail = body.message ? `: ${body.message}` : "";
  } catch {
    // not a Status object
  }
  const retryAfter = Number(response.headers.get("retry-after"));
  return new ApiStatusError(
    response.status,
    `API server answered ${response.status} to ${what}${detail}`,
    Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 300) * 1000 : undefined,
  );
}

/**
 * The wait before retry number `failures` (1 or more): `initialMs` doubling
 * up to `maxMs`, with full jitter on the upper half so many gateways do not
 * retry in step. For every retry against the API server.
 */
export function backoffDelay(failures: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 20));
  return ceiling / 2 + Math.random() * ceiling / 2;
}
