import assert from "node:assert/strict";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatProblem, loadConfigFile, parseConfig } from "../../lib/config/load.ts";
import type { Config, ConfigWarning } from "../../lib/config/types.ts";

const where = { displayPath: "conf/gw.yaml", absolutePath: "/srv/vanguard/conf/gw.yaml" };

/** Lines joined with "\n", so that line numbers in assertions are easy to count. */
function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

function load(text: string): { config: Config; warnings: string[] } {
  const result = parseConfig(text, where);
  if (!result.ok) {
    assert.fail(`expected a valid config, got:\n${result.problems.map(formatProblem).join("\n")}`);
  }
  return { config: result.config, warnings: result.warnings.map(formatProblem) };
}

function problems(text: string): string[] {
  const result = parseConfig(text, where);
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
    adminHost: "0.0.0.0",
    trustedProxies: [],
    maxBodyBytes: 10485760,
    upstreamTimeoutMs: 30000,
    shutdownGraceSeconds: 25,
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
    },
    {
      id: "order-service-route",
      pathPrefix: "/orders",
      serviceName: "order-service",
      authRequired: true,
      stripPrefix: false,
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
    `conf/gw.yaml:2:3: server.prot: unknown key "prot" (expected one of: port, host, admin_port, admin_host, trusted_proxies, max_body_bytes, upstream_timeout_ms, shutdown_grace_seconds)`,
    "conf/gw.yaml:4:19: server.max_body_bytes: must be at least 0, got -1",
    "conf/gw.yaml:6:3: redis: needs one of: url, url_env",
    'conf/gw.yaml:6:17: redis.failure_mode: must be one of open, closed, local, got "sometimes"',
    "conf/gw.yaml:8:5: routes[0].path_prefix: is required",
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

Deno.test("parseConfig() reports a YAML syntax error with its line", () => {
  const [problem, ...rest] = problems(yaml("server:", "  port: [8000", "routes: []"));
  assert.deepEqual(rest, []);
  assert.match(problem, /^conf\/gw\.yaml:3:1: \S/);
});

Deno.test("parseConfig() reports duplicate keys and keeps validating", () => {
  assert.deepEqual(problems(yaml("server:", "  port: 1", "  port: 2", "  bogus: 3", ...ROUTE)), [
    'conf/gw.yaml:3:3: duplicate key "port"',
    'conf/gw.yaml:4:3: server.bogus: unknown key "bogus" (expected one of: port, host, admin_port, admin_host, trusted_proxies, max_body_bytes, upstream_timeout_ms, shutdown_grace_seconds)',
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
  assert.deepEqual(config.services, {
    a: { urls: ["http://127.0.0.1:9001", "https://example.com"] },
    empty: { urls: [] },
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
      'conf/gw.yaml:8:5: services.Not_Valid.url: unknown key "url" (expected one of: urls)',
      "conf/gw.yaml:8:5: services.Not_Valid.urls: is required",
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

Deno.test("parseConfig() rejects duplicate route ids and duplicate path prefixes on the later route", () => {
  assert.deepEqual(
    problems(yaml(
      ...SERVICE_A,
      "routes:",
      "  - { id: r, path_prefix: /a, service_name: a }",
      "  - { id: r, path_prefix: /a/, service_name: a }",
    )),
    [
      'conf/gw.yaml:6:11: routes[1].id: duplicate id "r" (already used by routes[0])',
      'conf/gw.yaml:6:27: routes[1].path_prefix: duplicate path_prefix "/a" (already used by routes[0])',
    ],
  );
});

Deno.test("parseConfig() reads redis, auth and rate limits with their defaults", () => {
  const digest = "AB".repeat(32);
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
  assert.deepEqual(config.redis, { urlEnv: "REDIS_URL", failureMode: "local" });
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
      "conf/gw.yaml:3:3: redis.url_env: cannot be combined with url (set only one of: url, url_env)",
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
