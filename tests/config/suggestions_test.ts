/**
 * "Did you mean" in validation problems and warnings: mistyped keys in every section, values of a
 * fixed set, keys written one level too high, unknown service names, placeholder API keys, and
 * the `log` section.
 */
import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/types.ts";

const OPTIONS = {
  displayPath: "gw.yaml",
  absolutePath: "/srv/gw.yaml",
  env: () => undefined,
  readFile: (): string => {
    throw new Deno.errors.NotFound("no files in these tests");
  },
};

function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

function problems(text: string): string[] {
  const result = parseConfig(text, OPTIONS);
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

function load(text: string): { config: Config; warnings: string[] } {
  const result = parseConfig(text, OPTIONS);
  if (!result.ok) assert.fail(result.problems.map(formatProblem).join("\n"));
  return { config: result.config, warnings: result.warnings.map(formatProblem) };
}

const ROUTE = ["routes:", "  - path_prefix: /a", "    service_name: a"];
const SERVICE_A = ["services:", "  a:", "    urls: [http://127.0.0.1:9001]"];
const DIGEST = "57d419be43e536f6ecfa7f54599e9050db0eca72598b456400601ae346403973";

Deno.test("an unknown key keeps its message and gains the nearest known key, in every section", () => {
  const found = problems(yaml(
    "server:", //                                          1
    "  prot: 8000", //                                     2
    "lgo:", //                                             3
    "  format: text", //                                   4
    "auth:", //                                            5
    "  api_key:", //                                       6
    "    haeder: X-Key", //                                7
    `    keys: [{ id: a, sha265: "${DIGEST}" }]`, //      8
    "discovery:", //                                       9
    "  kubernetes: { namespce: default }", //             10
    ...SERVICE_A, //                                       11-13
    "    retires: 2", //                                  14
    "middleware:", //                                     15
    "  - nmae: cors", //                                  16
    "routes:", //                                         17
    "  - path_prefix: /a", //                             18
    "    servce_name: a", //                              19
    "    rate_limit: { requests_per_period: 1, period_seconds: 1, client_identifer: IP }", // 20
  ));
  const suggestions = found.filter((line) => line.includes("unknown key")).map((line) => {
    const match = /^(gw\.yaml:\d+:\d+: \S+): unknown key "[^"]+" \(expected one of: [^)]+\)(.*)$/
      .exec(line);
    assert.ok(match, line);
    return `${match[1]}${match[2]}`;
  });
  assert.deepEqual(suggestions, [
    'gw.yaml:2:3: server.prot; did you mean "port"?',
    'gw.yaml:3:1: lgo; did you mean "log"?',
    'gw.yaml:7:5: auth.api_key.haeder; did you mean "header"?',
    'gw.yaml:8:21: auth.api_key.keys[0].sha265; did you mean "sha256"?',
    'gw.yaml:10:17: discovery.kubernetes.namespce; did you mean "namespace"?',
    'gw.yaml:14:5: services.a.retires; did you mean "retries"?',
    'gw.yaml:16:5: middleware[0].nmae; did you mean "name"?',
    'gw.yaml:19:5: routes[0].servce_name; did you mean "service_name"?',
    'gw.yaml:20:62: routes[0].rate_limit.client_identifer; did you mean "client_identifier"?',
  ]);
});

Deno.test("an unknown key far from every known key gets no guess", () => {
  assert.deepEqual(problems(yaml("log:", "  colour: true", ...ROUTE)), [
    'gw.yaml:2:3: log.colour: unknown key "colour" (expected one of: format)',
  ]);
});

Deno.test("a key written one level too high is pointed to the section it belongs to", () => {
  const [problem] = problems(yaml("server:", "port: 8000", ...ROUTE));
  assert.match(problem, /^gw\.yaml:2:1: port: unknown key "port" \(expected one of: server, /);
  assert.match(problem, /\); "port" is a key of server: indent it under server:$/);
});

