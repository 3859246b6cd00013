/**
 * The scalar and cross-item rules of the config: pure functions that accept, normalize or
 * {@linkcode reject} one value (header names, DNS labels, URLs, CIDRs, path prefixes, consumer
 * ids, JWT algorithms...). Rules that read a secret live in secrets.ts.
 *
 * @module
 */

import { resolve } from "node:path";
import ipaddr from "ipaddr.js";
import { isMap, isScalar } from "yaml";
import {
  type Check,
  INVALID,
  type ListRefine,
  type Node,
  reject,
  report,
  type Walk,
} from "./schema.ts";
import { checkPathPrefix } from "../routing/path.ts";
import { checkHostPattern, matchKey, patternProblem } from "../routing/match.ts";
import type { ValueMatchConfig } from "./types.ts";
import { CONSUMER_ID_RULE, isConsumerId } from "../auth/consumer.ts";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 9110 token: what a header field name may be made of.
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ROUTE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The JWT signature algorithms `auth.jwt.algorithms` may list. */
export const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "HS256",
  "HS384",
  "HS512",
] as const;

/** A string that is not empty. */
export function nonEmpty(value: string): string {
  return value === "" ? reject("must not be empty") : value;
}

/** A consumer id as the auth layer forwards it upstream. */
export function consumerId(value: string): string {
  return isConsumerId(value) ? value : reject(`consumer id ${CONSUMER_ID_RULE}`);
}

/** The name of an environment variable (not its value: that is secrets.ts's job). */
export function envName(value: string): string {
  if (ENV_NAME.test(value)) return value;
  return reject(
    `must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(value)}`,
  );
}

/** An HTTP header field name (an RFC 9110 token). */
export function headerName(value: string): string {
  if (HEADER_TOKEN.test(value)) return value;
  return reject(`must be a valid HTTP header name, got ${JSON.stringify(value)}`);
}

/** `IP` or a header name: what a rate limit counts requests by. */
export function clientIdentifier(value: string): string {
  if (value === "IP" || HEADER_TOKEN.test(value)) return value;
  return reject(`must be "IP" or a valid HTTP header name, got ${JSON.stringify(value)}`);
}

/** A DNS-1123 label, such as a Kubernetes namespace. */
export function dnsLabel(value: string): string {
  if (DNS_LABEL.test(value)) return value;
  return reject(
    `must be a DNS-1123 label (lowercase letters, digits and "-", at most 63), got ${
      JSON.stringify(value)
    }`,
  );
}

/** A key of `services:`. */
export function serviceName(value: string): void {
  if (!DNS_NAME.test(value)) {
    reject(
      `invalid service name ${JSON.stringify(value)}: use lowercase letters, digits, "-" and "."`,
    );
  }
}

/** A route's `service_name`: `name` or `name.namespace`. */
export function serviceRef(value: string): string {
  const parts = value.split(".");
  if (parts.length <= 2 && parts.every((part) => DNS_LABEL.test(part))) return value;
  return reject(
    `must be "name" or "name.namespace" made of DNS-1123 labels, got ${JSON.stringify(value)}`,
  );
}

/** A route's `id`. */
export function routeId(value: string): string {
  if (ROUTE_ID.test(value)) return value;
  return reject(`must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(value)}`);
}

/** The id of a route written without one: its index. */
export function defaultRouteId(index: number): string {
  return `route-${index}`;
}

/** A SHA-256 digest in hex, normalized to lowercase. */
export function sha256(value: string): string {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return value.toLowerCase();
  return reject("must be 64 hexadecimal digits (the SHA-256 of the key)");
}

function parseUrl(value: string, schemes: readonly string[]): URL {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url && schemes.includes(url.protocol)) return url;
  const names = schemes.map((scheme) => `${scheme}//`).join(" or ");
  return reject(`must be a ${names} URL, got ${JSON.stringify(value)}`);
}

/** An http:// or https:// URL, kept as written. */
export function httpUrl(value: string): string {
  parseUrl(value, ["http:", "https:"]);
  return value;
}

/** A redis:// or rediss:// URL, kept as written. */
export function redisUrl(value: string): string {
  parseUrl(value, ["redis:", "rediss:"]);
  return value;
}

