import type { Config } from "../config/types.ts";

/** A config route that cannot serve a single request, and why (logged at start as `route_cannot_serve`). */
export interface RouteProblem {
  readonly route: string;
  /** Each reason on its own, in the order a request meets them. */
  readonly reasons: readonly string[];
  /** One sentence for the log: the route, then the reasons. */
  readonly message: string;
}

/**
 * The routes of `config` that answer every request with an error, decided
 * with what is known at start: whether an auth method is configured, and
 * whether a service can get endpoints (a static one with urls, or any name
 * while Kubernetes discovery is on). Config validation warns about the same
 * things as "may"; this says what the running gateway will do.
 */
export function routesThatCannotServe(
  config: Config,
  options: { discoveryOn: boolean },
): RouteProblem[] {
  const hasAuth = config.auth.apiKey !== undefined || config.auth.jwt !== undefined;
  const problems: RouteProblem[] = [];
  for (const route of config.routes) {
    const reasons: string[] = [];
    if (route.authRequired && !hasAuth) {
      reasons.push(
        "requires auth but no auth method is configured (auth.api_key or auth.jwt): every request answers 401",
      );
    }
    // Only the services the route answers from (a mirror's failure never shows).
    const targets = route.backends?.filter((backend) => backend.weight > 0)
      .map((backend) => backend.serviceName) ?? (route.serviceName ? [route.serviceName] : []);
    const dead = targets.map((name) => ({ name, why: deadService(config, name, options) }));
    if (targets.length > 0 && dead.every((entry) => entry.why !== undefined)) {
      const outcome = reasons.length === 0
        ? "every request answers 503"
        : "once an auth method is configured, requests would answer 503";
      const what = dead.map(({ name, why }) => `service ${JSON.stringify(name)}, which ${why}`)
        .join(", and to ");
      reasons.push(`sends to ${what}: ${outcome}`);
    }
    if (reasons.length === 0) continue;
    problems.push({
      route: route.id,
      reasons,
      message: `route ${JSON.stringify(route.id)} ${reasons.join("; it also ")}`,
    });
  }
  return problems;
}

/** Why `name` can never get an endpoint, or undefined when it can. */
function deadService(
  config: Config,
  name: string,
  options: { discoveryOn: boolean },
): string | undefined {
  const service = Object.hasOwn(config.services, name) ? config.services[name] : undefined;
  if (service?.urls?.length === 0) return "has an empty urls list";
  if (service?.urls === undefined && !options.discoveryOn) {
    return `${
      service ? "has no urls in services" : "is not defined in services"
    } and Kubernetes discovery is off`;
  }
  return undefined;
}
