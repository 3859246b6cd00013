/**
 * The commands of contract section 1, run as a user runs them: `deno task`
 * with the permission flags from deno.json, in a child process.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "../lib/auth/api_keys.ts";
import { closedPort, startRedis, startUpstream, within } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function task(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("deno", {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A long-running task whose stdout lines can be awaited. */
function spawnTask(...args: string[]) {
  return spawnProcess("deno", ["task", "-q", ...args]);
}

/** A long-running process in the project directory whose stdout lines can be awaited. */
function spawnProcess(command: string, args: string[]) {
  const child = new Deno.Command(command, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let wake = () => {};
  const decoder = new TextDecoderStream();
  const pump = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(decoder)) {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      lines.push(...parts);
      wake();
    }
  })();
  const stderr = new Response(child.stderr).text();
  return {
    child,
    lines,
    stderr,
    async waitFor(pattern: RegExp): Promise<string> {
      for (;;) {
        const found = lines.find((line) => pattern.test(line));
        if (found) return found;
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    async finish(): Promise<Deno.CommandStatus> {
      const status = await child.status;
      await pump;
      await stderr;
      return status;
    },
    /** SIGTERM, then the exit status (within 10 s). */
    terminate(): Promise<Deno.CommandStatus> {
      child.kill("SIGTERM");
      return within(10000, "the process to exit", this.finish());
    },
    /** Kills it if it still runs (for finally blocks). */
    async stop(): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await this.finish();
    },
  };
}

/** A `server:` section on loopback with these ports. */
function serverSection(port: number, adminPort: number): string {
  return `server:\n  host: 127.0.0.1\n  port: ${port}\n  admin_host: 127.0.0.1\n  admin_port: ${adminPort}`;
}

async function writeTempConfig(name: string, text: string): Promise<string> {
  await Deno.mkdir(`${ROOT}tests/.tmp`, { recursive: true });
  const path = `tests/.tmp/${name}`;
  await Deno.writeTextFile(`${ROOT}${path}`, text);
  return path;
}

Deno.test("deno task validate accepts the repository's config.yaml", async () => {
  const result = await task("validate");
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^config OK$/m);
});

Deno.test("deno task validate prints every problem as PATH:LINE:COLUMN: field: message and exits 1", async () => {
  const result = await task("validate", "tests/fixtures/broken.yaml");
  assert.equal(result.code, 1);
  const lines = result.stdout.trim().split("\n");
  assert.deepEqual(lines, [
    'tests/fixtures/broken.yaml:2:9: server.port: must be an integer, got string "8000"',
    'tests/fixtures/broken.yaml:3:3: server.prot: unknown key "prot" (expected one of: port, host, admin_port, admin_host, admin_token_env, trusted_proxies, max_body_bytes, upstream_timeout_ms, shutdown_grace_seconds, request_head_timeout_ms, idle_timeout_ms, max_connections, upstream_body_timeout_ms, retry_buffer_bytes, memory_limiter_max_bytes, tls, http_redirect_port, workers, access_log, access_log_sample); did you mean "port"?',
    'tests/fixtures/broken.yaml:6:18: routes[0].path_prefix: must start with "/", got "users"',
    "tests/fixtures/broken.yaml:8:5: routes[1]: needs exactly one of path_prefix, path_exact, path_regex",
    "tests/fixtures/broken.yaml:11:28: routes[1].rate_limit.requests_per_period: must be at least 1, got 0",
  ]);
});

Deno.test("deno task validate on a missing file says so and exits 1", async () => {
  const result = await task("validate", "tests/fixtures/does-not-exist.yaml");
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^tests\/fixtures\/does-not-exist\.yaml:1:1: /m);
});

Deno.test("deno task start refuses an invalid config with exit code 1 and starts nothing", async () => {
  const result = await task("start", "--config", "tests/fixtures/broken.yaml");
  assert.equal(result.code, 1);
  assert.match(result.stderr, /broken\.yaml:3:3: server\.prot: unknown key "prot"/);
  assert.doesNotMatch(result.stdout, /gateway_started/);
});

