import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";
import { tableFromConfig } from "../../lib/routing/table.ts";

const WHERE = { displayPath: "gw.yaml", absolutePath: "/tmp/vanguard-routing/gw.yaml" };
const SERVICES = ["services:", "  a: { urls: [http://127.0.0.1:9001] }"];

function problems(...routes: string[]): string[] {
  const result = parseConfig([...SERVICES, "routes:", ...routes].join("\n") + "\n", WHERE);
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

function load(...routes: string[]) {
  const result = parseConfig([...SERVICES, "routes:", ...routes].join("\n") + "\n", WHERE);
  if (!result.ok) assert.fail(result.problems.map(formatProblem).join("\n"));
  return { config: result.config, warnings: result.warnings.map(formatProblem) };
}

Deno.test("parseConfig() reads hosts, the three path kinds, methods, headers and query", () => {
  const { config } = load(
    "  - id: api",
    "    hosts: [API.example.com, '*.example.com']",
    "    path_prefix: /users",
    "    methods: [GET, post]",
    "    headers:",
    "      - { name: X-Canary, value: 'true' }",
    "      - { name: X-Version, regex: 'v[0-9]+' }",
    "      - { name: X-User, present: true }",
    "    query:",
    "      - { name: version, value: '2' }",
    "    service_name: a",
    "  - { id: health, path_exact: /healthz, service_name: a }",
    "  - { id: versioned, path_regex: '^/v[0-9]+/users$', service_name: a }",
  );
  const [api, health, versioned] = config.routes;
  assert.deepEqual(api.hosts, ["api.example.com", "*.example.com"]);
  assert.equal(api.pathPrefix, "/users");
  assert.deepEqual(api.methods, ["GET", "POST"]);
  assert.deepEqual(api.headers, [
    { name: "x-canary", value: "true" },
    { name: "x-version", regex: "v[0-9]+" },
    { name: "x-user", present: true },
  ]);
  assert.deepEqual(api.query, [{ name: "version", value: "2" }]);
  assert.equal(health.pathExact, "/healthz");
  assert.equal(health.pathPrefix, undefined);
  assert.equal(versioned.pathRegex, "^/v[0-9]+/users$");

  const table = tableFromConfig(config);
  assert.equal(table.conditional, true);
  const get = { method: "GET", headers: new Headers(), query: "", host: undefined };
  assert.equal(table.match("/healthz", get)?.id, "health");
  assert.equal(table.match("/v3/users", get)?.id, "versioned");
  assert.equal(table.match("/healthz", get)?.pathKind, "exact");
});

Deno.test("parseConfig() wants exactly one of path_prefix, path_exact and path_regex", () => {
  assert.deepEqual(
    problems(
      "  - { path_prefix: /a, path_exact: /b, service_name: a }", // 4
      "  - { service_name: a }", // 5
      "  - { path_regex: '/x', path_exact: /x, path_prefix: /y, service_name: a }", // 6
    ),
    [
      "gw.yaml:4:24: routes[0].path_exact: cannot be combined with path_prefix: a route has exactly one of path_prefix, path_exact, path_regex",
      "gw.yaml:5:5: routes[1]: needs exactly one of path_prefix, path_exact, path_regex",
      "gw.yaml:6:25: routes[2].path_exact: cannot be combined with path_regex: a route has exactly one of path_prefix, path_exact, path_regex",
      "gw.yaml:6:41: routes[2].path_prefix: cannot be combined with path_regex: a route has exactly one of path_prefix, path_exact, path_regex",
    ],
  );
});

Deno.test("parseConfig() reports a bad host at its line and column", () => {
  assert.deepEqual(
    problems(
      "  - path_prefix: /a", // 4
      "    service_name: a", // 5
      "    hosts:", // 6
      "      - api.*.example.com", // 7
      "      - 'example.com:8080'", // 8
      "      - '*'", // 9
      "      - good.example.com", // 10
    ),
    [
      'gw.yaml:7:9: routes[0].hosts[0]: a wildcard may only be the whole first label ("*.example.com"), got "api.*.example.com"',
      'gw.yaml:8:9: routes[0].hosts[1]: must be a host name without a port, got "example.com:8080"',
      'gw.yaml:9:9: routes[0].hosts[2]: "*" is not a host: leave hosts out to match any host',
    ],
  );
});

Deno.test("parseConfig() reports an invalid or catastrophic regex at its line", () => {
  assert.deepEqual(
    problems(
      "  - { path_regex: '/a[', service_name: a }", // 4
      "  - { path_regex: '/(a+)+', service_name: a }", // 5
      "  - { path_regex: '/(a)\\1', service_name: a }", // 6
      "  - path_prefix: /h", // 7
      "    service_name: a", // 8
      "    headers:", // 9
      "      - { name: X-A, regex: '(?=a)a' }", // 10
      "    query:", // 11
      "      - { name: q, regex: '(x|y)*' }", // 12
    ).map((line) => line.replace(/: Invalid regular expression.*$/, ": <invalid>")),
    [
      "gw.yaml:4:19: routes[0].path_regex: is not a valid regular expression: <invalid>",
      "gw.yaml:5:19: routes[1].path_regex: must not repeat a group that contains a quantifier or an alternation (such as (a+)+ or (a|b)*): it can take exponential time",
      "gw.yaml:6:19: routes[2].path_regex: must not use backreferences",
      "gw.yaml:10:29: routes[3].headers[0].regex: must not use lookahead",
      "gw.yaml:12:27: routes[3].query[0].regex: must not repeat a group that contains a quantifier or an alternation (such as (a+)+ or (a|b)*): it can take exponential time",
    ],
  );
});

Deno.test("parseConfig() bounds the length of a regex", () => {
  const [problem] = problems(`  - { path_regex: '/${"a".repeat(300)}', service_name: a }`);
  assert.equal(
    problem,
    "gw.yaml:4:19: routes[0].path_regex: must be at most 256 characters, got 301",
  );
});

Deno.test("parseConfig() checks methods, header and query entries, strip_prefix with a regex", () => {
  assert.deepEqual(
    problems(
      "  - path_prefix: /a", // 4
      "    service_name: a", // 5
      "    methods: ['GE T']", // 6
      "    headers:", // 7
      "      - { name: 'Bad Name', value: x }", // 8
      "      - { name: X-A, value: x, present: true }", // 9
      "      - { name: X-B }", // 10
      "      - { name: X-C, present: false }", // 11
      "  - { path_regex: '/x', strip_prefix: true, service_name: a }", // 12
    ),
    [
      'gw.yaml:6:15: routes[0].methods[0]: must be an HTTP method such as GET or POST, got "GE T"',
      'gw.yaml:8:17: routes[0].headers[0].name: must be a valid HTTP header name, got "Bad Name"',
      "gw.yaml:9:32: routes[0].headers[1].present: cannot be combined with value (set only one of: value, regex, present)",
      "gw.yaml:10:9: routes[0].headers[2]: needs one of: value, regex, present",
      "gw.yaml:11:31: routes[0].headers[3].present: must be true (leave the entry out to accept any request)",
      "gw.yaml:12:25: routes[1].strip_prefix: cannot be used with path_regex",
    ],
  );
});

Deno.test("parseConfig() lets routes share a path when hosts or other matches differ", () => {
  const { config, warnings } = load(
    "  - { id: a, path_prefix: /x, service_name: a }",
    "  - { id: b, path_prefix: /x, hosts: [b.example], service_name: a }",
    "  - { id: c, path_prefix: /x, methods: [POST], service_name: a }",
    "  - { id: d, path_prefix: /x, headers: [{ name: X-Canary, present: true }], service_name: a }",
    "  - { id: e, path_exact: /x, service_name: a }",
  );
  assert.equal(config.routes.length, 5);
  assert.deepEqual(warnings, []);
});

Deno.test("parseConfig() warns about a route whose whole match repeats an earlier one, naming both", () => {
  const { warnings } = load(
    "  - { id: one, path_prefix: /x, hosts: [b.example, a.example], methods: [GET], service_name: a }",
    "  - { id: two, path_prefix: /x/, hosts: [A.example, b.example], methods: [get], service_name: a }",
  );
  assert.deepEqual(warnings, [
    'gw.yaml:5:5: routes[1]: route "two" matches exactly what route "one" (routes[0]) matches: "one" always wins, so "two" never serves a request',
  ]);
});
