/**
 * What a `routes:` entry may contain: its match (hosts, one path kind,
 * methods, headers, query), where it sends (one service, weighted backends,
 * or a redirect of its own) and its filters (rewrite, mirror, header
 * changes, timeout). Contract sections 2 and 9.
 *
 * @module
 */

import {
  boolean,
  defaulted,
  integer,
  INVALID,
  type Invalid,
  list,
  type Node,
  object,
  optional,
  report,
  required,
  section,
  text,
  type Walk,
} from "./schema.ts";
import {
  clientIdentifier,
  exactlyOne,
  headerMatchName,
  headerName,
  hostName,
  hostPattern,
  httpMethod,
  nonEmpty,
  pathExact,
  pathPrefix,
  redirectScheme,
  redirectStatus,
  routeId,
  safeRegex,
  serviceRef,
} from "./rules.ts";
import type { RedirectStatus } from "./types.ts";
import { headerChanges } from "./header_changes.ts";
import { middlewareSpec } from "./middleware_spec.ts";

/** A `headers:` or `query:` entry of a route (`name` checked by `name`). */
function valueMatchSchema(name: (value: string) => string) {
  return object({
    name: required(text(name)),
    value: optional(text<string>()),
    regex: optional(text(safeRegex)),
    present: optional(boolean()),
  }, {
    exclusive: [["value", "regex", "present"]],
    refine(entry, refiner) {
      if (entry.present === false) {
        refiner.problem("present", "must be true (leave the entry out to accept any request)");
      }
    },
  });
}

const PATH_KINDS = ["path_prefix", "path_exact", "path_regex"];
/** Where a route's requests go: exactly one of these. */
const TARGETS = ["service_name", "backends", "redirect"];
/** The keys that act on the upstream request, which a redirect route never sends. */
const UPSTREAM_KEYS = [
  "rewrite",
  "mirror",
  "sticky",
  "timeout_ms",
  "preserve_host",
  "request_headers",
  "strip_prefix",
  "forward_credentials",
];

/** `redirect.status`: one of the redirect statuses. */
function redirectStatusCheck(node: Node, path: string, walk: Walk): RedirectStatus | Invalid {
  const status = integer(301, 308)(node, path, walk);
  if (status === INVALID) return INVALID;
  const problem = redirectStatus(status);
  if (problem === undefined) return status as RedirectStatus;
  report(walk, { node, field: path, message: problem });
  return INVALID;
}

const backendSchema = object({
  service_name: required(text(serviceRef)),
  weight: defaulted(integer(0, 1_000_000), 1),
});

const redirectSchema = object({
  scheme: optional(text(redirectScheme)),
  host: optional(text(hostName)),
  port: optional(integer(1, 65535)),
  path: optional(text(pathExact)),
  path_prefix: optional(text(pathPrefix)),
  status: defaulted(redirectStatusCheck, 302 as RedirectStatus),
}, {
  refine(redirect, refiner) {
    if (redirect.path !== undefined && redirect.pathPrefix !== undefined) {
      refiner.keyProblem("path_prefix", "cannot be combined with path (set only one of them)");
    }
  },
});

const rewriteSchema = object({
  host: optional(text(hostName)),
  path: optional(text(pathExact)),
  path_prefix: optional(text(pathPrefix)),
}, {
  refine(rewrite, refiner) {
    if (rewrite.path !== undefined && rewrite.pathPrefix !== undefined) {
      refiner.keyProblem("path_prefix", "cannot be combined with path (set only one of them)");
    }
    if (
      rewrite.host === undefined && rewrite.path === undefined && rewrite.pathPrefix === undefined
    ) {
      refiner.mappingProblem("give host, path or path_prefix");
    }
  },
});

const mirrorSchema = object({
  service_name: required(text(serviceRef)),
  percent: defaulted(integer(0, 100), 100),
});

const stickySchema = object({
  header: optional(text(headerMatchName)),
  cookie: optional(text(headerName)),
}, { exclusive: [["header", "cookie"]] });

const routeFields = object({
  id: optional(text(routeId)),
  hosts: optional(list(text(hostPattern), { nonEmpty: true })),
  path_prefix: optional(text(pathPrefix)),
  path_exact: optional(text(pathExact)),
  path_regex: optional(text(safeRegex)),
  methods: optional(list(text(httpMethod), { nonEmpty: true })),
  headers: optional(list(valueMatchSchema(headerMatchName), { nonEmpty: true })),
  query: optional(list(valueMatchSchema(nonEmpty), { nonEmpty: true })),
  service_name: optional(text(serviceRef)),
  backends: optional(list(backendSchema, { nonEmpty: true })),
  sticky: section(stickySchema),
  redirect: section(redirectSchema),
  rewrite: section(rewriteSchema),
  mirror: section(mirrorSchema),
  timeout_ms: optional(integer(1, 3_600_000)),
  preserve_host: defaulted(boolean(), false),
  request_headers: section(headerChanges),
  response_headers: section(headerChanges),
  auth_required: defaulted(boolean(), false),
  strip_prefix: defaulted(boolean(), false),
  case_insensitive: defaulted(boolean(), false),
  forward_credentials: defaulted(boolean(), false),
  middleware: defaulted(list(middlewareSpec), []),
  rate_limit: section(object({
    requests_per_period: required(integer(1)),
    period_seconds: required(integer(1, 86400)),
    client_identifier: defaulted(text(clientIdentifier), "IP"),
  })),
}, {
  refine(route, refiner) {
    if (route.redirect !== undefined) {
      for (const key of UPSTREAM_KEYS) {
        if (refiner.has(key)) {
          refiner.keyProblem(
            key,
            "has no effect on a redirect route: it answers itself and sends nothing upstream",
          );
        }
      }
    }
    if (route.sticky !== undefined && route.backends === undefined) {
      refiner.keyProblem("sticky", "needs backends: with one service there is nothing to stick to");
    }
    if (route.backends !== undefined && route.backends.every((backend) => backend.weight === 0)) {
      refiner.problem("backends", "every weight is 0: give at least one backend a weight above 0");
    }
    const replacesPrefix = route.rewrite?.pathPrefix !== undefined ||
      route.redirect?.pathPrefix !== undefined;
    if (replacesPrefix && route.pathPrefix === undefined) {
      refiner.keyProblem(
        route.rewrite?.pathPrefix !== undefined ? "rewrite" : "redirect",
        "path_prefix replaces the matched prefix, so it needs a path_prefix route (use path for path_exact or path_regex)",
      );
    }
    if (route.stripPrefix && (route.rewrite?.path ?? route.rewrite?.pathPrefix) !== undefined) {
      refiner.keyProblem(
        "strip_prefix",
        "cannot be combined with rewrite.path or rewrite.path_prefix (strip_prefix: true is rewrite.path_prefix: /)",
      );
    }
    // A regex has no prefix to strip, and no letter case to fold that the pattern could not say.
    if (route.pathRegex === undefined) return;
    if (route.stripPrefix) refiner.keyProblem("strip_prefix", "cannot be used with path_regex");
    if (route.caseInsensitive) {
      refiner.keyProblem(
        "case_insensitive",
        "cannot be used with path_regex (write the pattern to accept both cases)",
      );
    }
  },
});

/** One `routes:` entry: exactly one path kind and exactly one target. */
export const routeSchema = exactlyOne(TARGETS, exactlyOne(PATH_KINDS, routeFields));