Deno.test("deno task start serves with a config from --config and exits 0 on SIGTERM", async () => {
  const upstream = startUpstream(() => new Response("through the gateway"));
  const port = closedPort();
  const adminPort = closedPort();
  const path = await writeTempConfig(
    "start.yaml",
    `${serverSection(port, adminPort)}
  shutdown_grace_seconds: 2
services:
  app:
    urls: [${upstream.url}]
routes:
  - id: app
    path_prefix: /app
    service_name: app
`,
  );
  const run = spawnTask("start", "--config", path);
  try {
    await within(20000, "gateway_started", run.waitFor(/"event":"gateway_started"/));
    const response = await fetch(`http://127.0.0.1:${port}/app/x`);
    assert.equal(await response.text(), "through the gateway");
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    await within(5000, "the access log line", run.waitFor(/"event":"request"/));
    assert.equal((await run.terminate()).code, 0);
    assert.ok(run.lines.some((line) => line.includes('"event":"shutdown_complete"')));
  } finally {
    await run.stop();
    await upstream.close();
  }
});

Deno.test("deno task demo routes to its two sample services and stops on Ctrl-C", async () => {
  const run = spawnTask("demo");
  try {
    await within(20000, "gateway_started", run.waitFor(/"event":"gateway_started"/));
    const users = await (await fetch("http://127.0.0.1:8000/users/42")).json();
    assert.equal(users.service, "user-service");
    assert.equal(users.path, "/users/42");
    const orders = await (await fetch("http://127.0.0.1:8000/api/orders/7?expand=items")).json();
    assert.equal(orders.service, "order-service");
    assert.equal(orders.path, "/7");
    const admin = await fetch("http://127.0.0.1:8000/admin");
    await admin.body?.cancel();
    assert.equal(admin.status, 401);
    run.child.kill("SIGINT");
    const status = await within(10000, "the demo to exit", run.finish());
    assert.equal(status.code, 0);
    assert.match(await run.stderr, /curl -i http:\/\/127\.0\.0\.1:8000\/users\/42/);
  } finally {
    await run.stop();
  }
});

Deno.test("deno task apikey prints a fresh 256-bit key and the sha256 line that matches it", async () => {
  const first = await task("apikey", "mobile-app");
  const second = await task("apikey", "mobile-app");
  assert.equal(first.code, 0);
  const key = first.stdout.match(/^ {2}(vg_[A-Za-z0-9_-]{43})$/m)?.[1];
  assert.ok(key, first.stdout);
  const digest = first.stdout.match(/sha256: "([0-9a-f]{64})"/)?.[1];
  assert.equal(digest, sha256Hex(key));
  assert.match(first.stdout, /- id: mobile-app/);
  assert.doesNotMatch(second.stdout, new RegExp(key));
  const bad = await task("apikey");
  assert.equal(bad.code, 2);
});

