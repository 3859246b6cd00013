/**
 * Where clients reach Vanguard, as its own Service says: the addresses
 * Gateway `status.addresses` and Ingress `status.loadBalancer.ingress`
 * publish (`discovery.kubernetes.publish_service`, default `vanguard` in
 * the gateway's own namespace).
 *
 * The Service is read with a GET now and then (a load balancer's address
 * arrives minutes after the Service), by the status-writing replica only.
 * A Service that is missing or unreadable publishes no address and says so
 * once; status is still written.
 *
 * @module
 */
import type { KubeAccess } from "../discovery/kube_access.ts";
import type { Logger } from "../log/logger.ts";

/** The parts of a Service its addresses come from. */
export interface PublishedService {
  spec?: { type?: string; clusterIP?: string; externalIPs?: string[] };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

/**
 * The addresses of a Service, best first: its load balancer's, else its
 * external IPs, else its cluster IP (none for a headless Service).
 */
export function serviceAddresses(service: PublishedService): string[] {
  const balanced = (service.status?.loadBalancer?.ingress ?? [])
    .map((entry) => entry.ip || entry.hostname || "")
    .filter((address) => address !== "");
  if (balanced.length > 0) return balanced;
  const external = (service.spec?.externalIPs ?? []).filter((ip) => ip !== "");
  if (external.length > 0) return external;
  const clusterIp = service.spec?.clusterIP;
  return clusterIp === undefined || clusterIp === "" || clusterIp === "None" ? [] : [clusterIp];
}

/** `name` or `namespace/name`, the namespace defaulting to the gateway's own. */
export function publishedServiceRef(
  value: string,
  ownNamespace: string,
): { namespace: string; name: string } {
  const slash = value.indexOf("/");
  return slash < 0
    ? { namespace: ownNamespace, name: value }
    : { namespace: value.slice(0, slash), name: value.slice(slash + 1) };
}

/** Keeps the published addresses of one Service, re-read every `refreshMs`. */
export class PublishedAddresses {
  readonly #access: KubeAccess;
  readonly #path: string;
  readonly #shown: string;
  readonly #logger: Logger;
  readonly #refreshMs: number;
  readonly #onChange: () => void;
  #addresses: readonly string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abort = new AbortController();
  /** The last problem logged, to say it once. */
  #problem: string | undefined;

  constructor(options: {
    access: KubeAccess;
    service: { namespace: string; name: string };
    logger: Logger;
    /** Called when the addresses changed. */
    onChange: () => void;
    refreshMs?: number;
  }) {
    this.#access = options.access;
    const { namespace, name } = options.service;
    this.#path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${
      encodeURIComponent(name)
    }`;
    this.#shown = `${namespace}/${name}`;
    this.#logger = options.logger;
    this.#refreshMs = options.refreshMs ?? 30_000;
    this.#onChange = options.onChange;
  }

  /** The addresses as last read (empty until the first read answers). */
  get current(): readonly string[] {
    return this.#addresses;
  }

  /** Reads the Service now and then every `refreshMs`, until `stop()`. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#abort = new AbortController();
    const tick = async () => {
      await this.refresh();
      if (this.#abort.signal.aborted) return;
      this.#timer = setTimeout(tick, this.#refreshMs);
      Deno.unrefTimer(this.#timer);
    };
    this.#timer = setTimeout(tick, 0);
    Deno.unrefTimer(this.#timer);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
  }

  /** One read; true when the addresses changed. */
  async refresh(): Promise<boolean> {
    let next: string[];
    try {
      const response = await this.#access.get(this.#path, this.#abort.signal);
      const text = await response.text();
      if (response.status === 404) {
        return this.#settle([], `Service ${this.#shown} does not exist`);
      }
      if (!response.ok) {
        return this.#settle(
          this.#addresses,
          `reading Service ${this.#shown}: HTTP ${response.status}`,
        );
      }
      next = serviceAddresses(JSON.parse(text) as PublishedService);
    } catch (error) {
      if (this.#abort.signal.aborted) return false;
      const reason = error instanceof Error ? error.message : String(error);
      return this.#settle(this.#addresses, `reading Service ${this.#shown}: ${reason}`);
    }
    return this.#settle(next, undefined);
  }

  #settle(next: readonly string[], problem: string | undefined): boolean {
    if (problem !== undefined && problem !== this.#problem) {
      this.#logger.warn("publish_service_unavailable", {
        problem,
        message: "Gateway and Ingress status publish no address until the Service can be read " +
          "(discovery.kubernetes.publish_service)",
      });
    }
    this.#problem = problem;
    if (next.join(",") === this.#addresses.join(",")) return false;
    this.#addresses = next;
    this.#onChange();
    return true;
  }
}
