/**
 * Warnings for configs that are valid but would surprise their author: they load, and the
 * warnings are printed beside them.
 *
 * @module
 */

import { type Node, report, type Walk } from "./schema.ts";
import { type Config, routeServices } from "./types.ts";
import { closestName, didYouMean } from "./did_you_mean.ts";

// The SHA-256 of the empty string: a key nobody can send.
const EMPTY_KEY_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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
  warnAboutPlaceholderKeys(config, at, walk);
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
      if (listed && config.services[name].urls !== undefined) continue;
      if (
        discoveryOn && (listed || closestName(name, Object.keys(config.services)) === undefined)
      ) {
        continue;
      }
      const key = route.mirror?.serviceName === name && route.serviceName !== name &&
          !route.backends?.some((backend) => backend.serviceName === name)
        ? ["mirror", "service_name"]
        : route.backends !== undefined
        ? ["backends"]
        : ["service_name"];
      // With discovery on, a name close to a static service's is most likely a typo of it.
      const message = discoveryOn
        ? `service ${
          JSON.stringify(name)
        } is not in services, so Kubernetes discovery must provide it`
        : `service ${JSON.stringify(name)} ${
          listed ? "has no urls in services" : "is not defined in services"
        } and Kubernetes discovery may be off: requests answer 503 until it has endpoints`;
      report(walk, {
        node: at(["routes", index, ...key]) ?? at(["routes", index]),
        field: `${field}.${key.join(".")}`,
        message: message + (listed ? "" : didYouMean(name, Object.keys(config.services))),
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

/**
 * An API key entry whose digest no key can have (all zeros, one repeated pattern, the digest of
 * an empty key): it was copied from an example and never replaced.
 */
function warnAboutPlaceholderKeys(
  config: Config,
  at: (path: (string | number)[]) => Node | undefined,
  walk: Walk,
): void {
  const keys = config.auth.apiKey?.keys ?? [];
  const placeholders = keys.flatMap((key, index) => {
    const kind = key.sha256 === undefined ? undefined : placeholderKind(key.sha256);
    return kind === undefined ? [] : [{ id: key.id, index, kind }];
  });
  for (const { id, index, kind } of placeholders) {
    const refused = placeholders.length === keys.length && config.auth.jwt === undefined
      ? "every request with an API key is refused (401)"
      : `no request is let in as ${JSON.stringify(id)}`;
    report(walk, {
      node: at(["auth", "api_key", "keys", index, "sha256"]),
      field: `auth.api_key.keys[${index}].sha256`,
      message: `is a placeholder (${kind}), not the SHA-256 of a real key: no key matches it, ` +
        `so ${refused}; make a real key with: deno task apikey ${id}`,
      warning: true,
    });
  }
}

/** How `digest` (lowercase hex) gives itself away as a placeholder, or undefined. */
function placeholderKind(digest: string): string | undefined {
  if (digest === EMPTY_KEY_DIGEST) return "the SHA-256 of an empty key";
  if (/^0+$/.test(digest)) return "all zeros";
  if (/^(.)\1+$/.test(digest)) return `all ${JSON.stringify(digest[0])}`;
  // A real digest repeating a pattern of 32 characters or fewer: odds of 16^-32 at most.
  if (/^(.{2,32})\1+$/.test(digest)) return "a repeated pattern";
  return undefined;
}
