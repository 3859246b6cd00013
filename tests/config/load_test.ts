import assert from "node:assert/strict";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import {
  formatProblem,
  loadConfigFile,
  parseConfig,
  type ParseOptions,
} from "../../lib/config/load.ts";
import type { Config, ConfigWarning } from "../../lib/config/types.ts";

const PUBLIC_KEY_PEM = [
  "-----BEGIN PUBLIC KEY-----",
  "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
  "-----END PUBLIC KEY-----",
  "",
].join("\n");

/** What the tests' environment holds unless a test says otherwise: valid secrets only. */
const ENV: Readonly<Record<string, string>> = {
  REDIS_URL: "redis://127.0.0.1:6379",
  WEB_KEY: "web-0123456789abcdef",
  JWT_SECRET: "j".repeat(64),
  S: "s".repeat(64),
};

/** The files tests can read by absolute path; any other path is missing. */
const FILES: Readonly<Record<string, string>> = {
  "/srv/vanguard/conf/keys/jwt.pem": PUBLIC_KEY_PEM,
};

/** Options reading `env` and `files` instead of the process's environment and disk. */
function sources(
  env: Readonly<Record<string, string>> = ENV,
  files: Readonly<Record<string, string>> = FILES,
): ParseOptions {
  return {
    displayPath: "conf/gw.yaml",
    absolutePath: "/srv/vanguard/conf/gw.yaml",
    env: (name) => Object.hasOwn(env, name) ? env[name] : undefined,
    readFile(absolutePath) {
      if (Object.hasOwn(files, absolutePath)) return files[absolutePath];
      throw new Deno.errors.NotFound(`No such file or directory: ${absolutePath}`);
    },
  };
}

const where = sources();

/** Lines joined with "\n", so that line numbers in assertions are easy to count. */
function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

function load(text: string, options: ParseOptions = where): { config: Config; warnings: string[] } {
  const result = parseConfig(text, options);
  if (!result.ok) {
    assert.fail(`expected a valid config, got:\n${result.problems.map(formatProblem).join("\n")}`);
  }
  return { config: result.config, warnings: result.warnings.map(formatProblem) };
}

