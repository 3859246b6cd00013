/**
 * Loads `config.yaml` into a frozen {@linkcode Config}, reporting every
 * problem with its line, column and field path (contract section 2).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import ipaddr from "ipaddr.js";
import { type Document, isMap, isScalar, LineCounter, parseDocument, visit } from "yaml";
import {
  boolean,
  choice,
  defaulted,
  filledSection,
  integer,
  INVALID,
  list,
  type ListRefine,
  type Node,
  number,
  object,
  optional,
  record,
  reject,
  report,
  required,
  section,
  text,
  type Walk,
} from "./schema.ts";
import { checkPathPrefix } from "../routing/path.ts";
import { CONSUMER_ID_RULE, isConsumerId } from "../auth/consumer.ts";
import { middlewareSpec } from "./middleware_spec.ts";
import { checkPluginModules } from "./plugin_check.ts";
import type { Config, ConfigProblem, ConfigWarning } from "./types.ts";

/** Where {@linkcode parseConfig} reads from, besides the config text. */
export interface ParseOptions {
  /** The config's path as the user gave it; problems name it. */
  displayPath: string;
  /** Becomes Config.file and the base for relative paths. */
  absolutePath: string;
  /** Reads the variables named by `*_env` keys; defaults to `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /** Reads `auth.jwt.public_key_file`; defaults to `Deno.readTextFileSync`. */
  readFile?: (absolutePath: string) => string;
}

/** The outcome of loading a config: the config, or every problem found. Warnings either way. */
export type LoadResult =
  | { ok: true; config: Config; warnings: ConfigWarning[] }
  | { ok: false; problems: ConfigProblem[]; warnings: ConfigWarning[] };

// ---- scalar rules -------------------------------------------------------------------------------

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 9110 token: what a header field name may be made of.
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ROUTE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const JWT_ALGORITHMS = [
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
// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
const HS_MIN_SECRET_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };
const MIN_API_KEY_CHARS = 16;
const PUBLIC_KEY_PEM = [
  "-----BEGIN PUBLIC KEY-----",
  "-----BEGIN CERTIFICATE-----",
  "-----BEGIN RSA PUBLIC KEY-----",
];
// PKCS#8, PKCS#1, SEC 1, encrypted and OpenSSH private keys all end their label this way.
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

function nonEmpty(value: string): string {
  return value === "" ? reject("must not be empty") : value;
}

function consumerId(value: string): string {
  return isConsumerId(value) ? value : reject(`consumer id ${CONSUMER_ID_RULE}`);
}

function envName(value: string): string {
  if (ENV_NAME.test(value)) return value;
  return reject(
    `must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(value)}`,
  );
}

/**
 * The value of environment variable `name`, or why it cannot be used. The value is only ever
 * checked, never kept: Config holds names, so secrets stay out of it and out of logs.
 */
function readEnv(name: string, walk: Walk): { value: string } | { problem: string } {
  let value: string | undefined;
  try {
    value = walk.env(name);
  } catch (error) {
    if (!isDenied(error)) throw error;
    return {
      problem: `cannot read environment variable ${
        JSON.stringify(name)
      }: permission denied (run with --allow-env)`,
    };
  }
  if (value === undefined) {
    return { problem: `environment variable ${JSON.stringify(name)} is not set` };
  }
  if (value === "") return { problem: `environment variable ${JSON.stringify(name)} is empty` };
  return { value };
}

function envSecret(name: string, walk: Walk): string {
  const read = readEnv(envName(name), walk);
  return "problem" in read ? reject(read.problem) : read.value;
}

/** An environment variable name whose variable is set and not empty. */
function setEnv(value: string, walk: Walk): string {
  envSecret(value, walk);
  return value;
}

function apiKeyEnv(value: string, walk: Walk): string {
  // Counted in code points, as a person counts the characters of a key.
  if ([...envSecret(value, walk)].length < MIN_API_KEY_CHARS) {
    reject(
      `key in ${JSON.stringify(value)} is too short (at least ${MIN_API_KEY_CHARS} characters)`,
    );
  }
  return value;
}

function headerName(value: string): string {
  if (HEADER_TOKEN.test(value)) return value;
  return reject(`must be a valid HTTP header name, got ${JSON.stringify(value)}`);
}

function clientIdentifier(value: string): string {
  if (value === "IP" || HEADER_TOKEN.test(value)) return value;
  return reject(`must be "IP" or a valid HTTP header name, got ${JSON.stringify(value)}`);
}

