/**
 * What a config file may contain: the declarations of every section, built from the schema
 * machinery (schema.ts) and the rules (rules.ts, secrets.ts). parseConfig (load.ts) runs them.
 *
 * @module
 */

import { isScalar } from "yaml";
import {
  boolean,
  choice,
  defaulted,
  filledSection,
  integer,
  INVALID,
  type Invalid,
  list,
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
import {
  algorithm,
  all,
  cidr,
  consumerId,
  defaultRouteId,
  DNS_LABEL,
  dnsLabel,
  filePath,
  headerName,
  httpUrl,
  nonEmpty,
  originUrl,
  probePath,
  routeId,
  serviceName,
  sha256,
  tolerant,
  unique,
  uniqueMatches,
} from "./rules.ts";
import { adminTokenEnv, warnAboutOpenAdmin } from "./admin_rules.ts";
import { apiKeyEnv, distinctKeys, hmacSecretProblem, publicKeyFile, setEnv } from "./secrets.ts";
import { middlewareSpec } from "./middleware_spec.ts";
import { redisSchema } from "./redis_schema.ts";
import { routeSchema } from "./route_schema.ts";
import { caFile, readablePemFile, tlsPairProblem } from "./tls_files.ts";

/** One certificate chain and its key (`server.tls`, `server.tls.certificates[i]`). */
const tlsPairFields = {
  cert_file: required(text(readablePemFile)),
  key_file: required(text(readablePemFile)),
};

function checkTlsPair(
  pair: { certFile: string; keyFile: string },
  refiner: { problem(key: string, message: string): void },
  walk: { readFile(path: string): string },
): void {
  const problem = tlsPairProblem(walk.readFile(pair.certFile), walk.readFile(pair.keyFile));
  if (problem !== undefined) refiner.problem(problem.file, problem.message);
}

const tlsSchema = object({
  ...tlsPairFields,
  certificates: defaulted(list(object(tlsPairFields, { refine: checkTlsPair })), []),
}, { refine: checkTlsPair });

/** `server.workers`: a count of proxy threads, or `auto` (one per core). */
function workerCount(node: Node, path: string, walk: Walk): number | "auto" | Invalid {
  if (isScalar(node) && node.value === "auto") return "auto";
  if (isScalar(node) && typeof node.value === "number") return integer(1, 256)(node, path, walk);
  report(walk, {
    node,
    field: path,
    message: `must be a number of worker threads (1 to 256) or "auto" (one per core), got ${
      JSON.stringify(isScalar(node) ? node.value : "a collection")
    }`,
  });
  return INVALID;
}

const serverSchema = object({
  port: defaulted(integer(1, 65535), 8000),
  host: defaulted(text(nonEmpty), "0.0.0.0"),
  admin_port: defaulted(integer(1, 65535), 8001),
  admin_host: defaulted(text(nonEmpty), "127.0.0.1"),
  admin_token_env: optional(text(adminTokenEnv)),
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
  tls: section(tlsSchema),
  http_redirect_port: optional(integer(1, 65535)),
  workers: defaulted(workerCount, 1 as number | "auto"),
  access_log: defaulted(boolean(), true),
  access_log_sample: defaulted(number(0), 1),
}, {
  refine(server, refiner, walk) {
    warnAboutOpenAdmin(server, walk);
    if (server.accessLogSample > 1) {
      refiner.problem(
        "access_log_sample",
        `is the share of requests logged, from 0 to 1, got ${server.accessLogSample}`,
      );
    }
    if (server.adminPort === server.port) {
      refiner.problem("admin_port", `must differ from port (both are ${server.port})`);
    }
    const redirect = server.httpRedirectPort;
    if (redirect !== undefined && server.tls === undefined) {
      refiner.keyProblem("http_redirect_port", "needs server.tls: it redirects to the HTTPS port");
    } else if (redirect === server.port || redirect === server.adminPort) {
      refiner.problem(
        "http_redirect_port",
        `must differ from port and admin_port (got ${redirect})`,
      );
    }
  },
});

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
    if (jwt.secretEnv !== undefined) {
      const problem = hmacSecretProblem(jwt.secretEnv, jwt.algorithms, walk);
      if (problem !== undefined) refiner.problem("secret_env", problem);
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
    publish_service: optional(text(publishService)),
  })),
});

/** `discovery.kubernetes.publish_service`: `name` or `namespace/name`, each a DNS-1123 label. */
function publishService(value: string): string {
  const parts = value.split("/");
  if (parts.length <= 2 && parts.every((part) => DNS_LABEL.test(part))) return value;
  return reject(
    `must be a Service name or namespace/name (DNS-1123 labels), got ${JSON.stringify(value)}`,
  );
}

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
  ca_file: optional(text(caFile)),
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

/** The whole config file. */
export const configSchema = object({
  server: filledSection(serverSchema),
  log: filledSection(object({
    format: defaulted(choice(["auto", "json", "text"]), "auto"),
  })),
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
      uniqueMatches(),
    ),
  })),
});
