/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
 * leaderelection does it: one replica holds the lease and renews it every few
 * seconds; the others watch it and take it over once it has not been renewed
 * for `leaseDurationSeconds`. Expiry is judged by the local clock from when
 * this replica last saw the lease change, never by comparing the holder's
 * `renewTime` with our clock, so clock skew between nodes cannot make two
 * leaders. A 409 Conflict on create or update means another replica won.
 *
 * Only the holder writes Gateway API and Ingress status. Every request has a
 * timeout, errors back off, and a holder that cannot renew stops counting
 * itself leader before the lease can expire for the others.
 *
 * @module
 */
import { backoffDelay } from "../discovery/list_watch.ts";
import type { KubeAccess } from "../discovery/kube_access.ts";
import { describeFailure } from "../discovery/list_watch.ts";
import type { Logger } from "../log/logger.ts";

/** The Lease that decides which replica writes status. */
export const STATUS_LEASE_NAME = "vanguard-gateway-status";

/** Timing of the election; defaults as the brief and client-go suggest, tests shrink them. */
export interface LeaseTuning {
  /** How long a lease lasts without renewal: default 15 s. */
  readonly leaseDurationSeconds: number;
  /** How often the holder renews and the others look: default 5 s. */
  readonly renewIntervalMs: number;
  /** Each request to the API server gives up after this: default 5 s. */
  readonly requestTimeoutMs: number;
}

/** The defaults of {@linkcode LeaseTuning}. */
export const DEFAULT_LEASE_TUNING: LeaseTuning = {
  leaseDurationSeconds: 15,
  renewIntervalMs: 5000,
  requestTimeoutMs: 5000,
};

/** The parts of a Lease the election reads and writes. */
interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number | null;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number | null;
  };
}

/** How a {@linkcode LeaderElection} is set up. */
export interface LeaderElectionOptions {
  readonly access: KubeAccess;
  readonly namespace: string;
  /** Default {@linkcode STATUS_LEASE_NAME}. */
  readonly name?: string;
  /** This replica's name in `holderIdentity` (the pod name). */
  readonly identity: string;
  readonly logger: Logger;
  /** Told when this replica becomes leader (true) or stops being it (false). */
  readonly onChange?: (leader: boolean) => void;
  readonly tuning?: Partial<LeaseTuning>;
  /** Monotonic-enough clock in ms (default performance.now). */
  readonly now?: () => number;
}

/**
 * Runs the election in the background (`start`); `isLeader` says whether this
 * replica holds the lease now.
 */
export class LeaderElection {
  readonly identity: string;
  readonly #access: KubeAccess;
  readonly #path: string;
  readonly #collection: string;
  readonly #name: string;
  readonly #namespace: string;
  readonly #logger: Logger;
  readonly #onChange: (leader: boolean) => void;
  readonly #tuning: LeaseTuning;
  readonly #now: () => number;
  #leader = false;
  /** When we last renewed successfully (our clock). */
  #renewedAt = 0;
  /** What we last saw of the lease, and when it changed (our clock). */
  #observed = "";
  #observedAt = 0;
  #stopped = false;
  #loop?: Promise<void>;
  #sleep?: { timer: number; resolve: () => void };
  #abort?: AbortController;
  #failing = false;