function dnsLabel(value: string): string {
  if (DNS_LABEL.test(value)) return value;
  return reject(
    `must be a DNS-1123 label (lowercase letters, digits and "-", at most 63), got ${
      JSON.stringify(value)
    }`,
  );
}

function serviceName(value: string): void {
  if (!DNS_NAME.test(value)) {
    reject(
      `invalid service name ${JSON.stringify(value)}: use lowercase letters, digits, "-" and "."`,
    );
  }
}

function serviceRef(value: string): string {
  const parts = value.split(".");
  if (parts.length <= 2 && parts.every((part) => DNS_LABEL.test(part))) return value;
  return reject(
    `must be "name" or "name.namespace" made of DNS-1123 labels, got ${JSON.stringify(value)}`,
  );
}

function routeId(value: string): string {
  if (ROUTE_ID.test(value)) return value;
  return reject(`must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(value)}`);
}

function sha256(value: string): string {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return value.toLowerCase();
  return reject("must be 64 hexadecimal digits (the SHA-256 of the key)");
}

function parseUrl(value: string, schemes: readonly string[]): URL {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url && schemes.includes(url.protocol)) return url;
  const names = schemes.map((scheme) => `${scheme}//`).join(" or ");
  return reject(`must be a ${names} URL, got ${JSON.stringify(value)}`);
}

function httpUrl(value: string): string {
  parseUrl(value, ["http:", "https:"]);
  return value;
}

function redisUrl(value: string): string {
  parseUrl(value, ["redis:", "rediss:"]);
  return value;
}