Deno.test("deno task start with Redis: the start flags suffice for ioredis, and limits apply", async () => {
  const redis = await startRedis();
  const upstream = startUpstream(() => new Response("ok"));
  const port = closedPort();
  const path = await writeTempConfig(
    "start_redis.yaml",
    `${serverSection(port, closedPort())}
redis:
  url: ${redis.url}
  failure_mode: closed
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: limited
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 2, period_seconds: 30 }
`,
  );
  const run = spawnTask("start", "--config", path);
  try {
    await within(20000, "redis_connected", run.waitFor(/"event":"redis_connected"/));
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/x`);
      await response.body?.cancel();
      codes.push(response.status);
    }
    assert.deepEqual(codes, [200, 200, 429]);
    assert.equal((await run.terminate()).code, 0);
  } finally {
    await run.stop();
    await upstream.close();
    await redis.stop();
  }
});

Deno.test("deno task start under its exact flags: config, Redis, Kubernetes discovery, SIGHUP reload", async () => {
  const { startFakeApiServer, service, endpointSlice } = await import(
    "./discovery/fake_apiserver.ts"
  );
  const redis = await startRedis();
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 500 });
  const podPort = closedPort();
  const pod = Deno.serve(
    { hostname: "127.0.0.2", port: podPort, onListen() {} },
    () => new Response("pod"),
  );
  fake.apply(service("default", "users", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(endpointSlice("default", "users-a", "users", [{ address: "127.0.0.2" }], [{
    name: "http",
    port: podPort,
  }]));
  const port = closedPort();
  const config = (extraRoute: string) =>
    `${serverSection(port, closedPort())}
redis:
  url: ${redis.url}
  failure_mode: closed
discovery:
  kubernetes:
    enabled: true
    kubeconfig: ${fake.kubeconfigPath}
routes:
  - id: users
    path_prefix: /users
    service_name: users
    rate_limit: { requests_per_period: 2, period_seconds: 30 }
${extraRoute}`;
  const path = await writeTempConfig("start_everything.yaml", config(""));
  const run = spawnTask("start", "--config", path);
  try {
    await within(20000, "redis_connected", run.waitFor(/"event":"redis_connected"/));
    await within(20000, "discovery_synced", run.waitFor(/"event":"discovery_synced"/));
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/users`);
      codes.push(`${response.status}:${await response.text()}`);
    }
    assert.equal(codes[0], "200:pod");
    assert.equal(codes[1], "200:pod");
    assert.match(codes[2], /^429:/);

    await writeTempConfig(
      "start_everything.yaml",
      config("  - { id: more, path_prefix: /more, service_name: users }"),
    );
    run.child.kill("SIGHUP");
    await within(10000, "the reload", run.waitFor(/"event":"config_reload_applied"/));
    const more = await fetch(`http://127.0.0.1:${port}/more`);
    assert.equal(await more.text(), "pod");

    assert.equal((await run.terminate()).code, 0);
    assert.doesNotMatch(await run.stderr, /NotCapable|Requires .* access/);
  } finally {
    await run.stop();
    await pod.shutdown();
    await fake.close();
    await redis.stop();
  }
});

/**
 * Ends a task that may still run after a failed assertion: SIGTERM first,
 * which `deno task` passes on (a SIGKILL would orphan the gateway under it
 * and leave its stdout open), then SIGKILL.
 */
async function stopTask(run: ReturnType<typeof spawnTask>): Promise<void> {
  try {
    await run.terminate();
  } catch { /* already exited, or did not stop in time */ }
  await run.stop();
}

Deno.test("deno task start with discovery on and no reachable API server exits 1 with one line naming the address and what to set", async () => {
  const apiPort = closedPort();
  const kubeconfig = await writeTempConfig(
    "kubeconfig-unreachable",
    `apiVersion: v1
kind: Config
clusters: [{ name: local, cluster: { server: "http://127.0.0.1:${apiPort}" } }]
users: [{ name: local, user: { token: t } }]
contexts: [{ name: local, context: { cluster: local, user: local } }]
current-context: local
`,
  );
  const path = await writeTempConfig(
    "start_unreachable_apiserver.yaml",
    `${serverSection(closedPort(), closedPort())}
discovery:
  kubernetes: { enabled: true, kubeconfig: ./kubeconfig-unreachable }
routes: []
`,
  );
  const started = performance.now();
  const run = spawnTask("start", "--config", path);
  try {
    // The first sync gets 10 s, retried with backoff, then the start gives up.
    const status = await within(30000, "the start to give up", run.finish());
    const elapsed = performance.now() - started;
    const stdout = run.lines.join("\n");
    assert.equal(status.code, 1, stdout);
    const absolute = `${ROOT}${kubeconfig}`;
    assert.equal(
      (await run.stderr).trim(),
      `Vanguard cannot start: Kubernetes API server http://127.0.0.1:${apiPort} (from kubeconfig ${absolute}) is unreachable: connection refused; check discovery.kubernetes.kubeconfig or set discovery.kubernetes.enabled: false`,
    );
    assert.doesNotMatch(stdout, /gateway_started/);
    assert.match(stdout, /"event":"discovery_unavailable".*"message":"connection refused"/);
    assert.ok(elapsed > 9000, `gave up after ${elapsed} ms, before the 10 s bound`);
  } finally {
    await stopTask(run);
  }
});

