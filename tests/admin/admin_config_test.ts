/** The admin listener's keys in config.yaml: `server.admin_host` and `server.admin_token_env`. */
import assert from "node:assert/strict";
import { isLoopbackHost } from "../../lib/config/admin_rules.ts";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";

const ROUTES = "routes: [{ id: app, path_prefix: /, service_name: app }]\n" +
  "services: { app: { urls: [http://127.0.0.1:9001] } }\n";

function load(server: string, env: Record<string, string> = {}) {
  const result = parseConfig(`server:\n${server}\n${ROUTES}`, {
    displayPath: "gw.yaml",
    absolutePath: "/tmp/gw.yaml",
    env: (name) => env[name],
  });
  return {
    result,
    problems: result.ok ? [] : result.problems.map(formatProblem),
    warnings: result.warnings.map(formatProblem),
  };
}

Deno.test("server.admin_host defaults to 127.0.0.1, and admin_token_env to none", () => {
  const { result, warnings } = load("  port: 8000");
  assert.ok(result.ok);
  assert.equal(result.config.server.adminHost, "127.0.0.1");
  assert.equal(result.config.server.adminTokenEnv, undefined);
  assert.deepEqual(warnings, []);
});

Deno.test("server.admin_token_env must name a set variable holding at least 16 characters", () => {
  const rows: [string, Record<string, string>, string][] = [
    [
      "ADMIN_TOKEN",
      {},
      'gw.yaml:2:20: server.admin_token_env: environment variable "ADMIN_TOKEN" is not set',
    ],
    [
      "ADMIN_TOKEN",
      { ADMIN_TOKEN: "" },
      'gw.yaml:2:20: server.admin_token_env: environment variable "ADMIN_TOKEN" is empty',
    ],
    [
      "ADMIN_TOKEN",
      { ADMIN_TOKEN: "too-short" },
      'gw.yaml:2:20: server.admin_token_env: token in "ADMIN_TOKEN" is too short (at least 16 characters; make one with: openssl rand -hex 32)',
    ],
    [
      "admin-token",
      {},
      'gw.yaml:2:20: server.admin_token_env: must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got "admin-token"',
    ],
  ];
  for (const [name, env, expected] of rows) {
    assert.deepEqual(load(`  admin_token_env: ${name}`, env).problems, [expected]);
  }
  const { result } = load("  admin_token_env: ADMIN_TOKEN", { ADMIN_TOKEN: "x".repeat(16) });
  assert.ok(result.ok);
  assert.equal(result.config.server.adminTokenEnv, "ADMIN_TOKEN");
  assert.ok(
    !JSON.stringify(result.config).includes("x".repeat(16)),
    "the config holds the name only",
  );
});

Deno.test("an admin_host other hosts can reach, without a token, loads with a warning at its line", () => {
  const open = load("  port: 8000\n  admin_host: 0.0.0.0");
  assert.ok(open.result.ok);
  assert.deepEqual(open.warnings, [
    "gw.yaml:3:15: server.admin_host: 0.0.0.0 is not a loopback address and server.admin_token_env is not set: /metrics, /routes and /dashboard on port 8001 answer anyone who can reach it; set admin_token_env, or keep the port unreachable from outside",
  ]);
  const guarded = load("  admin_host: 0.0.0.0\n  admin_token_env: T", { T: "t".repeat(32) });
  assert.deepEqual(guarded.warnings, []);
  for (const host of ["127.0.0.1", "localhost", "::1", "127.0.0.53"]) {
    assert.deepEqual(load(`  admin_host: "${host}"`).warnings, [], host);
  }
});

Deno.test("isLoopbackHost() accepts only addresses no other host can reach", () => {
  const rows: [string, boolean][] = [
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["LOCALHOST", true],
    ["::1", true],
    ["[::1]", true],
    ["0:0:0:0:0:0:0:1", true],
    ["::ffff:127.0.0.1", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.5", false],
    ["128.0.0.1", false],
    ["127.0.0.1.example.com", false],
    ["gateway.internal", false],
    ["::2", false],
  ];
  for (const [host, loopback] of rows) assert.equal(isLoopbackHost(host), loopback, host);
});