function problems(text: string, options: ParseOptions = where): string[] {
  const result = parseConfig(text, options);
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

function warningsOf(warnings: readonly ConfigWarning[]): string[] {
  return warnings.map((warning) => warning.message);
}

const ROUTE = ["routes:", "  - path_prefix: /a", "    service_name: a"];
const SERVICE_A = ["services:", "  a:", "    urls: [http://127.0.0.1:9001]"];

Deno.test("loadConfigFile() loads the repository's config.yaml with defaults and warnings", async () => {
  const path = fileURLToPath(new URL("../../config.yaml", import.meta.url));
  const result = await loadConfigFile(path);
  if (!result.ok) assert.fail(result.problems.map(formatProblem).join("\n"));
  const { config } = result;
  assert.equal(config.file, path);
  assert.deepEqual(config.server, {
    port: 8000,
    host: "0.0.0.0",
    adminPort: 8001,
    adminHost: "127.0.0.1",
    trustedProxies: [],
    maxBodyBytes: 10485760,
    upstreamTimeoutMs: 30000,
    shutdownGraceSeconds: 25,
    requestHeadTimeoutMs: 30000,
    idleTimeoutMs: 60000,
    maxConnections: 10000,
    retryBufferBytes: 65536,
    memoryLimiterMaxBytes: 67108864,
    workers: 1,
    accessLog: true,
    accessLogSample: 1,
  });
  assert.equal(config.redis, undefined);
  assert.deepEqual(config.auth, {});
  assert.deepEqual(config.discovery, {});
  assert.deepEqual(config.services, {});
  assert.deepEqual(config.routes, [
    {
      id: "user-service-route",
      pathPrefix: "/users",
      serviceName: "user-service",
      authRequired: true,
      stripPrefix: false,
      preserveHost: false,
      caseInsensitive: false,
      forwardCredentials: false,
      middleware: [],
    },
    {
      id: "order-service-route",
      pathPrefix: "/orders",
      serviceName: "order-service",
      authRequired: true,
      stripPrefix: false,
      preserveHost: false,
      caseInsensitive: false,
      forwardCredentials: false,
      middleware: [],
      rateLimit: { requestsPerPeriod: 100, periodSeconds: 60, clientIdentifier: "API-Key" },
    },
  ]);
  // Both routes ask for auth that is not configured, and neither service is defined statically.
  assert.deepEqual(result.warnings.map(formatProblem), [
    `${path}:12:19: routes[0].service_name: service "user-service" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints`,
    `${path}:14:20: routes[0].auth_required: route requires auth but no auth method is configured: it answers 401 to every request`,
    `${path}:18:19: routes[1].service_name: service "order-service" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints`,
    `${path}:19:20: routes[1].auth_required: route requires auth but no auth method is configured: it answers 401 to every request`,
  ]);
});

Deno.test("parseConfig() reports every problem with its line, column and field path", () => {
  const text = yaml(
    "server:", //                                     1
    "  prot: 9000", //                                2
    "  admin_port: 8000", //                          3
    "  max_body_bytes: -1", //                        4
    "redis:", //                                      5
    "  failure_mode: sometimes", //                   6
    "routes:", //                                     7
    "  - id: users", //                               8
    "    service_name: users", //                     9
    "  - path_prefix: /orders", //                   10
    "    service_name: orders", //                   11
    "    auth_required: yes", //                     12
    "    rate_limit:", //                            13
    "      requests_per_period: 10", //              14
    "      period_seconds: abc", //                  15
  );
  assert.deepEqual(problems(text), [
    `conf/gw.yaml:2:3: server.prot: unknown key "prot" (expected one of: port, host, admin_port, admin_host, admin_token_env, trusted_proxies, max_body_bytes, upstream_timeout_ms, shutdown_grace_seconds, request_head_timeout_ms, idle_timeout_ms, max_connections, upstream_body_timeout_ms, retry_buffer_bytes, memory_limiter_max_bytes, tls, http_redirect_port, workers, access_log, access_log_sample); did you mean "port"?`,
    "conf/gw.yaml:4:19: server.max_body_bytes: must be at least 0, got -1",
    "conf/gw.yaml:6:3: redis: needs one of: url, url_env, cluster, sentinel",
    'conf/gw.yaml:6:17: redis.failure_mode: must be one of open, closed, local, got "sometimes"',
    "conf/gw.yaml:8:5: routes[0]: needs exactly one of path_prefix, path_exact, path_regex",
    'conf/gw.yaml:12:20: routes[1].auth_required: must be a boolean (true or false), got string "yes"',
    'conf/gw.yaml:15:23: routes[1].rate_limit.period_seconds: must be an integer, got string "abc"',
  ]);
});

Deno.test("parseConfig() rejects an admin_port equal to port once both are valid", () => {
  assert.deepEqual(problems(yaml("server:", "  port: 9000", "  admin_port: 9000", ...ROUTE)), [
    "conf/gw.yaml:3:15: server.admin_port: must differ from port (both are 9000)",
  ]);
});

Deno.test("parseConfig() is strict about scalar types", () => {
  assert.deepEqual(
    problems(yaml("server:", '  port: "8000"', "  upstream_timeout_ms: 1.5", ...ROUTE)),
    [
      'conf/gw.yaml:2:9: server.port: must be an integer, got string "8000"',
      "conf/gw.yaml:3:24: server.upstream_timeout_ms: must be an integer, got number 1.5",
    ],
  );
  assert.deepEqual(problems(yaml("server:", "  port: 70000", ...ROUTE)), [
    "conf/gw.yaml:2:9: server.port: must be between 1 and 65535, got 70000",
  ]);
  assert.deepEqual(problems(yaml("routes:", "  - path_prefix: /a", "    service_name: 42")), [
    "conf/gw.yaml:3:19: routes[0].service_name: must be a string, got number 42",
  ]);
});

Deno.test("parseConfig() reports a YAML syntax error at the line of the mistake", () => {
  // The parser notices the unclosed bracket on line 3; the mistake is the [ on line 2.
  assert.deepEqual(problems(yaml("server:", "  port: [8000", "routes: []")), [
    "conf/gw.yaml:2:9: the [ opened here is never closed: end the list with ]",
  ]);
});

Deno.test("parseConfig() reports duplicate keys and keeps validating", () => {
  assert.deepEqual(problems(yaml("server:", "  port: 1", "  port: 2", "  bogus: 3", ...ROUTE)), [
    'conf/gw.yaml:3:3: duplicate key "port"; it is already set on line 2',
    'conf/gw.yaml:4:3: server.bogus: unknown key "bogus" (expected one of: port, host, admin_port, admin_host, admin_token_env, trusted_proxies, max_body_bytes, upstream_timeout_ms, shutdown_grace_seconds, request_head_timeout_ms, idle_timeout_ms, max_connections, upstream_body_timeout_ms, retry_buffer_bytes, memory_limiter_max_bytes, tls, http_redirect_port, workers, access_log, access_log_sample)',
  ]);
});

Deno.test("parseConfig() requires routes and a mapping at the top", () => {
  assert.deepEqual(problems(yaml("server:", "  port: 8000")), [
    "conf/gw.yaml:1:1: routes: is required",
  ]);
  assert.deepEqual(problems(""), [
    "conf/gw.yaml:1:1: the config is empty: it needs at least a routes: list",
  ]);
  assert.deepEqual(problems(yaml("- routes")), [
    "conf/gw.yaml:1:1: the config must be a mapping, got a list",
  ]);
});

Deno.test("parseConfig() accepts an empty routes list with a warning", () => {
  const { config, warnings } = load(yaml("routes: []"));
  assert.deepEqual(config.routes, []);
  assert.deepEqual(warnings, ["conf/gw.yaml:1:9: routes: no routes: every request will get 404"]);
});

Deno.test("parseConfig() returns a deeply frozen config", () => {
  const { config } = load(
    yaml("server:", "  trusted_proxies: [10.0.0.0/8]", ...SERVICE_A, ...ROUTE),
  );
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.server.trustedProxies));
  assert.ok(Object.isFrozen(config.routes[0]));
  assert.ok(Object.isFrozen(config.services.a.urls));
  assert.throws(() => {
    (config.server as { port: number }).port = 1;
  }, TypeError);
});

Deno.test("parseConfig() resolves relative file paths against the config's directory", () => {
  const { config } = load(yaml(
    "auth:",
    "  jwt:",
    "    public_key_file: keys/jwt.pem",
    "discovery:",
    "  kubernetes:",
    "    kubeconfig: ../kube/config",
    ...SERVICE_A,
    ...ROUTE,
  ));
  assert.equal(config.auth.jwt?.publicKeyFile, "/srv/vanguard/conf/keys/jwt.pem");
  assert.equal(config.discovery.kubernetes?.kubeconfig, "/srv/vanguard/kube/config");
  assert.equal(config.discovery.kubernetes?.namespace, "default");
  assert.equal(config.discovery.kubernetes?.enabled, undefined);
  assert.deepEqual(config.auth.jwt?.algorithms, ["RS256"]);
  assert.equal(config.auth.jwt?.clockToleranceSeconds, 30);
});