Deno.test("deno task start with a kubeconfig path that does not exist exits 1 at once and says so", async () => {
  const path = await writeTempConfig(
    "start_missing_kubeconfig.yaml",
    `${serverSection(closedPort(), closedPort())}
discovery:
  kubernetes: { enabled: true, kubeconfig: ./no-such-kubeconfig }
routes: []
`,
  );
  const result = await task("start", "--config", path);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.equal(
    result.stderr.trim(),
    `Vanguard cannot start: Kubernetes kubeconfig ${ROOT}tests/.tmp/no-such-kubeconfig does not exist; check discovery.kubernetes.kubeconfig or set discovery.kubernetes.enabled: false`,
  );
});

Deno.test("deno task start with Redis unreachable: redis_unavailable names host:port at start, never the password, and it serves", async () => {
  const password = "cli-s3cret-pass";
  const upstream = startUpstream(() => new Response("ok"));
  const port = closedPort();
  const adminPort = closedPort();
  const redisPort = closedPort();
  const path = await writeTempConfig(
    "start_redis_down.yaml",
    `${serverSection(port, adminPort)}
redis:
  url: redis://admin:${password}@127.0.0.1:${redisPort}
  failure_mode: open
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: limited
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 1, period_seconds: 30 }
`,
  );
  const run = spawnTask("start", "--config", path);
  try {
    const line = await within(
      20000,
      "redis_unavailable",
      run.waitFor(/"event":"redis_unavailable"/),
    );
    await within(20000, "gateway_started", run.waitFor(/"event":"gateway_started"/));
    const record = JSON.parse(line);
    assert.equal(record.level, "warn");
    assert.equal(record.address, `127.0.0.1:${redisPort}`);
    assert.equal(record.reason, "connection refused");
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/x`);
      await response.body?.cancel();
      assert.equal(response.status, 200, "failure_mode open admits");
    }
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    await ready.body?.cancel();
    assert.equal(ready.status, 200);
    assert.equal((await run.terminate()).code, 0);
    const all = [...run.lines, await run.stderr];
    assert.deepEqual(all.filter((l) => l.includes(password)), []);
    assert.deepEqual(all.filter((l) => /Stream isn't writeable/.test(l)), []);
    assert.equal(run.lines.filter((l) => l.includes('"event":"redis_unavailable"')).length, 1);
  } finally {
    await stopTask(run);
    await upstream.close();
  }
});

Deno.test("each task prints its own usage with --help, spelled as the user types it, and exits 0", async () => {
  for (const name of ["start", "validate", "demo", "apikey"]) {
    for (const flag of ["--help", "-h"]) {
      const result = await task(name, flag);
      assert.equal(result.code, 0, `${name} ${flag}: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^Usage: deno task ${name}\\b`), result.stdout);
      assert.doesNotMatch(result.stdout, /main\.ts/);
      assert.equal(result.stderr, "");
    }
  }
  const start = await task("start", "--help");
  assert.match(start.stdout, /^ {2}--config FILE {3}the config file to run/m);
  const validate = await task("validate", "--help");
  assert.match(validate.stdout, /^Usage: deno task validate \[FILE\]$/m);
});

Deno.test("the global usage lists every task", async () => {
  const result = await task("start", "help");
  assert.equal(result.code, 0);
  for (
    const line of [
      "deno task start [--config FILE]",
      "deno task validate [FILE]",
      "deno task demo",
      "deno task apikey ID",
    ]
  ) {
    assert.ok(result.stdout.includes(`\n  ${line} `), `${line} in:\n${result.stdout}`);
  }
  assert.doesNotMatch(result.stdout, /main\.ts/);
});

Deno.test("deno task start with a file name instead of --config says what to type", async () => {
  const bare = await task("start", "my.yaml");
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, "");
  assert.match(
    bare.stderr,
    /^"my\.yaml" is not a command\. To run the gateway with this config:$/m,
  );
  assert.match(bare.stderr, /^ {2}deno task start --config my\.yaml$/m);
  assert.match(bare.stderr, /^ {2}deno task validate my\.yaml$/m);
  assert.doesNotMatch(bare.stderr, /Unknown command/);

  // An existing file counts even without a config extension.
  const existing = await task("start", "--config", "config.yaml", "README.md");
  assert.equal(existing.code, 2);
  assert.match(
    existing.stderr,
    /^Unknown argument "README\.md": to run the gateway with this config, write$/m,
  );
  assert.match(existing.stderr, /^ {2}deno task start --config README\.md$/m);

  const typo = await task("start", "--conifg", "my.yaml");
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^Unknown argument "--conifg"; did you mean "--config"\?$/m);
  assert.match(typo.stderr, /deno task start --help/);

  const command = await task("start", "valdiate");
  assert.equal(command.code, 2);
  assert.match(command.stderr, /^Unknown command "valdiate"; did you mean "validate"\?$/m);
  assert.match(command.stderr, /^ {2}deno task validate \[FILE\] /m);
});

/** A directory outside the project (the tests may write only under tests/.tmp: sh makes it). */
async function outsideDirectory(): Promise<{ path: string; remove(): Promise<void> }> {
  const made = await new Deno.Command("sh", {
    args: ["-c", 'mktemp -d "${TMPDIR:-/tmp}/vanguard cli.XXXXXX"'],
    stdout: "piped",
  }).output();
  const path = new TextDecoder().decode(made.stdout).trim();
  assert.ok(made.success && path.startsWith("/") && !path.startsWith(ROOT), path);
  return {
    path,
    async remove() {
      await new Deno.Command("sh", { args: ["-c", 'rm -rf -- "$1"', "sh", path] }).output();
    },
  };
}

async function writeOutside(path: string, text: string): Promise<void> {
  const child = new Deno.Command("sh", {
    args: ["-c", 'cat > "$1"', "sh", path],
    stdin: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  assert.ok((await child.status).success);
}

/** The task's definition from deno.json with `dir` added to its --allow-read, as words. */
async function taskWithReadAccess(name: string, dir: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  const words = (tasks[name] as string).split(/\s+/);
  const at = words.findIndex((word) => word.startsWith("--allow-read="));
  assert.ok(at > 0, `deno.json's ${name} task has --allow-read=...`);
  words[at] = `${words[at]},${dir}`;
  return words;
}

/** The indented command line of a read-permission hint, as sh reads it back. */
function hintedCommand(stderr: string): string {
  const line = stderr.split("\n").find((l) => l.startsWith("  deno run "));
  assert.ok(line, stderr);
  return line.trim();
}

/** How sh splits `line` into words (the test's own check that the hint's quoting is right). */
async function shellWords(line: string): Promise<string[]> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `printf '%s\\n' ${line}`],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trimEnd().split("\n");
}