function originUrl(value: string): string {
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
function probePath(value: string): string {
  if (value.startsWith("/") && !value.startsWith("//") && !/[\s#]/.test(value)) return value;
  return reject(
    `must be a path starting with "/" (no spaces or fragment), got ${JSON.stringify(value)}`,
  );
}

function cidr(value: string): string {
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

function filePath(value: string, walk: Walk): string {
  return resolve(walk.baseDir, nonEmpty(value));
}

/** A file that holds a public key in a form the JWT verifier reads; resolved like filePath. */
function publicKeyFile(value: string, walk: Walk): string {
  const path = filePath(value, walk);
  let content: string;
  try {
    content = walk.readFile(path);
  } catch (error) {
    return reject(`cannot read key file ${JSON.stringify(value)}: ${readFailure(error)}`);
  }
  const kind = keyKind(content);
  if (kind === "private") {
    reject(`key file ${JSON.stringify(value)} holds a private key; give the public key`);
  }
  if (kind === undefined) {
    reject(
      `key file ${JSON.stringify(value)} is neither a PEM public key/certificate nor a JWK/JWKS`,
    );
  }
  return path;
}

/** What a key file holds, judged by its PEM labels or JWK members; undefined when neither. */
function keyKind(content: string): "public" | "private" | undefined {
  if (PRIVATE_KEY_PEM.test(content)) return "private";
  if (PUBLIC_KEY_PEM.some((label) => content.includes(label))) return "public";
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!isRecord(json)) return undefined;
  let keys: unknown[];
  if (Object.hasOwn(json, "kty")) keys = [json];
  else if (Array.isArray(json.keys)) keys = json.keys;
  else return undefined;
  // "d" is the private exponent (RSA) or scalar (EC, OKP) of a JWK.
  return keys.some((key) => isRecord(key) && Object.hasOwn(key, "d")) ? "private" : "public";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function algorithm(value: string): string {
  if (value.toLowerCase() === "none") {
    reject(`"none" is not allowed: it would accept unsigned tokens`);
  }
  if ((JWT_ALGORITHMS as readonly string[]).includes(value)) return value;
  return reject(`must be one of ${JWT_ALGORITHMS.join(", ")}, got ${JSON.stringify(value)}`);
}

function pathPrefix(value: string): string {
  const checked = checkPathPrefix(value);
  return "problem" in checked ? reject(checked.problem) : checked.prefix;
}

// ---- cross-item rules ---------------------------------------------------------------------------

/**
 * Reports the second and later list items whose `key` repeats an earlier one. It reads the raw
 * YAML (through `canonical`) rather than validated items, so a duplicate is reported even next to
 * an unrelated problem in the same item.
 */
function unique<T>(
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
function tolerant(convert: (value: string) => string): (raw: unknown) => string | undefined {
  return function canonical(raw) {
    try {
      return typeof raw === "string" ? convert(raw) : undefined;
    } catch {
      return undefined;
    }
  };
}

/**
 * Reports a key entry whose key equals an earlier one's, comparing SHA-256 digests: a `sha256`
 * as written, a `value_env` as the digest of the variable's value. Like {@linkcode unique}, it
 * reads the raw YAML; an entry whose key cannot be read is skipped (it has its own problem).
 */
function distinctKeys<T>(): ListRefine<T> {
  return function checkDistinctKeys(_items, { nodes, path, walk }) {
    const seen = new Map<string, number>();
    nodes.forEach((node, index) => {
      if (!isMap(node)) return;
      const digestNode = node.get("sha256", true) as Node | undefined;
      const envNode = node.get("value_env", true) as Node | undefined;
      let digest: string | undefined;
      let name: string | undefined;
      if (isScalar(digestNode)) {
        digest = tolerant(sha256)(digestNode.value);
      } else if (isScalar(envNode)) {
        name = tolerant(envName)(envNode.value);
        const read = name === undefined ? undefined : readEnv(name, walk);
        if (read && "value" in read) digest = createHash("sha256").update(read.value).digest("hex");
      }
      if (digest === undefined) return;
      const first = seen.get(digest);
      if (first === undefined) {
        seen.set(digest, index);
        return;
      }
      const earlier = `${path}[${first}]`;
      report(
        walk,
        name === undefined
          ? {
            node: digestNode,
            field: `${path}[${index}].sha256`,
            message: `duplicate sha256 ${JSON.stringify(digest)} (already used by ${earlier})`,
          }
          : {
            node: envNode,
            field: `${path}[${index}].value_env`,
            // The digest of a variable's value is not printed: it would only help guess the key.
            message: `key in ${JSON.stringify(name)} is already used by ${earlier}`,
          },
      );
    });
  };
}

function all<T>(...refines: ListRefine<T>[]): ListRefine<T> {
  return (items, context) => refines.forEach((refine) => refine(items, context));
}

function defaultRouteId(index: number): string {
  return `route-${index}`;
}

// ---- the schema ---------------------------------------------------------------------------------

const serverSchema = object({
  port: defaulted(integer(1, 65535), 8000),
  host: defaulted(text(nonEmpty), "0.0.0.0"),
  admin_port: defaulted(integer(1, 65535), 8001),
  admin_host: defaulted(text(nonEmpty), "0.0.0.0"),
  trusted_proxies: defaulted(list(text(cidr)), []),
  max_body_bytes: defaulted(integer(0), 10485760),
  upstream_timeout_ms: defaulted(integer(1), 30000),
  shutdown_grace_seconds: defaulted(number(0), 25),
  request_head_timeout_ms: defaulted(integer(1, 3_600_000), 30_000),
  idle_timeout_ms: defaulted(integer(1, 3_600_000), 60_000),
  max_connections: defaulted(integer(1, 1_000_000), 10_000),
  upstream_body_timeout_ms: optional(integer(1)),
  retry_buffer_bytes: defaulted(integer(0, 16 * 1024 * 1024), 65_536),
  memory_limiter_max_bytes: defaulted(integer(1024 * 1024), 64 * 1024 * 1024),
}, {
  refine(server, refiner) {
    if (server.adminPort === server.port) {
      refiner.problem("admin_port", `must differ from port (both are ${server.port})`);
    }
  },
});

const redisSchema = object({
  url: optional(text(redisUrl)),
  url_env: optional(text(setEnv)),
  failure_mode: defaulted(choice(["open", "closed", "local"]), "local"),
  timeout_ms: defaulted(integer(1, 10_000), 50),
}, { exclusive: [["url", "url_env"]] });

const apiKeySchema = object({
  header: defaulted(text(headerName), "API-Key"),
  keys: required(list(
    object({
      id: required(text(consumerId)),
      sha256: optional(text(sha256)),
      value_env: optional(text(apiKeyEnv)),
    }, { exclusive: [["sha256", "value_env"]] }),
    {
      refine: all(
        unique("id", tolerant(nonEmpty)),
        distinctKeys(),
      ),
    },
  )),
});

const jwtSchema = object({
  issuer: optional(text(nonEmpty)),
  audience: optional(text(nonEmpty)),
  algorithms: defaulted(list(text(algorithm), { nonEmpty: true }), ["RS256"]),
  jwks_url: optional(text(httpUrl)),
  public_key_file: optional(text(publicKeyFile)),
  secret_env: optional(text(setEnv)),
  clock_tolerance_seconds: defaulted(number(0), 30),
}, {
  exclusive: [["jwks_url", "public_key_file", "secret_env"]],
  refine(jwt, refiner, walk) {
    // A shared secret and a public key verify different families; mixing them is how
    // algorithm-confusion attacks start.
    const symmetric = jwt.algorithms.filter((name) => name.startsWith("HS"));
    const asymmetric = jwt.algorithms.filter((name) => !name.startsWith("HS"));
    if (jwt.secretEnv !== undefined && asymmetric.length > 0) {
      refiner.problem(
        "algorithms",
        `secret_env works only with HS256, HS384 or HS512, got ${asymmetric.join(", ")}`,
      );
    }
    if (jwt.secretEnv === undefined && symmetric.length > 0) {
      refiner.problem(
        "algorithms",
        `${
          symmetric.join(", ")
        } needs secret_env; jwks_url and public_key_file take asymmetric algorithms`,
      );
    }
    if (jwt.secretEnv !== undefined && symmetric.length > 0) {
      // One secret serves every HS algorithm listed, so the strongest one sets the minimum.
      const strongest = symmetric.reduce((a, b) =>
        HS_MIN_SECRET_BYTES[b] > HS_MIN_SECRET_BYTES[a] ? b : a
      );
      const read = readEnv(jwt.secretEnv, walk);
      const bytes = "value" in read ? new TextEncoder().encode(read.value).length : undefined;
      if (bytes !== undefined && bytes < HS_MIN_SECRET_BYTES[strongest]) {
        refiner.problem(
          "secret_env",
          `secret in ${
            JSON.stringify(jwt.secretEnv)
          } is ${bytes} bytes; ${strongest} needs at least ${HS_MIN_SECRET_BYTES[strongest]}`,
        );
      }
    }
  },
});

const authSchema = object({
  api_key: section(apiKeySchema),
  jwt: section(jwtSchema),
});

const discoverySchema = object({
  kubernetes: section(object({
    enabled: optional(boolean()),
    namespace: defaulted(text(dnsLabel), "default"),
    kubeconfig: optional(text(filePath)),
  })),
});

const serviceSchema = object({
  urls: optional(list(text(originUrl))),
  passive_health: filledSection(object({
    consecutive_failures: defaulted(integer(0, 1000), 5),
    base_ejection_ms: defaulted(integer(1), 30_000),
    max_ejection_ms: defaulted(integer(1), 300_000),
  }, {
    refine(passive, refiner) {
      if (passive.maxEjectionMs < passive.baseEjectionMs) {
        refiner.problem(
          "max_ejection_ms",
          `must be at least base_ejection_ms (${passive.baseEjectionMs}), got ${passive.maxEjectionMs}`,
        );
      }
    },
  })),
  health_check: section(object({
    path: required(text(probePath)),
    interval_ms: defaulted(integer(10, 3_600_000), 5000),
    timeout_ms: defaulted(integer(1, 600_000), 1000),
    unhealthy_threshold: defaulted(integer(1, 100), 2),
    healthy_threshold: defaulted(integer(1, 100), 1),
  })),
  max_in_flight: optional(integer(1)),
  retries: defaulted(integer(0, 5), 0),
}, {
  refine(service, refiner) {
    if (service.healthCheck !== undefined && service.urls === undefined) {
      refiner.keyProblem(
        "health_check",
        "active health checks need urls: Kubernetes readiness already checks discovered endpoints",
      );
    }
  },
});

const routeSchema = object({
  id: optional(text(routeId)),
  path_prefix: required(text(pathPrefix)),
  service_name: required(text(serviceRef)),
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
});

const configSchema = object({
  server: filledSection(serverSchema),
  middleware: defaulted(list(middlewareSpec), []),
  redis: section(redisSchema),
  auth: filledSection(authSchema),
  discovery: filledSection(discoverySchema),
  services: filledSection(record(serviceName, serviceSchema)),
  routes: required(list(routeSchema, {
    refine: all(
      unique(
        "id",
        (raw, index) => raw === undefined ? defaultRouteId(index) : tolerant(routeId)(raw),
      ),
      unique("path_prefix", tolerant(pathPrefix)),
    ),
  })),
});

// ---- loading ------------------------------------------------------------------------------------

/**
 * Parses and validates config text, checking the secrets it names (environment variables, key
 * file) through `options.env` and `options.readFile`.
 */
export function parseConfig(text: string, options: ParseOptions): LoadResult {
  const lines = new LineCounter();
  const doc = parseYaml(text, lines);
  const walk: Walk = {
    file: options.displayPath,
    lines,
    doc,
    baseDir: resolve(options.absolutePath, ".."),
    env: options.env ?? readEnvironment,
    readFile: options.readFile ?? readTextFile,
    problems: [],
    warnings: [],
  };
  for (const warning of doc.warnings) {
    report(walk, { node: null, field: "", message: warning.message, warning: true });
    relocate(walk.warnings, lines, warning.pos[0]);
  }
  for (const error of doc.errors) {
    const message = error.code === "DUPLICATE_KEY"
      ? `duplicate key ${JSON.stringify(keyAt(doc, error.pos[0]))}`
      : error.message;
    report(walk, { node: null, field: "", message });
    relocate(walk.problems, lines, error.pos[0]);
  }
  // Past a syntax error the tree is a guess, so only duplicate keys (a well-formed tree) go on
  // to validation.
  if (doc.errors.some((error) => error.code !== "DUPLICATE_KEY")) return failure(walk);

  if (doc.contents === null) {
    report(walk, {
      node: null,
      field: "",
      message: "the config is empty: it needs at least a routes: list",
    });
    return failure(walk);
  }
  const contents = doc.contents as Node;
  const parsed = configSchema(contents, "", walk);
  if (parsed === INVALID || walk.problems.length > 0) return failure(walk);

  const config: Config = {
    file: options.absolutePath,
    ...parsed,
    routes: parsed.routes.map((route, index) => ({
      ...route,
      id: route.id ?? defaultRouteId(index),
    })),
  };
  warnAboutSurprises(config, walk);
  sortByPosition(walk.warnings);
  return { ok: true, config: deepFreeze(config), warnings: walk.warnings };
}

/** Reads the file (problems for unreadable/missing file, as a ConfigProblem at 1:1 with field "") then parseConfig. Path may be relative to cwd. */
export async function loadConfigFile(path: string): Promise<LoadResult> {
  let text: string;
  let absolutePath: string;
  try {
    absolutePath = isAbsolute(path) ? path : resolve(Deno.cwd(), path);
    text = await Deno.readTextFile(absolutePath);
  } catch (error) {
    const problem = {
      file: path,
      line: 1,
      column: 1,
      field: "",
      message: `cannot read the config file: ${readFailure(error)}`,
    };
    return { ok: false, problems: [problem], warnings: [] };
  }
  const result = parseConfig(text, { displayPath: path, absolutePath });
  if (!result.ok) return result;
  const problems = await checkPluginModules(result.config);
  return problems.length > 0 ? { ok: false, problems, warnings: result.warnings } : result;
}

/** `PATH:LINE:COLUMN: field.path: message`, or `PATH:LINE:COLUMN: message` when field is "". */
export function formatProblem(problem: ConfigProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  return problem.field === ""
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.field}: ${problem.message}`;
}

function readEnvironment(name: string): string | undefined {
  return Deno.env.get(name);
}

function readTextFile(absolutePath: string): string {
  return Deno.readTextFileSync(absolutePath);
}

function parseYaml(text: string, lineCounter: LineCounter) {
  // The yaml package reads process.env.LOG_TOKENS and LOG_STREAM while parsing: every task
  // that loads a config grants exactly those two (--allow-env=LOG_TOKENS,LOG_STREAM).
  return parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
}

/** The key whose node starts at `offset`; the parser's duplicate-key error gives only the offset. */
function keyAt(doc: Document, offset: number): string {
  let name = "";
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.range?.[0] === offset) {
        name = String(pair.key.value);
        return visit.BREAK;
      }
    },
  });
  return name;
}

/** Moves the entry just reported to the parser's own offset (it has no AST node). */
function relocate(entries: ConfigProblem[], lines: LineCounter, offset: number): void {
  const last = entries[entries.length - 1];
  const { line, col } = lines.linePos(offset);
  entries[entries.length - 1] = { ...last, line, column: col };
}

function failure(walk: Walk): LoadResult {
  return {
    ok: false,
    problems: sortByPosition(walk.problems),
    warnings: sortByPosition(walk.warnings),
  };
}

function sortByPosition(entries: ConfigProblem[]): ConfigProblem[] {
  return entries.sort((a, b) => a.line - b.line || a.column - b.column);
}

function readFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (isDenied(error)) {
    return "permission denied (deno task start may read only files inside the project directory)";
  }
  return error instanceof Error ? error.message : String(error);
}

function isDenied(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied;
}

/** Warnings for configs that load but would surprise their author at the first request. */
function warnAboutSurprises(config: Config, walk: Walk): void {
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

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