Deno.test("parseConfig() normalizes service urls to origins and rejects urls with a path", () => {
  const { config } = load(yaml(
    "services:",
    "  a:",
    "    urls: [http://127.0.0.1:9001/, HTTPS://Example.COM:443]",
    "  empty:",
    "    urls: []",
    ...ROUTE,
  ));
  const defaults = {
    passiveHealth: { consecutiveFailures: 5, baseEjectionMs: 30000, maxEjectionMs: 300000 },
    retries: 0,
  };
  assert.deepEqual(config.services, {
    a: { urls: ["http://127.0.0.1:9001", "https://example.com"], ...defaults },
    empty: { urls: [], ...defaults },
  });
  assert.deepEqual(
    problems(yaml(
      "services:",
      "  a:",
      "    urls:",
      "      - http://127.0.0.1:9001/api",
      "      - http://user:pw@127.0.0.1:9001",
      "      - http://127.0.0.1:9001?x=1",
      "  Not_Valid:",
      "    url: http://x",
      ...ROUTE,
    )),
    [
      'conf/gw.yaml:4:9: services.a.urls[0]: must be an origin only (scheme://host[:port]), without path, query, fragment or credentials, got "http://127.0.0.1:9001/api"',
      'conf/gw.yaml:5:9: services.a.urls[1]: must be an origin only (scheme://host[:port]), without path, query, fragment or credentials, got "http://user:pw@127.0.0.1:9001"',
      'conf/gw.yaml:6:9: services.a.urls[2]: must be an origin only (scheme://host[:port]), without path, query, fragment or credentials, got "http://127.0.0.1:9001?x=1"',
      'conf/gw.yaml:7:3: services.Not_Valid: invalid service name "Not_Valid": use lowercase letters, digits, "-" and "."',
      'conf/gw.yaml:8:5: services.Not_Valid.url: unknown key "url" (expected one of: urls, passive_health, health_check, max_in_flight, retries, ca_file); did you mean "urls"?',
    ],
  );
});

Deno.test("parseConfig() canonicalizes path prefixes and rejects unsafe ones", () => {
  const { config } = load(yaml(
    ...SERVICE_A,
    "routes:",
    "  - { path_prefix: /users/, service_name: a }",
    "  - { path_prefix: /, service_name: a, strip_prefix: true }",
  ));
  assert.deepEqual(config.routes.map((route) => [route.id, route.pathPrefix, route.stripPrefix]), [
    ["route-0", "/users", false],
    ["route-1", "/", true],
  ]);
  const rejected = problems(yaml(
    ...SERVICE_A,
    "routes:",
    "  - { path_prefix: users, service_name: a }",
    "  - { path_prefix: /a/../b, service_name: a }",
    "  - { path_prefix: /a%2Fb, service_name: a }",
    "  - { path_prefix: /a//b, service_name: a }",
    "  - { path_prefix: /a?b, service_name: a }",
  ));
  assert.deepEqual(rejected.map((line) => line.split(": ").slice(0, 3).join(": ")), [
    'conf/gw.yaml:5:20: routes[0].path_prefix: must start with "/", got "users"',
    'conf/gw.yaml:6:20: routes[1].path_prefix: must not contain "." or ".." segments, got "/a/../b"',
    'conf/gw.yaml:7:20: routes[2].path_prefix: must not contain "%", got "/a%2Fb"',
    'conf/gw.yaml:8:20: routes[3].path_prefix: must not contain "//", got "/a//b"',
    'conf/gw.yaml:9:20: routes[4].path_prefix: must not contain "?", got "/a?b"',
  ]);
});

Deno.test("parseConfig() rejects duplicate route ids on the later route", () => {
  assert.deepEqual(
    problems(yaml(
      ...SERVICE_A,
      "routes:",
      "  - { id: r, path_prefix: /a, service_name: a }",
      "  - { id: r, path_prefix: /b, service_name: a }",
    )),
    ['conf/gw.yaml:6:11: routes[1].id: duplicate id "r" (already used by routes[0])'],
  );
});

Deno.test("parseConfig() warns, naming both ids, about a route that matches exactly what an earlier one does", () => {
  const { warnings } = load(yaml(
    ...SERVICE_A,
    "routes:",
    "  - { id: first, path_prefix: /a, service_name: a }",
    "  - { id: second, path_prefix: /a/, service_name: a }",
    "  - { id: other-host, path_prefix: /a, hosts: [x.example], service_name: a }",
  ));
  assert.deepEqual(warnings, [
    'conf/gw.yaml:6:5: routes[1]: route "second" matches exactly what route "first" (routes[0]) matches: "first" always wins, so "second" never serves a request',
  ]);
});

