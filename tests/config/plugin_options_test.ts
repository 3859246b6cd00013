import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";
import { BUILTIN_PLUGINS } from "../../lib/plugins/registry.ts";

const where = {
  displayPath: "gw.yaml",
  absolutePath: "/srv/vanguard/gw.yaml",
  env: () => undefined,
  readFile: () => {
    throw new Deno.errors.NotFound("no files in this test");
  },
};

/** Lines joined with "\n", so that line numbers in assertions are easy to count. */
function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

function problems(text: string): string[] {
  const result = parseConfig(text, where);
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

/** A config whose only route has `middleware` (lines from 6 on). */
function route(...middleware: string[]): string {
  return yaml(
    "services: { app: { urls: [http://127.0.0.1:9001] } }",
    "routes:",
    "  - path_prefix: /",
    "    service_name: app",
    "    middleware:",
    ...middleware,
  );
}

Deno.test("a bad built-in option is reported at its own line and column, not at options", () => {
  const found = problems(route(
    "      - name: cors", // 6
    "        options:",
    "          allow_origins:",
    "            - https://ok.example",
    "            - ftp://nope", // 10
    "          max_age_seconds: -1",
    "      - name: request_headers",
    "        options:",
    "          set:",
    "            Bad Header: x", // 15
    '            X-Ok: "a\\nb"',
    '          remove: [ok, "b c"]',
    "      - name: ip_filter",
    "        options:",
    "          deny: [10.0.0.0/8, nope]", // 20
    "          alow: []",
    "      - name: timeout",
    "        options: {}",
  ));
  const field = "routes[0].middleware";
  assert.deepEqual(found, [
    `gw.yaml:10:15: ${field}[0].options.allow_origins: "ftp://nope" must be "*" or an origin like https://app.example`,
    `gw.yaml:11:28: ${field}[0].options.max_age_seconds: must be a whole number >= 0`,
    `gw.yaml:15:13: ${field}[1].options.set.Bad Header: not a valid header name`,
    `gw.yaml:16:19: ${field}[1].options.set.X-Ok: value must not contain CR, LF or NUL`,
    `gw.yaml:17:24: ${field}[1].options.remove: "b c" is not a header name`,
    `gw.yaml:20:30: ${field}[2].options.deny: "nope" is not a CIDR or address`,
    `gw.yaml:21:11: ${field}[2].options.alow: unknown option (expected one of: allow, deny); did you mean "allow"?`,
    `gw.yaml:23:18: ${field}[3].options.upstream_timeout_ms: must be a whole number from 1 to 3600000`,
  ]);
});

Deno.test("built-in options that are absent or not a mapping are reported at the entry", () => {
  assert.deepEqual(
    problems(route(
      "      - name: ip_filter",
      "      - name: max_body_bytes",
      "        options: [1]",
    )),
    [
      "gw.yaml:6:9: routes[0].middleware[0].options: allow or deny: give at least one",
      "gw.yaml:8:18: routes[0].middleware[1].options: options must be a mapping",
    ],
  );
});

Deno.test("built-ins still check plain options through the plugin API", () => {
  const cors = BUILTIN_PLUGINS.cors;
  assert.deepEqual(cors.validateOptions?.({ allow_origins: ["ftp://x"], max_age_seconds: -1 }), [
    'allow_origins: "ftp://x" must be "*" or an origin like https://app.example',
    "max_age_seconds: must be a whole number >= 0",
  ]);
  assert.deepEqual(cors.validateOptions?.({ allow_origins: ["*"] }), []);
  const logger = { info() {}, warn() {}, error() {}, debug() {} } as never;
  assert.throws(
    () =>
      BUILTIN_PLUGINS.timeout.createMiddleware({}, { logger, trustedProxies: [], onClose() {} }),
    /timeout: upstream_timeout_ms: must be a whole number from 1 to 3600000/,
  );
  assert.equal(
    typeof BUILTIN_PLUGINS.timeout.createMiddleware({ upstream_timeout_ms: 5 }, {
      logger,
      trustedProxies: [],
      onClose() {},
    }),
    "function",
  );
});