/** An http(s) origin (scheme://host[:port]), normalized by URL. */
export function originUrl(value: string): string {
  const url = parseUrl(value, ["http:", "https:"]);
  // Checked on the raw text too: URL drops an empty "?" or "#".
  if (
    url.pathname !== "/" || url.username !== "" || url.password !== "" || /[?#]/.test(value)
  ) {
    reject(
      `must be an origin only (scheme://host[:port]), without path, query, fragment or credentials, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return url.origin;
}

/** A health-check request target: an absolute path, optionally with a query. */
export function probePath(value: string): string {
  if (value.startsWith("/") && !value.startsWith("//") && !/[\s#]/.test(value)) return value;
  return reject(
    `must be a path starting with "/" (no spaces or fragment), got ${JSON.stringify(value)}`,
  );
}

/** An IPv4 or IPv6 CIDR; a bare address gets its full prefix length. */
export function cidr(value: string): string {
  const [address, bits, ...rest] = value.split("/");
  const max = ipaddr.IPv4.isValidFourPartDecimal(address)
    ? 32
    // A zone index (fe80::1%eth0) never appears in a peer address we compare against.
    : ipaddr.IPv6.isValid(address) && !address.includes("%")
    ? 128
    : 0;
  if (max === 0 || rest.length > 0) {
    reject(
      `must be an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8, got ${JSON.stringify(value)}`,
    );
  }
  if (bits === undefined) return `${address}/${max}`;
  if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) {
    reject(`prefix length must be 0 to ${max}, got ${JSON.stringify(value)}`);
  }
  return `${address}/${Number(bits)}`;
}

/** A path, resolved against the config file's directory. */
export function filePath(value: string, walk: Walk): string {
  return resolve(walk.baseDir, nonEmpty(value));
}

/** A JWT algorithm; `none` is refused by name. */
export function algorithm(value: string): string {
  if (value.toLowerCase() === "none") {
    reject(`"none" is not allowed: it would accept unsigned tokens`);
  }
  if ((JWT_ALGORITHMS as readonly string[]).includes(value)) return value;
  return reject(`must be one of ${JWT_ALGORITHMS.join(", ")}, got ${JSON.stringify(value)}`);
}

/** A route's `path_prefix`, in its canonical form. */
export function pathPrefix(value: string): string {
  const checked = checkPathPrefix(value);
  return "problem" in checked ? reject(checked.problem) : checked.prefix;
}

/** A route's `path_exact`: a path canonicalizePath() could produce, kept as written. */
export function pathExact(value: string): string {
  const checked = checkPathPrefix(value);
  return "problem" in checked ? reject(checked.problem) : value;
}

/** A `path_regex` or a header/query `regex`: valid, and safe from catastrophic backtracking. */
export function safeRegex(value: string): string {
  const problem = patternProblem(value);
  return problem === undefined ? value : reject(problem);
}

/** A `hosts:` entry, lowercase: a DNS name, optionally `*.` then a DNS name. */
export function hostPattern(value: string): string {
  const checked = checkHostPattern(value);
  return "problem" in checked ? reject(checked.problem) : checked.host;
}

/** A host name to send or redirect to (`rewrite.host`, `redirect.host`): no wildcard, no port. */
export function hostName(value: string): string {
  const checked = checkHostPattern(value);
  if ("problem" in checked) return reject(checked.problem);
  if (checked.host.startsWith("*.")) {
    return reject(`must be one host name, not a wildcard, got ${JSON.stringify(value)}`);
  }
  return checked.host;
}

/** `redirect.scheme`. */
export function redirectScheme(value: string): "http" | "https" {
  if (value === "http" || value === "https") return value;
  return reject(`must be http or https, got ${JSON.stringify(value)}`);
}

/** The problem with a `redirect.status`, if any. */
export function redirectStatus(status: number): string | undefined {
  return [301, 302, 303, 307, 308].includes(status)
    ? undefined
    : `must be one of 301, 302, 303, 307, 308, got ${status}`;
}

/** A `methods:` entry: an RFC 9110 token, uppercase (methods compare case-sensitively). */
export function httpMethod(value: string): string {
  if (HEADER_TOKEN.test(value)) return value.toUpperCase();
  return reject(`must be an HTTP method such as GET or POST, got ${JSON.stringify(value)}`);
}

/** A header match's `name`, lowercase (header names compare case-insensitively). */
export function headerMatchName(value: string): string {
  return headerName(value).toLowerCase();
}

/**
 * A route mapping with exactly one of `keys` (the path kinds): none, or two,
 * is a problem at the route, or at the second key.
 */
export function exactlyOne<T>(keys: readonly string[], check: Check<T>): Check<T> {
  const names = keys.join(", ");
  return function checkExactlyOne(node, path, walk) {
    const before = walk.problems.length;
    if (isMap(node)) {
      const given = node.items.filter((pair) =>
        isScalar(pair.key) && keys.includes(String(pair.key.value))
      );
      if (given.length === 0) {
        report(walk, { node, field: path, message: `needs exactly one of ${names}` });
      }
      for (const extra of given.slice(1)) {
        const name = String((extra.key as { value: unknown }).value);
        report(walk, {
          node: extra.key as Node,
          field: `${path}.${name}`,
          message: `cannot be combined with ${
            String((given[0].key as { value: unknown }).value)
          }: a route has exactly one of ${names}`,
        });
      }
    }
    const result = check(node, path, walk);
    return walk.problems.length === before ? result : INVALID;
  };
}

/** What {@linkcode uniqueMatches} reads of a validated route. */
interface MatchedRoute {
  readonly id?: string;
  readonly pathPrefix?: string;
  readonly pathExact?: string;
  readonly pathRegex?: string;
  readonly caseInsensitive?: boolean;
  readonly hosts?: readonly string[];
  readonly methods?: readonly string[];
  readonly headers?: readonly ValueMatchConfig[];
  readonly query?: readonly ValueMatchConfig[];
}

/**
 * Warns about a route whose whole match (hosts, path, methods, headers,
 * query) repeats an earlier route's: the earlier one always wins, so the
 * later one never serves. Routes that share a path but differ in anything
 * else are fine.
 */
export function uniqueMatches<T extends MatchedRoute>(): ListRefine<T> {
  return function checkUniqueMatches(items, { nodes, path, walk }) {
    const seen = new Map<string, { index: number; id: string }>();
    items.forEach((item, index) => {
      if (item === INVALID) return;
      const id = item.id ?? defaultRouteId(index);
      const key = matchKey({
        hosts: item.hosts,
        pathKind: item.pathExact !== undefined
          ? "exact"
          : item.pathRegex !== undefined
          ? "regex"
          : undefined,
        pathPrefix: item.pathExact ?? item.pathRegex ?? item.pathPrefix ?? "/",
        caseInsensitive: item.caseInsensitive,
        methods: item.methods,
        headers: item.headers,
        query: item.query,
      });
      const first = seen.get(key);
      if (first === undefined) {
        seen.set(key, { index, id });
        return;
      }
      report(walk, {
        node: nodes[index],
        field: `${path}[${index}]`,
        message: `route ${JSON.stringify(id)} matches exactly what route ${
          JSON.stringify(first.id)
        } (${path}[${first.index}]) matches: ${JSON.stringify(first.id)} always wins, so ${
          JSON.stringify(id)
        } never serves a request`,
        warning: true,
      });
    });
  };
}

// ---- cross-item rules ---------------------------------------------------------------------------

/**
 * Reports the second and later list items whose `key` repeats an earlier one. It reads the raw
 * YAML (through `canonical`) rather than validated items, so a duplicate is reported even next to
 * an unrelated problem in the same item.
 */
export function unique<T>(
  key: string,
  canonical: (raw: unknown, index: number) => string | undefined,
): ListRefine<T> {
  return function checkUnique(_items, { nodes, path, walk }) {
    const seen = new Map<string, number>();
    nodes.forEach((node, index) => {
      if (!isMap(node)) return;
      const keyed = node.get(key, true) as Node | undefined;
      const value = canonical(isScalar(keyed) ? keyed.value : undefined, index);
      if (value === undefined) return;
      const first = seen.get(value);
      if (first === undefined) {
        seen.set(value, index);
        return;
      }
      report(walk, {
        node: keyed ?? node,
        field: `${path}[${index}].${key}`,
        message: `duplicate ${key} ${JSON.stringify(value)} (already used by ${path}[${first}])`,
      });
    });
  };
}

/** Applies a converter to a raw scalar, yielding undefined where it is not valid. */
export function tolerant(convert: (value: string) => string): (raw: unknown) => string | undefined {
  return function canonical(raw) {
    try {
      return typeof raw === "string" ? convert(raw) : undefined;
    } catch {
      return undefined;
    }
  };
}

/** Runs several list refinements in order. */
export function all<T>(...refines: ListRefine<T>[]): ListRefine<T> {
  return (items, context) => refines.forEach((refine) => refine(items, context));
}
