/**
 * `redis.cluster` and `redis.sentinel`: what loads, and every problem with
 * its file:line:column (exactly one of url, url_env, cluster, sentinel; node
 * URLs; passwords only from set environment variables).
 */
import assert from "node:assert/strict";
import { formatProblem, parseConfig, type ParseOptions } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/types.ts";

const ENV: Readonly<Record<string, string>> = {
  REDIS_PASSWORD: "cluster-secret-0123",
  SENTINEL_PASSWORD: "sentinel-secret-0123",
  EMPTY: "",
};

function sources(env: Readonly<Record<string, string>> = ENV): ParseOptions {
  return {
    displayPath: "conf/gw.yaml",
    absolutePath: "/srv/vanguard/conf/gw.yaml",
    env: (name) => Object.hasOwn(env, name) ? env[name] : undefined,
    readFile(absolutePath) {
      throw new Deno.errors.NotFound(`No such file or directory: ${absolutePath}`);
    },
  };
}

/** The lines joined, then a service and a route (so line numbers stay easy to count). */
function yaml(...lines: string[]): string {
  return [
    ...lines,
    "services:",
    "  a: { urls: [http://127.0.0.1:9001] }",
    "routes:",
    "  - { path_prefix: /a, service_name: a }",
  ].join("\n") + "\n";
}

function load(text: string): Config {
  const result = parseConfig(text, sources());
  if (!result.ok) assert.fail(result.problems.map(formatProblem).join("\n"));
  return result.config;
}

function problems(text: string, env?: Readonly<Record<string, string>>): string[] {
  const result = parseConfig(text, sources(env));
  assert.equal(result.ok, false, "expected the config to be rejected");
  return result.ok ? [] : result.problems.map(formatProblem);
}

Deno.test("redis.cluster loads its nodes (port 6379 by default) and the password's variable name only", () => {
  const config = load(yaml(
    "redis:",
    "  cluster:",
    "    nodes: [redis://10.0.0.1:7000, redis://redis-1.redis, 'redis://[fd00::3]:7002']",
    "    password_env: REDIS_PASSWORD",
    "  failure_mode: closed",
  ));
  assert.deepEqual(config.redis, {
    cluster: {
      nodes: [
        { host: "10.0.0.1", port: 7000, tls: false },
        { host: "redis-1.redis", port: 6379, tls: false },
        { host: "fd00::3", port: 7002, tls: false },
      ],
      passwordEnv: "REDIS_PASSWORD",
    },
    failureMode: "closed",
    timeoutMs: 50,
  });
  assert.ok(!JSON.stringify(config).includes(ENV.REDIS_PASSWORD));
});

Deno.test("redis.sentinel loads the Sentinels (port 26379 by default), the master name and TLS from rediss://", () => {
  const config = load(yaml(
    "redis:",
    "  sentinel:",
    "    sentinels: [rediss://sentinel-0.sentinel, rediss://sentinel-1.sentinel:26380]",
    "    name: mymaster",
    "    password_env: REDIS_PASSWORD",
    "    sentinel_password_env: SENTINEL_PASSWORD",
    "  timeout_ms: 100",
  ));
  assert.deepEqual(config.redis, {
    sentinel: {
      sentinels: [
        { host: "sentinel-0.sentinel", port: 26379, tls: true },
        { host: "sentinel-1.sentinel", port: 26380, tls: true },
      ],
      name: "mymaster",
      passwordEnv: "REDIS_PASSWORD",
      sentinelPasswordEnv: "SENTINEL_PASSWORD",
    },
    failureMode: "local",
    timeoutMs: 100,
  });
});

Deno.test("redis needs exactly one of url, url_env, cluster and sentinel", () => {
  assert.deepEqual(problems(yaml("redis:", "  failure_mode: open")), [
    "conf/gw.yaml:2:3: redis: needs one of: url, url_env, cluster, sentinel",
  ]);
  assert.deepEqual(
    problems(yaml(
      "redis:", //                                       1
      "  url: redis://127.0.0.1:6379", //                2
      "  cluster:", //                                   3
      "    nodes: [redis://10.0.0.1:6379]", //           4
      "  sentinel:", //                                  5
      "    sentinels: [redis://10.0.0.9]", //            6
      "    name: mymaster", //                           7
    )),
    [
      "conf/gw.yaml:3:3: redis.cluster: cannot be combined with url (set only one of: url, url_env, cluster, sentinel)",
      "conf/gw.yaml:5:3: redis.sentinel: cannot be combined with url (set only one of: url, url_env, cluster, sentinel)",
    ],
  );
  // An empty section is not a choice made: it is reported where it stands.
  assert.deepEqual(problems(yaml("redis:", "  cluster:")), [
    "conf/gw.yaml:2:11: redis.cluster: must be a mapping, got null",
  ]);
});

