/**
 * The end of a route's chain: it picks one of the route's backends (by
 * weight, or sticky by a header or cookie), starts the route's mirror, and
 * moves an upstream `Location` back under the route's prefix. Everything
 * about a route and its services is resolved once per snapshot.
 */
import { GatewayError } from "../pipeline/errors.ts";
import type { Handler, RequestContext } from "../pipeline/types.ts";
import type { Backend, RouteEntry, RoutingTable } from "../routing/table.ts";
import { locationForClient } from "./forwarding.ts";
import type { UpstreamHealth } from "./health.ts";
import { mirrors } from "./mirror.ts";
import { type ProxyDeps, serviceProxies, type ServiceProxy } from "./service_proxy.ts";

export type { ProxyDeps } from "./service_proxy.ts";

/** Makes the end of a route's chain on one table. */
export type ProxyFactory = (route: RouteEntry, table: RoutingTable) => Handler;

/** The proxy, as a factory of each route's terminal handler. */
export function proxy(deps: ProxyDeps): ProxyFactory {
  const serviceProxy = serviceProxies(deps);
  const mirrorFor = mirrors({ ...deps, maxBodyBytes: deps.retryBufferBytes });

  return function proxyFor(route: RouteEntry, table: RoutingTable): Handler {
    const backends = route.backends ?? [{ serviceName: route.serviceName, weight: 1 }];
    const choose = chooser(
      backends,
      table,
      deps.health,
      (backend) =>
        backend.unresolved === undefined
          ? serviceProxy(backend.serviceName, route, table)
          : unresolved(backend),
    );
    const mirror = mirrorFor(route, table);
    const movesPrefix = route.pathKind === undefined && route.rewrite?.path === undefined &&
      (route.stripPrefix || route.rewrite?.pathPrefix !== undefined);
    if (mirror === undefined && !movesPrefix) {
      return choose.single ?? ((ctx) => choose.pick(ctx)(ctx));
    }
    return async function routeProxy(ctx: RequestContext): Promise<Response> {
      mirror?.(ctx);
      const response = await choose.pick(ctx)(ctx);
      if (movesPrefix) {
        const location = response.headers.get("location");
        const moved = location === null
          ? undefined
          : locationForClient(ctx, location, upstreamAuthority(ctx));
        if (moved !== undefined) response.headers.set("location", moved);
      }
      return response;
    };
  };
}

/** The authority the upstream was addressed by, as it would write it in an absolute Location. */
function upstreamAuthority(ctx: RequestContext): string {
  const origin = ctx.upstream ?? "";
  return ctx.route?.rewrite?.host ?? origin.slice(origin.indexOf("://") + 3);
}

/**
 * How a request picks a backend on one table. Backends with weight 0 get
 * nothing; one whose service has no ready endpoint is skipped while another
 * can serve (its share goes to the others), so 503 comes only when none
 * can. With `sticky`, the same header or cookie value keeps the same
 * backend for as long as the set of backends that can serve stays the same.
 */
interface Chooser {
  /** Set when one backend takes every request: no choice per request. */
  readonly single?: ServiceProxy;
  readonly pick: (ctx: RequestContext) => ServiceProxy;
}

function chooser(
  backends: readonly Backend[],
  table: RoutingTable,
  health: UpstreamHealth,
  make: (backend: Backend) => ServiceProxy,
): Chooser {
  const weighted = backends.filter((backend) => backend.weight > 0);
  // An unresolved reference keeps its share: it answers 500, as the Gateway API requires.
  const serving = weighted.filter((backend) =>
    backend.unresolved !== undefined ||
    (table.service(backend.serviceName)?.ready.length ?? 0) > 0
  );
  // None can serve: the first one answers (503, no ready endpoint).
  const pool = serving.length > 0 ? serving : weighted.slice(0, 1);
  const proxies = pool.map(make);
  if (proxies.length === 1) return { single: proxies[0], pick: () => proxies[0] };
  const ready = pool.map((backend) => table.service(backend.serviceName)?.ready ?? []);
  const split = weightedPick(pool.map((backend) => backend.weight), proxies);
  return {
    pick(ctx) {
      // Health changes between snapshots: a backend whose every endpoint is
      // ejected or failing its checks is skipped while another is healthy.
      let healthy: number[] | undefined;
      for (let i = 0; i < pool.length; i++) {
        const up = pool[i].unresolved !== undefined || health.anyAvailable(ready[i]);
        if (!up && healthy === undefined) healthy = Array.from({ length: i }, (_, j) => j);
        else if (up) healthy?.push(i);
      }
      const key = stickyKey(ctx);
      if (healthy === undefined || healthy.length === 0) return split(key);
      const weights = healthy.map((i) => pool[i].weight);
      return weightedPick(weights, healthy.map((i) => proxies[i]))(key);
    },
  };
}

/** Picks from `choices` with probability weight / sum, or by the hash of `key` onto the weights. */
function weightedPick<T>(weights: readonly number[], choices: readonly T[]): (key?: string) => T {
  const cumulative: number[] = [];
  let total = 0;
  for (const weight of weights) cumulative.push(total += weight);
  return (key) => {
    const point = key === undefined ? Math.random() * total : hash(key) % total;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (point < cumulative[mid]) high = mid;
      else low = mid + 1;
    }
    return choices[low];
  };
}

/** The value a sticky route hashes: its header, or its cookie; undefined when the request has none. */
function stickyKey(ctx: RequestContext): string | undefined {
  const sticky = ctx.route?.sticky;
  if (sticky === undefined) return undefined;
  if (sticky.header !== undefined) return ctx.request.headers.get(sticky.header) ?? undefined;
  const cookies = ctx.request.headers.get("cookie");
  if (cookies === null) return undefined;
  for (const part of cookies.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === sticky.cookie) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** FNV-1a, 32 bits: the same value lands on the same backend in every instance. */
function hash(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function unresolved(backend: Backend): ServiceProxy {
  return (ctx) => {
    ctx.backend = backend.serviceName;
    return Promise.reject(
      new GatewayError(500, "backend_not_resolved", backend.unresolved!),
    );
  };
}
