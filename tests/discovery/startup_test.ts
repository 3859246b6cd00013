/**
 * What a new user sees when discovery is on but the cluster cannot be used:
 * the start fails with the address tried, where it came from and what to
 * set, instead of a gateway whose /readyz stays 503 for ever.
 */
import assert from "node:assert/strict";
import { closedPort, configFrom, eventually, startTestGateway } from "../helpers.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { startGateway } from "../../lib/server/gateway.ts";
import { endpointSlice, service, startFakeApiServer } from "./fake_apiserver.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Fast retries and a short start-up bound, so a failing start takes about a second. */
const TUNING = {
  backoffInitialMs: 50,
  backoffMaxMs: 200,
  coalesceMs: 10,
  firstSyncTimeoutMs: 1000,
};

function discoveryConfig(kubeconfig: string, routes = "routes: []"): string {
  return `
discovery:
  kubernetes: { enabled: true, kubeconfig: ${kubeconfig} }
${routes}
`;
}

/** A kubeconfig for `server` with a bearer token, written under tests/.tmp. */
async function writeKubeconfig(server: string, extraCluster = ""): Promise<string> {
  await Deno.mkdir(`${ROOT}tests/.tmp`, { recursive: true });
  const path = await Deno.makeTempFile({ dir: `${ROOT}tests/.tmp`, prefix: "kubeconfig-" });
  await Deno.writeTextFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: ${JSON.stringify(server)}${extraCluster}
users:
  - name: local
    user:
      token: test-token
contexts:
  - name: local
    context: { cluster: local, user: local, namespace: default }
current-context: local
`,
  );
  return path;
}

Deno.test("discovery start: an API server on a closed port fails the start with the address, the kubeconfig and what to set", async () => {
  const port = closedPort();
  const kubeconfig = await writeKubeconfig(`http://127.0.0.1:${port}`);
  try {
    const started = performance.now();
    const error = await startTestGateway(discoveryConfig(kubeconfig), { discoveryTuning: TUNING })
      .then(() => undefined, (error: Error) => error);
    assert.ok(error instanceof Error, "the start must fail");
    assert.equal(
      error.message,
      `Kubernetes API server http://127.0.0.1:${port} (from kubeconfig ${kubeconfig}) is unreachable: connection refused; check discovery.kubernetes.kubeconfig or set discovery.kubernetes.enabled: false`,
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 5000, `failed after ${elapsed} ms (bound 1000 ms)`);
  } finally {
    await Deno.remove(kubeconfig);
  }
});

Deno.test("discovery start: a kubeconfig path that does not exist says so, not that reading needs a permission", async () => {
  const missing = `${ROOT}tests/.tmp/no-such-dir/kubeconfig`;
  const error = await startTestGateway(discoveryConfig(missing), { discoveryTuning: TUNING })
    .then(() => undefined, (error: Error) => error);
  assert.ok(error instanceof Error, "the start must fail");
  assert.equal(
    error.message,
    `Kubernetes kubeconfig ${missing} does not exist; check discovery.kubernetes.kubeconfig or set discovery.kubernetes.enabled: false`,
  );
  assert.doesNotMatch(error.message, /allow-read/);
});

Deno.test("discovery start: with no kubeconfig anywhere the start says none is usable", async () => {
  const error = await startTestGateway(
    `
discovery:
  kubernetes: { enabled: true }
routes: []
`,
    {
      discoveryTuning: TUNING,
      env: (name) => name === "HOME" ? `${ROOT}tests/.tmp/no-such-home` : undefined,
    },
  ).then(() => undefined, (error: Error) => error);
  assert.ok(error instanceof Error, "the start must fail");
  assert.match(error.message, /^Kubernetes discovery is on but has no usable kubeconfig/);
  assert.match(error.message, /no-such-home\/\.kube\/config does not exist/);
  assert.match(
    error.message,
    /set discovery\.kubernetes\.kubeconfig or set discovery\.kubernetes\.enabled: false$/,
  );
});

Deno.test("discovery start: an http:// server with insecure-skip-tls-verify: true works (the flag means nothing there)", async () => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const podPort = closedPort();
  const pod = Deno.serve(
    { hostname: "127.0.0.2", port: podPort, onListen() {} },
    () => new Response("pod"),
  );
  const kubeconfig = await writeKubeconfig(fake.url, "\n      insecure-skip-tls-verify: true");
  try {
    fake.apply(service("default", "users", { ports: [{ name: "http", port: 80 }] }));
    fake.apply(
      endpointSlice("default", "users-a", "users", [{ address: "127.0.0.2" }], [{
        name: "http",
        port: podPort,
      }]),
    );
    const gw = await startTestGateway(
      discoveryConfig(
        kubeconfig,
        "routes:\n  - { id: users, path_prefix: /users, service_name: users }",
      ),
      { discoveryTuning: TUNING },
    );
    try {
      const response = await fetch(`${gw.url}/users`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "pod");
      assert.ok(fake.requests.every((r) => r.authorization === "Bearer test-token"));
    } finally {
      await gw.close();
    }
  } finally {
    await Deno.remove(kubeconfig);
    await pod.shutdown();
    await fake.close();
  }
});