Deno.test("redis.cluster.nodes: bad URLs, credentials, a database, mixed TLS and duplicates, each at its line and column", () => {
  assert.deepEqual(
    problems(yaml(
      "redis:", //                                       1
      "  cluster:", //                                   2
      "    nodes:", //                                   3
      "      - http://10.0.0.1:6379", //                 4
      "      - redis://:hunter2@10.0.0.2:6379", //       5
      "      - redis://10.0.0.3:6379/2", //              6
      "      - rediss://10.0.0.4:6379", //               7
      "      - redis://10.0.0.5:6379", //                8
      "      - redis://10.0.0.5", //                     9
      "      - 6379", //                                 10
    )),
    [
      'conf/gw.yaml:4:9: redis.cluster.nodes[0]: must be a redis:// or rediss:// URL, got "http://10.0.0.1:6379"',
      "conf/gw.yaml:5:9: redis.cluster.nodes[1]: must not hold credentials; give the password with password_env",
      'conf/gw.yaml:6:9: redis.cluster.nodes[2]: must be only redis://host:port (no database, path or query), got "redis://10.0.0.3:6379/2"',
      "conf/gw.yaml:8:9: redis.cluster.nodes[4]: must use the scheme of redis.cluster.nodes[3] (rediss://): TLS is for all nodes or none",
      "conf/gw.yaml:9:9: redis.cluster.nodes[5]: must use the scheme of redis.cluster.nodes[3] (rediss://): TLS is for all nodes or none",
      "conf/gw.yaml:9:9: redis.cluster.nodes[5]: duplicate node 10.0.0.5:6379 (already redis.cluster.nodes[4])",
      "conf/gw.yaml:10:9: redis.cluster.nodes[6]: must be a string, got number 6379",
    ],
  );
  assert.deepEqual(problems(yaml("redis:", "  cluster:", "    nodes: []")), [
    "conf/gw.yaml:3:12: redis.cluster.nodes: must not be empty",
  ]);
  assert.deepEqual(problems(yaml("redis:", "  cluster:", "    password_env: REDIS_PASSWORD")), [
    "conf/gw.yaml:3:5: redis.cluster.nodes: is required",
  ]);
});

Deno.test("redis.sentinel needs its Sentinels and the master name", () => {
  assert.deepEqual(
    problems(yaml(
      "redis:", //                                       1
      "  sentinel:", //                                  2
      "    sentinels: [redis://10.0.0.1, redis://10.0.0.1:26379]", // 3
      "    master: mymaster", //                         4
    )),
    [
      // A missing key is reported at its mapping's first key.
      "conf/gw.yaml:3:5: redis.sentinel.name: is required",
      "conf/gw.yaml:3:35: redis.sentinel.sentinels[1]: duplicate node 10.0.0.1:26379 (already redis.sentinel.sentinels[0])",
      'conf/gw.yaml:4:5: redis.sentinel.master: unknown key "master" (expected one of: sentinels, name, password_env, sentinel_password_env)',
    ],
  );
});

Deno.test("redis password variables must be set and not empty, reported where they are named", () => {
  assert.deepEqual(
    problems(yaml(
      "redis:", //                                       1
      "  cluster:", //                                   2
      "    nodes: [redis://10.0.0.1:6379]", //           3
      "    password_env: UNSET_PASSWORD", //             4
    )),
    ['conf/gw.yaml:4:19: redis.cluster.password_env: environment variable "UNSET_PASSWORD" is not set'],
  );
  assert.deepEqual(
    problems(yaml(
      "redis:", //                                       1
      "  sentinel:", //                                  2
      "    sentinels: [redis://10.0.0.1]", //            3
      "    name: mymaster", //                           4
      "    password_env: EMPTY", //                      5
      "    sentinel_password_env: NOT_THERE", //         6
    )),
    [
      'conf/gw.yaml:5:19: redis.sentinel.password_env: environment variable "EMPTY" is empty',
      'conf/gw.yaml:6:28: redis.sentinel.sentinel_password_env: environment variable "NOT_THERE" is not set',
    ],
  );
});