Deno.test("parseConfig() reads redis, auth and rate limits with their defaults", () => {
  // A real digest (of "mobile-key"), in capitals: the loader lower-cases it.
  const digest = "57D419BE43E536F6ECFA7F54599E9050DB0ECA72598B456400601AE346403973";
  const { config, warnings } = load(yaml(
    "server:",
    "  trusted_proxies: [10.0.0.0/8, 192.168.1.1, '::1', 'fd00::/8']",
    "redis:",
    "  url_env: REDIS_URL",
    "auth:",
    "  api_key:",
    "    keys:",
    `      - { id: mobile, sha256: "${digest}" }`,
    "      - { id: web, value_env: WEB_KEY }",
    "  jwt:",
    "    algorithms: [HS256]",
    "    secret_env: JWT_SECRET",
    ...SERVICE_A,
    "routes:",
    "  - path_prefix: /a",
    "    service_name: a",
    "    auth_required: true",
    "    rate_limit: { requests_per_period: 5, period_seconds: 1 }",
  ));
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.trustedProxies, [
    "10.0.0.0/8",
    "192.168.1.1/32",
    "::1/128",
    "fd00::/8",
  ]);
  assert.deepEqual(config.redis, { urlEnv: "REDIS_URL", failureMode: "local", timeoutMs: 50 });
  assert.deepEqual(config.auth.apiKey, {
    header: "API-Key",
    keys: [{ id: "mobile", sha256: digest.toLowerCase() }, { id: "web", valueEnv: "WEB_KEY" }],
  });
  assert.deepEqual(config.auth.jwt, {
    algorithms: ["HS256"],
    secretEnv: "JWT_SECRET",
    clockToleranceSeconds: 30,
  });
  assert.deepEqual(config.routes[0].rateLimit, {
    requestsPerPeriod: 5,
    periodSeconds: 1,
    clientIdentifier: "IP",
  });
});

Deno.test("parseConfig() rejects unsafe or contradictory auth settings", () => {
  assert.deepEqual(
    problems(yaml(
      "redis:",
      "  url: redis://localhost:6379",
      "  url_env: REDIS_URL",
      "auth:",
      "  api_key:",
      "    header: 'API Key'",
      "    keys:",
      "      - { id: a, sha256: abc }",
      "      - { id: a, value_env: 1BAD }",
      "  jwt:",
      "    algorithms: [none]",
      "    jwks_url: https://issuer.example/jwks",
      "    secret_env: S",
      ...ROUTE,
    )),
    [
      "conf/gw.yaml:3:3: redis.url_env: cannot be combined with url (set only one of: url, url_env, cluster, sentinel)",
      'conf/gw.yaml:6:13: auth.api_key.header: must be a valid HTTP header name, got "API Key"',
      "conf/gw.yaml:8:26: auth.api_key.keys[0].sha256: must be 64 hexadecimal digits (the SHA-256 of the key)",
      'conf/gw.yaml:9:15: auth.api_key.keys[1].id: duplicate id "a" (already used by auth.api_key.keys[0])',
      'conf/gw.yaml:9:29: auth.api_key.keys[1].value_env: must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got "1BAD"',
      'conf/gw.yaml:11:18: auth.jwt.algorithms[0]: "none" is not allowed: it would accept unsigned tokens',
      "conf/gw.yaml:13:5: auth.jwt.secret_env: cannot be combined with jwks_url (set only one of: jwks_url, public_key_file, secret_env)",
    ],
  );
  assert.deepEqual(
    problems(yaml("auth:", "  jwt:", "    secret_env: S", ...ROUTE)),
    ["conf/gw.yaml:3:5: auth.jwt.algorithms: secret_env works only with HS256, HS384 or HS512, got RS256"],
  );
  assert.deepEqual(
    problems(
      yaml("auth:", "  jwt:", "    algorithms: [HS256]", "    jwks_url: https://x/j", ...ROUTE),
    ),
    [
      "conf/gw.yaml:3:17: auth.jwt.algorithms: HS256 needs secret_env; jwks_url and public_key_file take asymmetric algorithms",
    ],
  );
  assert.deepEqual(problems(yaml("auth:", "  api_key: {}", ...ROUTE)), [
    "conf/gw.yaml:2:12: auth.api_key.keys: is required",
  ]);
});

Deno.test("parseConfig() warns about routes whose service or auth cannot work", () => {
  const result = parseConfig(
    yaml(
      "auth:",
      "  api_key:",
      "    keys: []",
      "routes:",
      "  - { path_prefix: /a, service_name: ghost, auth_required: true }",
    ),
    where,
  );
  assert.ok(result.ok);
  assert.deepEqual(warningsOf(result.warnings), [
    'service "ghost" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints',
  ]);
  const discovered = load(yaml(
    "discovery:",
    "  kubernetes: { enabled: true, namespace: apps }",
    "routes:",
    "  - { path_prefix: /a, service_name: ghost.other-ns }",
  ));
  assert.deepEqual(discovered.warnings, []);
  assert.deepEqual(discovered.config.discovery.kubernetes, { enabled: true, namespace: "apps" });
});

Deno.test("parseConfig() reads forward_credentials and warns where it has no effect", () => {
  const { config, warnings } = load(yaml(
    "auth:", //                                                                                   1
    "  api_key:", //                                                                              2
    "    keys: [{ id: web, value_env: WEB_KEY }]", //                                             3
    ...SERVICE_A, //                                                                            4-6
    "routes:", //                                                                                 7
    "  - { path_prefix: /a, service_name: a, auth_required: true, forward_credentials: true }", //8
    "  - { path_prefix: /b, service_name: a, auth_required: true }", //                           9
    "  - path_prefix: /c", //                                                                    10
    "    service_name: a", //                                                                    11
    "    forward_credentials: true", //                                                          12
  ));
  assert.deepEqual(config.routes.map((route) => [route.pathPrefix, route.forwardCredentials]), [
    ["/a", true],
    ["/b", false],
    ["/c", true],
  ]);
  assert.deepEqual(warnings, [
    "conf/gw.yaml:12:26: routes[2].forward_credentials: forward_credentials has no effect without auth_required",
  ]);
  assert.deepEqual(
    problems(yaml(...SERVICE_A, ...ROUTE, "    forward_credentials: yes")),
    [
      'conf/gw.yaml:7:26: routes[0].forward_credentials: must be a boolean (true or false), got string "yes"',
    ],
  );
});

