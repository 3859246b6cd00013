/**
 * Warnings for configs that are valid but would surprise their author: they load, and the
 * warnings are printed beside them.
 *
 * @module
 */

import { type Node, report, type Walk } from "./schema.ts";
import type { Config } from "./types.ts";

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
    const listed = Object.hasOwn(config.services, route.serviceName);
    if ((!listed || config.services[route.serviceName].urls === undefined) && !discoveryOn) {
      report(walk, {
        node: at(["routes", index, "service_name"]) ?? at(["routes", index]),
        field: `${field}.service_name`,
        message: `service ${JSON.stringify(route.serviceName)} ${
          listed ? "has no urls in services" : "is not defined in services"
        } and Kubernetes discovery may be off: requests answer 503 until it has endpoints`,
        warning: true,
      });
    }
  });
}