  constructor(options: LeaderElectionOptions) {
    this.identity = options.identity;
    this.#access = options.access;
    this.#name = options.name ?? STATUS_LEASE_NAME;
    this.#namespace = options.namespace;
    this.#collection = `/apis/coordination.k8s.io/v1/namespaces/${
      encodeURIComponent(options.namespace)
    }/leases`;
    this.#path = `${this.#collection}/${encodeURIComponent(this.#name)}`;
    this.#logger = options.logger;
    this.#onChange = options.onChange ?? (() => {});
    this.#tuning = { ...DEFAULT_LEASE_TUNING, ...options.tuning };
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether this replica holds the lease and renewed it recently enough to act on it. */
  get isLeader(): boolean {
    return this.#leader && this.#now() - this.#renewedAt < this.#deadlineMs();
  }

  /** Starts the election loop. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Stops the loop; a holder gives the lease up (empty holder, so another
   * replica takes over at its next look instead of after the lease expired).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    await this.#loop;
    if (this.#leader) {
      this.#setLeader(false);
      await this.#release().catch(() => {});
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      let delay = this.#tuning.renewIntervalMs;
      try {
        await this.#attempt();
        failures = 0;
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info("lease_recovered", { lease: this.#describe() });
        }
      } catch (error) {
        if (this.#stopped) break;
        failures++;
        if (!this.#failing) {
          this.#failing = true;
          this.#logger.warn("lease_unavailable", {
            lease: this.#describe(),
            server: this.#access.server,
            message: describeFailure(error),
          });
        }
        // Retry sooner than the renew interval at first, then no more often than it.
        delay = backoffDelay(failures, 250, this.#tuning.renewIntervalMs);
      }
      // A holder that could not renew in time must stop acting before the others may take over.
      if (this.#leader && !this.isLeader) this.#setLeader(false);
      await this.#pause(delay);
    }
  }

  /** One look at the lease: create, renew, take over or stand by. */
  async #attempt(): Promise<void> {
    const response = await this.#request("GET", this.#path);
    if (response.status === 404) {
      const now = microTime();
      const created = await this.#request("POST", this.#collection, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.#name, namespace: this.#namespace },
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: this.#tuning.leaseDurationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      });
      this.#settle(created, "create");
      return;
    }
    if (!response.ok) throw failure(response, "the lease");
    const lease = response.body as Lease;
    const spec = lease.spec ?? {};
    const seen = JSON.stringify([
      spec.holderIdentity,
      spec.renewTime,
      lease.metadata.resourceVersion,
    ]);
    if (seen !== this.#observed) {
      this.#observed = seen;
      this.#observedAt = this.#now();
    }
    const holder = spec.holderIdentity ?? "";
    const now = microTime();
    if (holder === this.identity) {
      const renewed = await this.#request("PUT", this.#path, {
        ...lease,
        spec: {
          ...spec,
          leaseDurationSeconds: this.#tuning.leaseDurationSeconds,
          renewTime: now,
        },
      });
      this.#settle(renewed, "renew");
      return;
    }
    const durationMs = (spec.leaseDurationSeconds ?? this.#tuning.leaseDurationSeconds) * 1000;
    const expired = holder === "" || this.#now() - this.#observedAt >= durationMs;
    if (!expired) {
      if (this.#leader) this.#setLeader(false);
      return;
    }
    const taken = await this.#request("PUT", this.#path, {
      ...lease,
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#tuning.leaseDurationSeconds,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === "" ? 0 : 1),
      },
    });
    this.#settle(taken, "take over");
  }

  /** A create or update's answer: 2xx we hold it, 409 another replica won. */
  #settle(response: Answer, what: string): void {
    if (response.status === 409) {
      if (this.#leader) this.#setLeader(false);
      return;
    }
    if (!response.ok) throw failure(response, `the lease ${what}`);
    const lease = response.body as Lease;
    this.#observed = JSON.stringify([
      lease.spec?.holderIdentity,
      lease.spec?.renewTime,
      lease.metadata.resourceVersion,
    ]);
    this.#observedAt = this.#now();
    this.#renewedAt = this.#now();
    if (!this.#leader) this.#setLeader(true);
  }

  /** Bounded to one second per request: shutting down must not wait on a dead API server. */
  async #release(): Promise<void> {
    if (this.#failing) return;
    const timeout = Math.min(1000, this.#tuning.requestTimeoutMs);
    const response = await this.#request("GET", this.#path, undefined, timeout);
    if (!response.ok) return;
    const lease = response.body as Lease;
    if (lease.spec?.holderIdentity !== this.identity) return;
    await this.#request("PUT", this.#path, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime() },
    }, timeout);
  }

  #setLeader(leader: boolean): void {
    this.#leader = leader;
    this.#logger.info(leader ? "lease_acquired" : "lease_lost", {
      lease: this.#describe(),
      identity: this.identity,
    });
    this.#onChange(leader);
  }

  /** A holder acts only while two thirds of the lease remain unspent (client-go's renew deadline). */
  #deadlineMs(): number {
    return this.#tuning.leaseDurationSeconds * 1000 * 2 / 3;
  }

  #describe(): string {
    return `${this.#namespace}/${this.#name}`;
  }

  /** One request, its body read whole, within the request timeout: nothing here can hang. */
  async #request(
    method: "GET" | "POST" | "PUT",
    path: string,
    body?: unknown,
    timeoutMs = this.#tuning.requestTimeoutMs,
  ): Promise<Answer> {
    const abort = new AbortController();
    this.#abort = abort;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = method === "GET"
        ? await this.#access.get(path, abort.signal)
        : await this.#access.send({ method, path, body, signal: abort.signal });
      const text = await response.text();
      let json: unknown = undefined;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: only the status matters then
      }
      return { status: response.status, ok: response.ok, body: json };
    } finally {
      clearTimeout(timer);
    }
  }

  #pause(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms) as unknown as number;
      this.#sleep = { timer, resolve };
    });
  }
}

/** An answer of the API server, read whole. */
interface Answer {
  readonly status: number;
  readonly ok: boolean;
  readonly body: unknown;
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
function microTime(): string {
  return new Date().toISOString().replace(/Z$/, "000Z");
}

function failure(answer: Answer, what: string): Error {
  const message = (answer.body as { message?: unknown } | undefined)?.message;
  const detail = typeof message === "string" && message ? `: ${message}` : "";
  return new Error(`API server answered ${answer.status} to ${what}${detail}`);
}