Deno.test("a config outside the project directory: validate and start print the command line that reads it, and it works", async () => {
  const dir = await outsideDirectory();
  const port = closedPort();
  const upstream = startUpstream(() => new Response("from outside"));
  try {
    const config = `${dir.path}/my config.yaml`;
    await writeOutside(
      config,
      `${serverSection(port, closedPort())}
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`,
    );

    const refused = await task("validate", config);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stdout,
      /^\/.*my config\.yaml:1:1: cannot read the config file: permission denied/m,
    );
    const validateLine = hintedCommand(refused.stderr);
    assert.deepEqual(await shellWords(validateLine), [
      ...await taskWithReadAccess("validate", dir.path),
      config,
    ]);
    const validated = await new Deno.Command("sh", {
      args: ["-c", validateLine],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(validated.stdout), "config OK\n");

    const notStarted = await task("start", "--config", config);
    assert.equal(notStarted.code, 1);
    assert.match(
      notStarted.stderr,
      /deno task start may read only files inside the project directory/,
    );
    const startLine = hintedCommand(notStarted.stderr);
    assert.deepEqual(await shellWords(startLine), [
      ...await taskWithReadAccess("start", dir.path),
      "start",
      "--config",
      config,
    ]);
    const run = spawnProcess("sh", ["-c", `exec ${startLine}`]);
    try {
      await within(20000, "gateway_started", run.waitFor(/"event":"gateway_started"/));
      const response = await fetch(`http://127.0.0.1:${port}/x`);
      assert.equal(await response.text(), "from outside");
      assert.equal((await run.terminate()).code, 0);
    } finally {
      await stopTask(run);
    }
  } finally {
    await upstream.close();
    await dir.remove();
  }
});

