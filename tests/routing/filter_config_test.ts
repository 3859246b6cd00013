import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";
import { tableFromConfig } from "../../lib/routing/table.ts";

const WHERE = { displayPath: "gw.yaml", absolutePath: "/tmp/vanguard-routing/gw.yaml" };
const SERVICES = [
  "services:",
  "  a: { urls: [http://127.0.0.1:9001] }",
  "  b: { urls: [http://127.0.0.1:9002] }",
];

function parse(...routes: string[]) {
  return parseConfig([...SERVICES, "routes:", ...routes].join("\n") + "\n", WHERE);
}

function problems(...routes: string[]): string[] {
  const result = parse(...routes);
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

Deno.test("parseConfig() reads backends, sticky, redirect, rewrite, mirror and the filter keys", () => {
  const result = parse(
    "  - id: split",
    "    path_prefix: /api",
    "    backends: [{ service_name: a, weight: 90 }, { service_name: b }]",
    "    sticky: { cookie: user }",
    "    rewrite: { host: api.internal, path_prefix: /v2 }",
    "    mirror: { service_name: b, percent: 10 }",
    "    timeout_ms: 2000",
    "    preserve_host: true",
    "    request_headers: { set: { X-Tenant: acme } }",
    "    response_headers: { remove: [Server] }",
    "  - { id: away, path_prefix: /old, redirect: { scheme: https, path_prefix: /new } }",
  );
  if (!result.ok) assert.fail(result.problems.map(formatProblem).join("\n"));
  const [split, away] = tableFromConfig(result.config).toData().routes;
  assert.deepEqual(split.backends, [
    { serviceName: "a", weight: 90 },
    { serviceName: "b", weight: 1 },
  ]);
  assert.equal(split.serviceName, "a");
  assert.deepEqual(split.sticky, { cookie: "user" });
  assert.deepEqual(split.rewrite, { host: "api.internal", pathPrefix: "/v2" });
  assert.deepEqual(split.mirror, { serviceName: "b", percent: 10 });
  assert.equal(split.timeoutMs, 2000);
  assert.equal(split.preserveHost, true);
  assert.deepEqual(split.requestHeaders, { set: [["x-tenant", "acme"]], add: [], remove: [] });
  assert.deepEqual(split.responseHeaders, { set: [], add: [], remove: ["server"] });
  assert.deepEqual(away.redirect, { scheme: "https", pathPrefix: "/new", status: 302 });
  assert.equal(away.serviceName, "");
  // Plain data: a worker thread receives the same table.
  assert.deepEqual(structuredClone(split), split);
});

Deno.test("parseConfig() names the conflicting keys of a route's target", () => {
  assert.deepEqual(
    problems(
      "  - { path_prefix: /a, service_name: a, backends: [{ service_name: b }] }", // 5
      "  - { path_prefix: /b, service_name: a, redirect: { path: /c } }", // 6
      "  - { path_prefix: /d }", // 7
      "  - { path_prefix: /e, redirect: { scheme: https }, rewrite: { path: /x }, timeout_ms: 5 }", // 8
    ),
    [
      "gw.yaml:5:41: routes[0].backends: cannot be combined with service_name: a route has exactly one of service_name, backends, redirect",
      "gw.yaml:6:41: routes[1].redirect: cannot be combined with service_name: a route has exactly one of service_name, backends, redirect",
      "gw.yaml:7:5: routes[2]: needs exactly one of service_name, backends, redirect",
      "gw.yaml:8:53: routes[3].rewrite: has no effect on a redirect route: it answers itself and sends nothing upstream",
      "gw.yaml:8:76: routes[3].timeout_ms: has no effect on a redirect route: it answers itself and sends nothing upstream",
    ],
  );
});

Deno.test("parseConfig() checks weights, sticky, redirect, rewrite and mirror values at their lines", () => {
  assert.deepEqual(
    problems(
      "  - path_prefix: /a", // 5
      "    backends:", // 6
      "      - { service_name: a, weight: 0 }", // 7
      "      - { service_name: B_, weight: -1 }", // 8
      "  - path_prefix: /b", // 9
      "    service_name: a", // 10
      "    sticky: { header: X-User }", // 11
      "    mirror: { service_name: b, percent: 101 }", // 12
      "  - path_exact: /c", // 13
      "    redirect: { path_prefix: /d, status: 304 }", // 14
      "  - path_exact: /e", // 15
      "    service_name: a", // 16
      "    rewrite: { path_prefix: /f }", // 17
      "  - path_prefix: /g", // 18
      "    service_name: a", // 19
      "    strip_prefix: true", // 20
      "    rewrite: { host: '*.example.com', path: /h, path_prefix: /i }", // 21
      "  - path_prefix: /j", // 22
      "    service_name: a", // 23
      "    rewrite: {}", // 24
      "  - { path_prefix: /k, backends: [{ service_name: a, weight: 0 }] }", // 25
      "  - { path_prefix: /l, service_name: a, sticky: { header: X-User } }", // 26
      "  - { path_prefix: /m, service_name: a, strip_prefix: true, rewrite: { path: /n } }", // 27
      "  - { path_prefix: /o, service_name: a, rewrite: { path: /p, path_prefix: /q } }", // 28
      "  - { path_prefix: /r, redirect: { path: /s, path_prefix: /t, scheme: ftp } }", // 29
    ),
    [
      'gw.yaml:8:25: routes[0].backends[1].service_name: must be "name" or "name.namespace" made of DNS-1123 labels, got "B_"',
      "gw.yaml:8:37: routes[0].backends[1].weight: must be between 0 and 1000000, got -1",
      "gw.yaml:12:41: routes[1].mirror.percent: must be between 0 and 100, got 101",
      "gw.yaml:14:42: routes[2].redirect.status: must be one of 301, 302, 303, 307, 308, got 304",
      "gw.yaml:17:5: routes[3].rewrite: path_prefix replaces the matched prefix, so it needs a path_prefix route (use path for path_exact or path_regex)",
      'gw.yaml:21:22: routes[4].rewrite.host: must be one host name, not a wildcard, got "*.example.com"',
      "gw.yaml:24:14: routes[5].rewrite: give host, path or path_prefix",
      "gw.yaml:25:34: routes[6].backends: every weight is 0: give at least one backend a weight above 0",
      "gw.yaml:26:41: routes[7].sticky: needs backends: with one service there is nothing to stick to",
      "gw.yaml:27:41: routes[8].strip_prefix: cannot be combined with rewrite.path or rewrite.path_prefix (strip_prefix: true is rewrite.path_prefix: /)",
      "gw.yaml:28:62: routes[9].rewrite.path_prefix: cannot be combined with path (set only one of them)",
      'gw.yaml:29:71: routes[10].redirect.scheme: must be http or https, got "ftp"',
    ],
  );
});