/** A config naming one variable of each kind: redis url_env, an API key's value_env, jwt secret_env. */
const NAMES_EVERY_ENV = yaml(
  "redis:", //                                      1
  "  url_env: REDIS_URL", //                        2
  "auth:", //                                       3
  "  api_key:", //                                  4
  "    keys:", //                                   5
  "      - { id: web, value_env: WEB_KEY }", //     6
  "  jwt:", //                                      7
  "    algorithms: [HS256]", //                     8
  "    secret_env: JWT_SECRET", //                  9
  ...SERVICE_A,
  ...ROUTE,
);

Deno.test("parseConfig() requires every variable a *_env key names to be set and non-empty", () => {
  assert.deepEqual(problems(NAMES_EVERY_ENV, sources({})), [
    'conf/gw.yaml:2:12: redis.url_env: environment variable "REDIS_URL" is not set',
    'conf/gw.yaml:6:31: auth.api_key.keys[0].value_env: environment variable "WEB_KEY" is not set',
    'conf/gw.yaml:9:17: auth.jwt.secret_env: environment variable "JWT_SECRET" is not set',
  ]);
  const empty = { REDIS_URL: "", WEB_KEY: "", JWT_SECRET: "" };
  assert.deepEqual(problems(NAMES_EVERY_ENV, sources(empty)), [
    'conf/gw.yaml:2:12: redis.url_env: environment variable "REDIS_URL" is empty',
    'conf/gw.yaml:6:31: auth.api_key.keys[0].value_env: environment variable "WEB_KEY" is empty',
    'conf/gw.yaml:9:17: auth.jwt.secret_env: environment variable "JWT_SECRET" is empty',
  ]);
  const { config } = load(NAMES_EVERY_ENV);
  // Only the names reach the config, never the secrets.
  assert.deepEqual(config.redis, { urlEnv: "REDIS_URL", failureMode: "local", timeoutMs: 50 });
  assert.deepEqual(config.auth.apiKey?.keys, [{ id: "web", valueEnv: "WEB_KEY" }]);
  assert.equal(config.auth.jwt?.secretEnv, "JWT_SECRET");
  assert.ok(!JSON.stringify(config).includes(ENV.JWT_SECRET));
  assert.ok(!JSON.stringify(config).includes(ENV.WEB_KEY));
});

Deno.test("parseConfig() explains an environment it may not read", () => {
  const asked: string[] = [];
  const denied = {
    ...where,
    env(name: string): string | undefined {
      asked.push(name);
      throw new Deno.errors.NotCapable(`Requires env access to "${name}"`);
    },
  };
  assert.deepEqual(problems(NAMES_EVERY_ENV, denied), [
    'conf/gw.yaml:2:12: redis.url_env: cannot read environment variable "REDIS_URL": permission denied (run with --allow-env)',
    'conf/gw.yaml:6:31: auth.api_key.keys[0].value_env: cannot read environment variable "WEB_KEY": permission denied (run with --allow-env)',
    'conf/gw.yaml:9:17: auth.jwt.secret_env: cannot read environment variable "JWT_SECRET": permission denied (run with --allow-env)',
  ]);
  assert.ok(
    asked.includes("REDIS_URL") && asked.includes("WEB_KEY") && asked.includes("JWT_SECRET"),
  );
  const refused = {
    ...where,
    env(): string | undefined {
      throw new Deno.errors.PermissionDenied("denied");
    },
  };
  assert.deepEqual(problems(yaml("redis:", "  url_env: REDIS_URL", ...ROUTE), refused), [
    'conf/gw.yaml:2:12: redis.url_env: cannot read environment variable "REDIS_URL": permission denied (run with --allow-env)',
  ]);
});

Deno.test("parseConfig() requires a JWT secret as long as its strongest HS algorithm needs", () => {
  function jwt(algorithms: string, secret: string): string[] {
    const text = yaml(
      "auth:", //                             1
      "  jwt:", //                            2
      `    algorithms: [${algorithms}]`, //   3
      "    secret_env: JWT_SECRET", //        4
      ...ROUTE,
    );
    return problems(text, sources({ JWT_SECRET: secret }));
  }
  assert.deepEqual(jwt("HS256", "x".repeat(31)), [
    'conf/gw.yaml:4:17: auth.jwt.secret_env: secret in "JWT_SECRET" is 31 bytes; HS256 needs at least 32',
  ]);
  assert.deepEqual(jwt("HS256, HS512", "x".repeat(48)), [
    'conf/gw.yaml:4:17: auth.jwt.secret_env: secret in "JWT_SECRET" is 48 bytes; HS512 needs at least 64',
  ]);
  // Bytes, not characters: "é" is two bytes in UTF-8.
  assert.deepEqual(jwt("HS384", "é".repeat(20)), [
    'conf/gw.yaml:4:17: auth.jwt.secret_env: secret in "JWT_SECRET" is 40 bytes; HS384 needs at least 48',
  ]);
  const enough = (algorithms: string, secret: string) =>
    load(
      yaml("auth:", "  jwt:", `    algorithms: [${algorithms}]`, "    secret_env: K", ...ROUTE),
      sources({ K: secret }),
    );
  assert.deepEqual(enough("HS256", "x".repeat(32)).config.auth.jwt?.algorithms, ["HS256"]);
  assert.deepEqual(enough("HS384", "é".repeat(24)).config.auth.jwt?.algorithms, ["HS384"]);
  assert.deepEqual(enough("HS512, HS256", "x".repeat(64)).config.auth.jwt?.algorithms, [
    "HS512",
    "HS256",
  ]);
});