Deno.test("discovery start: insecure-skip-tls-verify on an https:// server is refused with what to give instead", async () => {
  const kubeconfig = await writeKubeconfig(
    `https://127.0.0.1:${closedPort()}`,
    "\n      insecure-skip-tls-verify: true",
  );
  try {
    await assert.rejects(
      startTestGateway(discoveryConfig(kubeconfig), { discoveryTuning: TUNING }),
      /sets insecure-skip-tls-verify, which Vanguard does not support for https:.*give its CA/,
    );
  } finally {
    await Deno.remove(kubeconfig);
  }
});

Deno.test("discovery start: an API server that forbids listing names the RBAC it needs", async () => {
  const fake = await startFakeApiServer();
  try {
    fake.failNext(403, 1000);
    const error = await startTestGateway(discoveryConfig(fake.kubeconfigPath), {
      discoveryTuning: TUNING,
    }).then(() => undefined, (error: Error) => error);
    assert.ok(error instanceof Error, "the start must fail");
    assert.match(
      error.message,
      new RegExp(
        `^Kubernetes API server ${fake.url} \\(from kubeconfig .+\\) refused access: API server answered 403 to the list of (services|endpointslices) in default`,
      ),
    );
    assert.match(error.message, /get, list and watch .*k8s\/rbac\.yaml/);
  } finally {
    await fake.close();
  }
});

Deno.test("discovery start: a reload to an unusable kubeconfig is refused and the running config keeps serving", async () => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const podPort = closedPort();
  const pod = Deno.serve(
    { hostname: "127.0.0.2", port: podPort, onListen() {} },
    () => new Response("pod"),
  );
  fake.apply(service("default", "users", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(
    endpointSlice("default", "users-a", "users", [{ address: "127.0.0.2" }], [{
      name: "http",
      port: podPort,
    }]),
  );
  const routes = "routes:\n  - { id: users, path_prefix: /users, service_name: users }";
  const logger = memoryLogger();
  const gateway = await startGateway({
    config: configFrom(discoveryConfig(fake.kubeconfigPath, routes)),
    logger,
    listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
    discoveryTuning: TUNING,
  });
  try {
    const missing = `${ROOT}tests/.tmp/no-such-dir/kubeconfig`;
    const result = await gateway.reload(configFrom(discoveryConfig(missing, routes)));
    assert.equal(result.ok, false);
    assert.match(
      !result.ok ? result.reason : "",
      /kubeconfig .*no-such-dir\/kubeconfig does not exist/,
    );
    await eventually(1000, "traffic on the old config", async () => {
      const response = await fetch(`http://127.0.0.1:${gateway.proxyAddr.port}/users`);
      return (await response.text()) === "pod";
    });
    assert.ok(logger.records.some((r) => r.event === "config_reload_failed"));
  } finally {
    await gateway.shutdown();
    await pod.shutdown();
    await fake.close();
  }
});

Deno.test("discovery start: while the first sync waits, /healthz answers 200 and /readyz 503; then ready", async () => {
  const fake = await startFakeApiServer({});
  fake.apply(service("default", "users", { ports: [{ name: "http", port: 80 }] }));
  fake.failNext(503, 6);
  const adminPort = closedPort();
  const starting = startGateway({
    config: configFrom(discoveryConfig(fake.kubeconfigPath)),
    logger: memoryLogger(),
    discoveryTuning: { ...TUNING, backoffInitialMs: 150, firstSyncTimeoutMs: 5000 },
    listen: { port: 0, host: "127.0.0.1", adminPort, adminHost: "127.0.0.1" },
  });
  try {
    const admin = `http://127.0.0.1:${adminPort}`;
    await eventually(2000, "the admin listener", async () => {
      try {
        return (await (await fetch(`${admin}/healthz`)).text()) !== undefined;
      } catch {
        return false;
      }
    });
    const health = await fetch(`${admin}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const notReady = await fetch(`${admin}/readyz`);
    assert.equal(notReady.status, 503);
    await notReady.body?.cancel();
    const gateway = await starting;
    const ready = await fetch(`${admin}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    await gateway.shutdown();
  } finally {
    await starting.then((gw) => gw.shutdown(), () => {});
    await fake.close();
  }
});