Deno.test("deno task validate suggests the near key and service, warns about a placeholder key, and points at YAML mistakes", async () => {
  const path = await writeTempConfig(
    "suggestions.yaml",
    `discovery: { kubernetes: { enabled: false } }
auth:
  api_key:
    keys:
      - { id: app, sha256: "${"0".repeat(64)}" }
services:
  web: { urls: [http://127.0.0.1:9] }
routes:
  - path_prefix: /
    service_name: wbe
    rate_limit: { requests_per_period: 1, period_seconds: 1, client_identifer: IP }
`,
  );
  const result = await task("validate", path);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /^tests\/\.tmp\/suggestions\.yaml:11:62: routes\[0\]\.rate_limit\.client_identifer: unknown key "client_identifer" \(expected one of: requests_per_period, period_seconds, client_identifier\); did you mean "client_identifier"\?$/m,
  );

  // Fixed, it loads, with the warnings printed as text.
  await writeTempConfig(
    "suggestions.yaml",
    (await Deno.readTextFile(`${ROOT}${path}`)).replace("client_identifer", "client_identifier"),
  );
  const fixed = await task("validate", path);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.equal(fixed.stdout, "config OK\n");
  assert.deepEqual(fixed.stderr.trim().split("\n"), [
    `${path}:5:28: auth.api_key.keys[0].sha256: warning: is a placeholder (all zeros), not the SHA-256 of a real key: no key matches it, so every request with an API key is refused (401); make a real key with: deno task apikey app`,
    `${path}:10:19: routes[0].service_name: warning: service "wbe" is not defined in services and Kubernetes discovery may be off: requests answer 503 until it has endpoints; did you mean "web"?`,
  ]);

  const indented = await writeTempConfig(
    "indentation.yaml",
    "server:\n  port: 8000\n   host: 127.0.0.1\nroutes: []\n",
  );
  const bad = await task("validate", indented);
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stdout,
    `${indented}:3:4: bad indentation: "host" is indented more than "port" on line 2, but "port" already has a value (8000); indent "host" 2 spaces like "port", or remove the value to nest it under "port"\n`,
  );
});

Deno.test("deno task start with log.format text: text log lines, and the warnings in validate's words", async () => {
  const port = closedPort();
  const path = await writeTempConfig(
    "start_text_log.yaml",
    `${serverSection(port, closedPort())}
log: { format: text }
discovery: { kubernetes: { enabled: false } }
services:
  web: { urls: [http://127.0.0.1:9] }
routes:
  - { id: typo, path_prefix: /, service_name: wbe }
`,
  );
  const validated = await task("validate", path);
  assert.equal(validated.code, 0, validated.stderr);
  const warning = validated.stderr.trim();
  assert.match(warning, /warning: service "wbe" .*; did you mean "web"\?$/);

  const run = spawnTask("start", "--config", path);
  try {
    const started = await within(20000, "gateway_started", run.waitFor(/ gateway_started /));
    assert.match(
      started,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}gateway_started proxy=127\.0\.0\.1:\d+ /,
    );
    assert.equal((await run.terminate()).code, 0);
    assert.deepEqual(run.lines.filter((line) => line.startsWith("{")), [], "no JSON lines");
    assert.ok(
      run.lines.some((line) => / INFO {2}shutdown_complete /.test(line)),
      run.lines.join("\n"),
    );
    assert.equal((await run.stderr).trim(), warning);
  } finally {
    await stopTask(run);
  }

  // The default when stdout is not a terminal is JSON, the warning a record with the same words.
  await writeTempConfig(
    "start_text_log.yaml",
    (await Deno.readTextFile(`${ROOT}${path}`)).replace(
      "log: { format: text }",
      "# log.format: default",
    ),
  );
  const json = spawnTask("start", "--config", path);
  try {
    const line = await within(20000, "config_warning", json.waitFor(/"event":"config_warning"/));
    assert.equal(JSON.parse(line).problem, warning.replace(": warning: ", ": "));
    await within(20000, "gateway_started", json.waitFor(/"event":"gateway_started"/));
    assert.equal((await json.terminate()).code, 0);
  } finally {
    await stopTask(json);
  }
});