Deno.test("parseConfig() requires API keys from the environment to have at least 16 characters", () => {
  const text = yaml(
    "auth:", //                                   1
    "  api_key:", //                              2
    "    keys:", //                               3
    "      - { id: web, value_env: WEB_KEY }", // 4
    ...ROUTE,
  );
  assert.deepEqual(problems(text, sources({ WEB_KEY: "x".repeat(15) })), [
    'conf/gw.yaml:4:31: auth.api_key.keys[0].value_env: key in "WEB_KEY" is too short (at least 16 characters)',
  ]);
  assert.equal(load(text, sources({ WEB_KEY: "x".repeat(16) })).config.auth.apiKey?.keys.length, 1);
});

Deno.test("parseConfig() rejects an API key that repeats an earlier one, written or from the environment", () => {
  const key = "shared-key-0123456789";
  const digest = createHash("sha256").update(key).digest("hex");
  const env = { A: key, B: key, OTHER: "other-key-0123456789" };
  assert.deepEqual(
    problems(
      yaml(
        "auth:", //                                                 1
        "  api_key:", //                                            2
        "    keys:", //                                             3
        `      - { id: written, sha256: "${digest}" }`, //          4
        "      - { id: a, value_env: A }", //                       5
        "      - { id: b, value_env: B }", //                       6
        "      - { id: other, value_env: OTHER }", //               7
        `      - { id: upper, sha256: "${digest.toUpperCase()}" }`, // 8
        ...ROUTE,
      ),
      sources(env),
    ),
    [
      'conf/gw.yaml:5:29: auth.api_key.keys[1].value_env: key in "A" is already used by auth.api_key.keys[0]',
      'conf/gw.yaml:6:29: auth.api_key.keys[2].value_env: key in "B" is already used by auth.api_key.keys[0]',
      `conf/gw.yaml:8:30: auth.api_key.keys[4].sha256: duplicate sha256 "${digest}" (already used by auth.api_key.keys[0])`,
    ],
  );
  // The other way round: a written digest of a key that an earlier entry reads from the environment.
  assert.deepEqual(
    problems(
      yaml(
        "auth:",
        "  api_key:",
        "    keys:",
        "      - { id: a, value_env: A }",
        `      - { id: written, sha256: "${digest}" }`,
        ...ROUTE,
      ),
      sources(env),
    ),
    [
      `conf/gw.yaml:5:32: auth.api_key.keys[1].sha256: duplicate sha256 "${digest}" (already used by auth.api_key.keys[0])`,
    ],
  );
});

Deno.test("parseConfig() accepts a public key file only when it holds a public key", () => {
  const path = "/srv/vanguard/conf/keys/jwt.pem";
  const text = yaml(
    "auth:", //                                1
    "  jwt:", //                               2
    "    public_key_file: keys/jwt.pem", //    3
    ...ROUTE,
  );
  const accepted = {
    "SPKI PEM": PUBLIC_KEY_PEM,
    "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "PKCS#1 PEM": "-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n",
    "JWK": JSON.stringify({
      kty: "OKP",
      crv: "Ed25519",
      x: "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE",
    }),
    "JWKS": JSON.stringify({ keys: [{ kty: "RSA", n: "AQAB", e: "AQAB" }] }),
  };
  for (const [kind, content] of Object.entries(accepted)) {
    const { config } = load(text, sources(ENV, { [path]: content }));
    assert.equal(config.auth.jwt?.publicKeyFile, path, kind);
  }
  const NEITHER =
    'conf/gw.yaml:3:22: auth.jwt.public_key_file: key file "keys/jwt.pem" is neither a PEM public key/certificate nor a JWK/JWKS';
  const PRIVATE =
    'conf/gw.yaml:3:22: auth.jwt.public_key_file: key file "keys/jwt.pem" holds a private key; give the public key';
  const rejected: [string, string][] = [
    ["not a key", NEITHER],
    ["", NEITHER],
    ["[]", NEITHER],
    [JSON.stringify({ keys: "none" }), NEITHER],
    [JSON.stringify({ n: "AQAB", e: "AQAB" }), NEITHER],
    ["-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n", PRIVATE],
    ["-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n", PRIVATE],
    [
      `${PUBLIC_KEY_PEM}-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n`,
      PRIVATE,
    ],
    [JSON.stringify({ kty: "EC", crv: "P-256", x: "AA", y: "AA", d: "AA" }), PRIVATE],
    [JSON.stringify({ keys: [{ kty: "RSA", n: "AQAB", e: "AQAB", d: "AQAB" }] }), PRIVATE],
  ];
  for (const [content, problem] of rejected) {
    assert.deepEqual(problems(text, sources(ENV, { [path]: content })), [problem], content);
  }
});