Deno.test("a mistyped value of a fixed set gets the nearest one", () => {
  assert.deepEqual(problems(yaml("log:", "  format: jsno", ...ROUTE)), [
    'gw.yaml:2:11: log.format: must be one of auto, json, text, got "jsno"; did you mean "json"?',
  ]);
  assert.deepEqual(problems(yaml("middleware:", "  - name: ip_filtr", ...ROUTE)), [
    'gw.yaml:2:11: middleware[0].name: unknown built-in "ip_filtr" (built-ins: cors, request_headers, response_headers, ip_filter, timeout, max_body_bytes; a plugin of your own goes in module:); did you mean "ip_filter"?',
  ]);
});

Deno.test("an unknown service_name with discovery off is a warning naming the near static service", () => {
  const { warnings } = load(yaml(
    "discovery: { kubernetes: { enabled: false } }",
    "services:",
    "  web: { urls: [http://127.0.0.1:9001] }",
    "routes:",
    "  - path_prefix: /a",
    "    service_name: wbe",
    "  - path_prefix: /b",
    "    service_name: billing",
  ));
  assert.deepEqual(warnings, [
    'gw.yaml:6:19: routes[0].service_name: service "wbe" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints; did you mean "web"?',
    'gw.yaml:8:19: routes[1].service_name: service "billing" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints',
  ]);
});

Deno.test("with discovery on, only a service_name close to a static service's name is a warning", () => {
  const { warnings } = load(yaml(
    "discovery: { kubernetes: { enabled: true } }",
    "services:",
    "  web: { urls: [http://127.0.0.1:9001] }",
    "routes:",
    "  - { path_prefix: /a, service_name: wbe }",
    "  - { path_prefix: /b, service_name: billing }",
    "  - { path_prefix: /c, service_name: web }",
  ));
  assert.deepEqual(warnings, [
    'gw.yaml:5:38: routes[0].service_name: service "wbe" is not in services, so Kubernetes discovery must provide it; did you mean "web"?',
  ]);
});

Deno.test("a placeholder API key digest is a warning that says what it does and how to make a real key", () => {
  const keys = (...entries: string[]) =>
    load(yaml("auth:", "  api_key:", "    keys:", ...entries, ...SERVICE_A, ...ROUTE)).warnings;
  assert.deepEqual(keys(`      - { id: app, sha256: "${"0".repeat(64)}" }`), [
    "gw.yaml:4:28: auth.api_key.keys[0].sha256: is a placeholder (all zeros), not the SHA-256 of a real key: no key matches it, so every request with an API key is refused (401); make a real key with: deno task apikey app",
  ]);
  assert.deepEqual(
    keys(
      `      - { id: real, sha256: "${DIGEST}" }`,
      `      - { id: ci, sha256: "${"F".repeat(64)}" }`,
      `      - { id: demo, sha256: "${"deadbeef".repeat(8)}" }`,
      '      - { id: empty, sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" }',
    ),
    [
      'gw.yaml:5:27: auth.api_key.keys[1].sha256: is a placeholder (all "f"), not the SHA-256 of a real key: no key matches it, so no request is let in as "ci"; make a real key with: deno task apikey ci',
      'gw.yaml:6:29: auth.api_key.keys[2].sha256: is a placeholder (a repeated pattern), not the SHA-256 of a real key: no key matches it, so no request is let in as "demo"; make a real key with: deno task apikey demo',
      'gw.yaml:7:30: auth.api_key.keys[3].sha256: is a placeholder (the SHA-256 of an empty key), not the SHA-256 of a real key: no key matches it, so no request is let in as "empty"; make a real key with: deno task apikey empty',
    ],
  );
  assert.deepEqual(keys(`      - { id: real, sha256: "${DIGEST}" }`), []);
});

Deno.test("log.format is auto unless set, and takes json or text", () => {
  assert.deepEqual(load(yaml(...SERVICE_A, ...ROUTE)).config.log, { format: "auto" });
  assert.deepEqual(load(yaml("log:", ...SERVICE_A, ...ROUTE)).config.log, { format: "auto" });
  assert.deepEqual(load(yaml("log: { format: text }", ...SERVICE_A, ...ROUTE)).config.log, {
    format: "text",
  });
  assert.deepEqual(load(yaml("log: { format: json }", ...SERVICE_A, ...ROUTE)).config.log, {
    format: "json",
  });
});
