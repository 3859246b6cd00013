/** The pieces both ways of running the gateway (one thread, or workers) share. */
import { adminHandler } from "../admin/admin.ts";
import { isLoopbackName } from "../admin/local_only.ts";
import type { AdminDeps } from "../admin/admin_deps.ts";
import { Metrics } from "../admin/metrics.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { errorResponse } from "../middleware/error_boundary.ts";
import { GatewayError } from "../pipeline/errors.ts";
import { UpstreamHealth } from "../proxy/health.ts";
import { type RoutingTable } from "../routing/table.ts";
import { StateSwitch, type TableView } from "../snapshot/switch.ts";
import { type Runtime } from "./runtime.ts";
import { newContext } from "./context.ts";
import { type ClientHandler, listenFailure, type ProxyListener } from "./listener.ts";

import type { GatewayOptions } from "./gateway_types.ts";

/**
 * The proxy listener's handler: one read of the live cell per request, so
 * a request runs entirely on the config and table it arrived under (this
 * thread's switch, or a worker's).
 */
export function pinnedHandler(live: StateSwitch<Runtime>): ClientHandler {
  return function serve(request, client) {
    const snapshot = live.current;
    const ctx = newContext(request, client, snapshot.table, snapshot.runtime.trusted);
    return snapshot.handler(ctx);
  };
}

/** Answers a request whose handler threw: logged with the error, a generic 500 to the client. */
export function internalErrorResponder(logger: Logger): (error: unknown) => Response {
  return function internalError(error) {
    logger.error("internal_error", { error });
    return errorResponse(
      { requestId: crypto.randomUUID() },
      new GatewayError(500, "internal_error", "The gateway failed to handle this request"),
    );
  };
}

/**
 * Lets `listeners` drain (no new connections, requests in flight finish)
 * for at most `graceSeconds`, then closes what is left. True when all
 * drained in time.
 */
export async function drainListeners(
  listeners: readonly (ProxyListener | undefined)[],
  graceSeconds: number,
  logger: Logger,
): Promise<boolean> {
  const open = listeners.filter((listener): listener is ProxyListener => listener !== undefined);
  if (open.length === 0) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const graceOver = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceSeconds * 1000);
  });
  const result = await Promise.race([
    Promise.all(open.map((listener) => listener.shutdown())).then(() => "drained" as const),
    graceOver,
  ]);
  clearTimeout(timer);
  if (result === "timeout") logger.warn("shutdown_grace_expired", {});
  // Requests still running after the grace period are cut off.
  for (const listener of open) await listener.close();
  return result === "drained";
}

/** Keeps `vanguard_upstream_ejected_endpoints` current: computed before each scrape. */
export function publishEjected(metrics: Metrics, routing: TableView, health: UpstreamHealth): void {
  metrics.beforeRender(() => {
    metrics.upstreamEjected.reset();
    for (const service of new Set(routing.current.services.values())) {
      const out = service.ready.filter((endpoint) => !health.available(endpoint.url)).length;
      metrics.upstreamEjected.set({ service: service.name }, out);
    }
  });
}

/** The gauges that describe the table in force: ready endpoints per service, the version. */
export function refreshTableGauges(metrics: Metrics, table: RoutingTable): void {
  metrics.serviceEndpoints.reset();
  // A Service in the default namespace is in the table twice (name and name.namespace).
  for (const service of new Set(table.services.values())) {
    metrics.serviceEndpoints.set({ service: service.name }, service.ready.length);
  }
  metrics.tableVersion.set({}, table.version);
}

/**
 * Opens the admin listener, asking for the token of `server.admin_token_env` when one is
 * configured; throws what an operator needs to know when it cannot.
 */
export function openAdmin(
  options: GatewayOptions,
  deps: Omit<AdminDeps, "token">,
): Deno.HttpServer<Deno.NetAddr> {
  const listen = options.config.server;
  const token = adminToken(options);
  const at = {
    hostname: options.listen?.adminHost ?? listen.adminHost,
    port: options.listen?.adminPort ?? listen.adminPort,
    hostKey: "server.admin_host",
    portKey: "server.admin_port",
  };
  try {
    return Deno.serve(
      { port: at.port, hostname: at.hostname, onListen() {} },
      adminHandler({
        ...deps,
        token,
        localOnly: token === undefined && isLoopbackName(at.hostname),
      }),
    );
  } catch (error) {
    throw listenFailure(error, at);
  }
}

/** The admin token, read once at start (like the admin address, it changes on restart). */
function adminToken(options: GatewayOptions): string | undefined {
  const name = options.config.server.adminTokenEnv;
  if (name === undefined) return undefined;
  const token = (options.env ?? ((key: string) => Deno.env.get(key)))(name);
  // The loader checked it; a different environment at start must not leave the listener open.
  if (token === undefined || token === "") {
    throw new Error(
      `server.admin_token_env: environment variable ${JSON.stringify(name)} is not set or empty`,
    );
  }
  return token;
}

/** The fields of a reloaded config that only a restart applies (listen addresses, TLS on/off, workers). */
export function restartOnlyFields(config: Config, old: Config): string[] {
  const moved = [
    "port",
    "host",
    "adminPort",
    "adminHost",
    "adminTokenEnv",
    "httpRedirectPort",
    "workers",
  ].filter((
    key,
  ) =>
    config.server[key as keyof typeof config.server] !==
      old.server[key as keyof typeof old.server]
  );
  // Turning TLS on or off changes what the listener is: a restart does it.
  if ((config.server.tls === undefined) !== (old.server.tls === undefined)) moved.push("tls");
  return moved;
}

/** Resolves after `ms`, or at once when woken through `wakers` (shutdown). */
export function sleep(ms: number, wakers?: Set<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      wakers?.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    wakers?.add(wake);
  });
}