Deno.test("parseConfig() reports a key file it cannot read with the path as written", () => {
  const text = yaml("auth:", "  jwt:", "    public_key_file: keys/missing.pem", ...ROUTE);
  assert.deepEqual(problems(text), [
    'conf/gw.yaml:3:22: auth.jwt.public_key_file: cannot read key file "keys/missing.pem": no such file',
  ]);
  const read: string[] = [];
  const denied = {
    ...where,
    readFile(absolutePath: string): string {
      read.push(absolutePath);
      throw new Deno.errors.NotCapable(`Requires read access to "${absolutePath}"`);
    },
  };
  assert.deepEqual(problems(text, denied), [
    'conf/gw.yaml:3:22: auth.jwt.public_key_file: cannot read key file "keys/missing.pem": permission denied (deno task start may read only files inside the project directory)',
  ]);
  assert.deepEqual(read, ["/srv/vanguard/conf/keys/missing.pem"]);
});

Deno.test("loadConfigFile() checks secrets against the real environment and disk", async () => {
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: resolve("tests/.tmp"), prefix: "vanguard_config_" });
  try {
    const file = join(dir, "gw.yaml");
    const display = relative(Deno.cwd(), file);
    await Deno.writeTextFile(join(dir, "public.pem"), PUBLIC_KEY_PEM);
    await Deno.writeTextFile(
      join(dir, "private.pem"),
      "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n",
    );
    const config = (keyFile: string) =>
      yaml("auth:", "  jwt:", `    public_key_file: ${keyFile}`, ...ROUTE);
    await Deno.writeTextFile(file, config("public.pem"));
    const loaded = await loadConfigFile(display);
    assert.equal(loaded.ok ? loaded.config.auth.jwt?.publicKeyFile : "", join(dir, "public.pem"));
    for (
      const [keyFile, message] of [
        ["private.pem", 'key file "private.pem" holds a private key; give the public key'],
        ["absent.pem", 'cannot read key file "absent.pem": no such file'],
        [".", 'cannot read key file ".": it is a directory'],
      ]
    ) {
      await Deno.writeTextFile(file, config(keyFile));
      const result = await loadConfigFile(display);
      assert.deepEqual(result.ok ? [] : result.problems.map(formatProblem), [
        `${display}:3:22: auth.jwt.public_key_file: ${message}`,
      ]);
    }
    // A name no environment sets, so the test needs no variable of its own.
    const unset = "VANGUARD_TEST_NEVER_SET_7C1E";
    await Deno.writeTextFile(file, yaml("redis:", `  url_env: ${unset}`, ...ROUTE));
    const result = await loadConfigFile(display);
    assert.deepEqual(result.ok ? [] : result.problems.map(formatProblem), [
      `${display}:2:12: redis.url_env: environment variable "${unset}" is not set`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig() treats an emptied optional section as absent", () => {
  const { config } = load(yaml("redis:", "auth:", "  jwt:", "services:", ...ROUTE));
  assert.equal(config.redis, undefined);
  assert.deepEqual(config.auth, {});
  assert.deepEqual(config.services, {});
});

Deno.test("loadConfigFile() reports a missing file as a problem instead of throwing", async () => {
  const result = await loadConfigFile("tests/fixtures/nonexistent/config.yaml");
  assert.equal(result.ok, false);
  assert.deepEqual(result.ok ? [] : result.problems.map(formatProblem), [
    "tests/fixtures/nonexistent/config.yaml:1:1: cannot read the config file: no such file",
  ]);
});

Deno.test("loadConfigFile() accepts a path relative to the working directory", async () => {
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: resolve("tests/.tmp"), prefix: "vanguard_config_" });
  try {
    const file = join(dir, "gw.yaml");
    await Deno.writeTextFile(file, yaml("routes:", "  - path_prefix: /a", "    service_name: [x]"));
    const display = relative(Deno.cwd(), file);
    const result = await loadConfigFile(display);
    assert.deepEqual(result.ok ? [] : result.problems.map(formatProblem), [
      `${display}:3:19: routes[0].service_name: must be a string, got a list`,
    ]);
    await Deno.writeTextFile(
      file,
      yaml("discovery:", "  kubernetes: { kubeconfig: kc }", "routes: []"),
    );
    const loaded = await loadConfigFile(display);
    assert.ok(loaded.ok);
    assert.equal(loaded.config.file, file);
    assert.equal(loaded.config.discovery.kubernetes?.kubeconfig, join(dir, "kc"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatProblem() omits the field path for document-level problems", () => {
  const base = { file: "c.yaml", line: 3, column: 7, message: "boom" };
  assert.equal(formatProblem({ ...base, field: "" }), "c.yaml:3:7: boom");
  assert.equal(formatProblem({ ...base, field: "server.port" }), "c.yaml:3:7: server.port: boom");
});

Deno.test("parseConfig() reads the upstream resilience keys of a service, with their defaults", async () => {
  const { DEFAULT_UPSTREAM_SETTINGS } = await import("../../lib/proxy/settings.ts");
  const { config, warnings } = load(yaml(
    "services:",
    "  a:",
    "    urls: [http://127.0.0.1:9001]",
    "    passive_health: { consecutive_failures: 3, base_ejection_ms: 300, max_ejection_ms: 1200 }",
    "    health_check: { path: /healthz?deep=1, interval_ms: 50 }",
    "    max_in_flight: 10",
    "    retries: 2",
    "  b:",
    "    retries: 1",
    "  c:",
    "    urls: [http://127.0.0.1:9002]",
    "routes:",
    "  - { path_prefix: /a, service_name: a }",
    "  - { path_prefix: /b, service_name: b }",
    "  - { path_prefix: /c, service_name: c }",
  ));
  assert.deepEqual(config.services.a, {
    urls: ["http://127.0.0.1:9001"],
    passiveHealth: { consecutiveFailures: 3, baseEjectionMs: 300, maxEjectionMs: 1200 },
    healthCheck: {
      path: "/healthz?deep=1",
      intervalMs: 50,
      timeoutMs: 1000,
      unhealthyThreshold: 2,
      healthyThreshold: 1,
    },
    maxInFlight: 10,
    retries: 2,
  });
  // Without urls an entry only tunes the service Kubernetes provides.
  assert.deepEqual(config.services.b, {
    passiveHealth: DEFAULT_UPSTREAM_SETTINGS.passiveHealth,
    retries: 1,
  });
  assert.deepEqual(config.services.c, {
    urls: ["http://127.0.0.1:9002"],
    ...DEFAULT_UPSTREAM_SETTINGS,
  });
  assert.deepEqual(warnings, [
    'conf/gw.yaml:14:38: routes[1].service_name: service "b" has no urls in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints',
  ]);
  const withDiscovery = load(yaml(
    "discovery: { kubernetes: { enabled: true } }",
    "services: { b: { retries: 1 } }",
    "routes: [{ path_prefix: /b, service_name: b }]",
  ));
  assert.deepEqual(withDiscovery.warnings, []);
});

Deno.test("parseConfig() reports bad upstream resilience keys at their line", () => {
  assert.deepEqual(
    problems(yaml(
      "services:",
      "  a:",
      "    urls: [http://127.0.0.1:9001]",
      "    passive_health:",
      "      consecutive_failures: -1",
      "      base_ejection_ms: 0",
      "      ejection_ms: 5",
      "    health_check:",
      "      path: healthz",
      "      interval_ms: 5",
      "    max_in_flight: 0",
      "    retries: 6",
      "  b:",
      "    health_check:",
      "      path: /healthz",
      "  c:",
      "    urls: [http://127.0.0.1:9002]",
      "    passive_health: { base_ejection_ms: 500, max_ejection_ms: 100 }",
      "    health_check: { interval_ms: 100 }",
      ...ROUTE,
    )),
    [
      "conf/gw.yaml:5:29: services.a.passive_health.consecutive_failures: must be between 0 and 1000, got -1",
      "conf/gw.yaml:6:25: services.a.passive_health.base_ejection_ms: must be at least 1, got 0",
      'conf/gw.yaml:7:7: services.a.passive_health.ejection_ms: unknown key "ejection_ms" (expected one of: consecutive_failures, base_ejection_ms, max_ejection_ms)',
      'conf/gw.yaml:9:13: services.a.health_check.path: must be a path starting with "/" (no spaces or fragment), got "healthz"',
      "conf/gw.yaml:10:20: services.a.health_check.interval_ms: must be between 10 and 3600000, got 5",
      "conf/gw.yaml:11:20: services.a.max_in_flight: must be at least 1, got 0",
      "conf/gw.yaml:12:14: services.a.retries: must be between 0 and 5, got 6",
      "conf/gw.yaml:14:5: services.b.health_check: active health checks need urls: Kubernetes readiness already checks discovered endpoints",
      "conf/gw.yaml:18:63: services.c.passive_health.max_ejection_ms: must be at least base_ejection_ms (500), got 100",
      "conf/gw.yaml:19:19: services.c.health_check.path: is required",
    ],
  );
});

Deno.test("parseConfig() takes discovery.kubernetes.publish_service as name or namespace/name, at its line otherwise", () => {
  const base = ["discovery:", "  kubernetes:", "    namespace: shop"];
  const at = (value: string) => yaml(...base, `    publish_service: ${value}`, "routes: []");
  assert.equal(load(at("edge")).config.discovery.kubernetes?.publishService, "edge");
  assert.equal(load(at("infra/edge")).config.discovery.kubernetes?.publishService, "infra/edge");
  assert.deepEqual(problems(at("infra/edge/x")), [
    'conf/gw.yaml:4:22: discovery.kubernetes.publish_service: must be a Service name or namespace/name (DNS-1123 labels), got "infra/edge/x"',
  ]);
  assert.deepEqual(problems(at("Edge_Svc")), [
    'conf/gw.yaml:4:22: discovery.kubernetes.publish_service: must be a Service name or namespace/name (DNS-1123 labels), got "Edge_Svc"',
  ]);
});

Deno.test("parseConfig() with unsetEnvIsWarning (deno task validate): an unset variable is a warning saying start refuses it; an empty one stays a problem", () => {
  const asValidate = { ...sources({}), unsetEnvIsWarning: true };
  const { warnings } = load(NAMES_EVERY_ENV, asValidate);
  const refused = "deno task start refuses to start without it";
  assert.deepEqual(warnings.filter((w) => w.includes("is not set")), [
    `conf/gw.yaml:2:12: redis.url_env: environment variable "REDIS_URL" is not set here; ${refused}`,
    `conf/gw.yaml:6:31: auth.api_key.keys[0].value_env: environment variable "WEB_KEY" is not set here; ${refused}`,
    `conf/gw.yaml:9:17: auth.jwt.secret_env: environment variable "JWT_SECRET" is not set here; ${refused}`,
  ]);
  // A variable that is set but empty is a mistake wherever the file is checked.
  const empty = {
    ...sources({ REDIS_URL: "", WEB_KEY: "", JWT_SECRET: "" }),
    unsetEnvIsWarning: true,
  };
  assert.equal(problems(NAMES_EVERY_ENV, empty).length, 3);
});
