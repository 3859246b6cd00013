/**
 * Warnings for configs that are valid but would surprise their author: they load, and the
 * warnings are printed beside them.
 *
 * @module
 */

import { type Node, report, type Walk } from "./schema.ts";
import { type Config, routeServices } from "./types.ts";

/** Warnings for configs that load but would surprise their author at the first request. */
export function warnAboutSurprises(config: Config, walk: Walk): void {
  const at = (path: (string | number)[]) => walk.doc.getIn(path, true) as Node | undefined;
  if (config.routes.length === 0) {
    report(walk, {
      node: at(["routes"]),
      field: "routes",
      message: "no routes: every request will get 404",
      warning: true,
    });
  }
  warnAboutWorkerLimits(config, at, walk);
  const hasAuth = config.auth.apiKey !== undefined || config.auth.jwt !== undefined;
  const discoveryOn = config.discovery.kubernetes?.enabled === true;
  config.routes.forEach((route, index) => {
    const field = `routes[${index}]`;
    if (route.authRequired && !hasAuth) {
      report(walk, {
        node: at(["routes", index, "auth_required"]) ?? at(["routes", index]),
        field: `${field}.auth_required`,
        message:
          "route requires auth but no auth method is configured: it answers 401 to every request",
        warning: true,
      });
    }
    if (route.forwardCredentials && !route.authRequired) {
      report(walk, {
        node: at(["routes", index, "forward_credentials"]),
        field: `${field}.forward_credentials`,
        message: "forward_credentials has no effect without auth_required",
        warning: true,
      });
    }
    // An entry without urls only tunes a service that Kubernetes must provide.
    for (const name of routeServices(route)) {
      const listed = Object.hasOwn(config.services, name);
      if (listed && config.services[name].urls !== undefined || discoveryOn) continue;
      const key = route.mirror?.serviceName === name && route.serviceName !== name &&
          !route.backends?.some((backend) => backend.serviceName === name)
        ? ["mirror", "service_name"]
        : route.backends !== undefined
        ? ["backends"]
        : ["service_name"];
      report(walk, {
        node: at(["routes", index, ...key]) ?? at(["routes", index]),
        field: `${field}.${key.join(".")}`,
        message: `service ${JSON.stringify(name)} ${
          listed ? "has no urls in services" : "is not defined in services"
        } and Kubernetes discovery may be off: requests answer 503 until it has endpoints`,
        warning: true,
      });
    }
  });
}

/**
 * With worker threads and no Redis, each worker keeps its own in-memory
 * limiter: a client whose connections the kernel spreads over N workers may
 * get up to N times a route's limit.
 */
function warnAboutWorkerLimits(
  config: Config,
  at: (path: (string | number)[]) => Node | undefined,
  walk: Walk,
): void {
  const workers = config.server.workers;
  if (workers === 1 || config.redis !== undefined) return;
  const limited = config.routes.filter((route) => route.rateLimit !== undefined);
  if (limited.length === 0) return;
  const names = limited.slice(0, 5).map((route) => JSON.stringify(route.id)).join(", ") +
    (limited.length > 5 ? ` and ${limited.length - 5} more` : "");
  const times = workers === "auto" ? "one limit per core" : `${workers} times the limit`;
  report(walk, {
    node: at(["server", "workers"]),
    field: "server.workers",
    message:
      `each worker counts rate limits alone without redis: a client may get up to ${times} ` +
      `on ${names}; configure redis for an exact limit`,
    warning: true,
  });
}
