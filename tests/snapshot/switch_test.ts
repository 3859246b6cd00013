/**
 * The live state has one owner: a config reload that starts a new
 * discovery (another namespace), while endpoint events keep arriving,
 * never lets a request run on a mix of the old config and the new table.
 * Config A routes /a and stamps `x-config: A` on it (route middleware);
 * config B routes /b and stamps `x-config: B`. A request matched on one
 * table but run with the other config's middleware would reach a pod
 * without its stamp.
 */
import assert from "node:assert/strict";
import { closedPort, configFrom, eventually, startRedis, startTestGateway } from "../helpers.ts";
import { endpointSlice, service, startFakeApiServer } from "../discovery/fake_apiserver.ts";

const TUNING = { inactivityMs: 1500, backoffInitialMs: 50, backoffMaxMs: 400, coalesceMs: 5 };

function config(kubeconfig: string, name: "A" | "B"): string {
  const namespace = name === "A" ? "default" : "other";
  const prefix = name === "A" ? "/a" : "/b";
  return `
discovery:
  kubernetes: { enabled: true, namespace: ${namespace}, kubeconfig: ${kubeconfig} }
routes:
  - id: route-${name}
    path_prefix: ${prefix}
    service_name: users
    middleware:
      - { name: request_headers, options: { set: { X-Config: "${name}" } } }
`;
}

Deno.test("reloads while discovery events arrive never serve a request on a mix of old config and new table", async () => {
  const port = closedPort();
  const pods = [2, 3, 4].map((i) =>
    Deno.serve(
      { hostname: `127.0.0.${i}`, port, onListen() {} },
      (request) => new Response(request.headers.get("x-config") ?? "none"),
    )
  );
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const slice = (namespace: string, members: number[]) =>
    endpointSlice(
      namespace,
      "users-a",
      "users",
      members.map((i) => ({ address: `127.0.0.${i}` })),
      [{ name: "http", port }],
    );
  for (const namespace of ["default", "other"]) {
    fake.apply(service(namespace, "users", { ports: [{ name: "http", port: 80 }] }));
    fake.apply(slice(namespace, [2, 3]));
  }
  const gw = await startTestGateway(config(fake.kubeconfigPath, "A"), { discoveryTuning: TUNING });
  let stop = false;
  const seen = { a: new Map<string, number>(), b: new Map<string, number>() };
  try {
    await eventually(3000, "route /a", async () => (await fetch(`${gw.url}/a`)).status === 200);
    // Endpoint events all along, in both namespaces.
    const churn = (async () => {
      for (let n = 0; !stop; n++) {
        for (const namespace of ["default", "other"]) {
          fake.apply(slice(namespace, n % 2 === 0 ? [2, 3, 4] : [2, 3]));
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const load = Array.from({ length: 6 }, async () => {
      while (!stop) {
        for (const path of ["a", "b"] as const) {
          const response = await fetch(`${gw.url}/${path}`);
          const text = await response.text();
          if (response.status === 200) seen[path].set(text, (seen[path].get(text) ?? 0) + 1);
        }
      }
    });
    for (let i = 0; i < 6; i++) {
      const result = await gw.gateway.reload(
        configFrom(config(fake.kubeconfigPath, i % 2 === 0 ? "B" : "A")),
      );
      assert.deepEqual(result, { ok: true });
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    stop = true;
    await Promise.all([churn, ...load]);
    // Every answer of /a came through config A's chain, every one of /b through B's.
    assert.deepEqual([...seen.a.keys()], ["A"]);
    assert.deepEqual([...seen.b.keys()], ["B"]);
    assert.ok(
      (seen.a.get("A") ?? 0) > 20 && (seen.b.get("B") ?? 0) > 20,
      JSON.stringify([...seen.a, ...seen.b]),
    );
  } finally {
    stop = true;
    await gw.close();
    await fake.close();
    await Promise.all(pods.map((pod) => pod.shutdown()));
  }
});

Deno.test("a reload whose plugin throws after Redis and discovery were set up leaks nothing, and the old config keeps serving", async () => {
  const port = closedPort();
  const pod = Deno.serve(
    { hostname: "127.0.0.2", port, onListen() {} },
    (request) => new Response(request.headers.get("x-config") ?? "none"),
  );
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const redis = await startRedis();
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const plugin = `${Deno.cwd()}/tests/.tmp/throwing_plugin.ts`;
  await Deno.writeTextFile(
    plugin,
    `export const plugin = {
  validateOptions: () => [],
  createMiddleware() { throw new Error("this plugin cannot start"); },
};
`,
  );
  for (const namespace of ["default", "other"]) {
    fake.apply(service(namespace, "users", { ports: [{ name: "http", port: 80 }] }));
    fake.apply(
      endpointSlice(namespace, "users-a", "users", [{ address: "127.0.0.2" }], [{
        name: "http",
        port,
      }]),
    );
  }
  const gw = await startTestGateway(config(fake.kubeconfigPath, "A"), { discoveryTuning: TUNING });
  try {
    await eventually(3000, "route /a", async () => (await fetch(`${gw.url}/a`)).status === 200);
    await fake.waitForWatches(2);
    const watchesBefore = fake.openWatches;
    const clientsBefore = await redisClients(redis.port);
    const failing = `${config(fake.kubeconfigPath, "B")}
redis: { url: "${redis.url}" }
middleware:
  - module: ${plugin}
`;
    const result = await gw.gateway.reload(configFrom(failing));
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.reason, /this plugin cannot start/);
    // The old config still serves, through its own chain.
    const answer = await fetch(`${gw.url}/a`);
    assert.equal(await answer.text(), "A");
    // The new Redis client and the new watches were released.
    await eventually(
      3000,
      "the new Redis client to close",
      async () => (await redisClients(redis.port)) === clientsBefore,
    );
    await eventually(3000, "the new watches to end", () => fake.openWatches === watchesBefore);
  } finally {
    await gw.close();
    await redis.stop();
    await fake.close();
    await pod.shutdown();
    await Deno.remove(plugin).catch(() => {});
  }
});

/** How many clients redis-server has connected now (the asking one excluded). */
async function redisClients(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("CLIENT LIST\r\n"));
    let text = "";
    const buffer = new Uint8Array(65536);
    while (!/\r\n$/.test(text) || text.split("\n").length < 2) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text.split("\n").filter((line) => line.startsWith("id=")).length - 1;
  } finally {
    conn.close();
  }
}

Deno.test("plugin instances are released: at once when a later step of their build fails, and when their config retires at shutdown", async () => {
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${Deno.cwd()}/tests/.tmp`, prefix: "plugins-" });
  const counted = `${dir}/counted.ts`;
  const throwing = `${dir}/throwing.ts`;
  // Each instance keeps a timer running until released, as a real plugin might.
  await Deno.writeTextFile(
    counted,
    `const state = (globalThis as Record<string, unknown>).vanguardPluginTest as { open: number };
export const plugin = {
  createMiddleware(_options: unknown, deps: { onClose(release: () => void): void }) {
    state.open++;
    const timer = setInterval(() => {}, 1000);
    deps.onClose(() => { clearInterval(timer); state.open--; });
    return (_ctx: unknown, next: () => Promise<Response>) => next();
  },
};
`,
  );
  await Deno.writeTextFile(
    throwing,
    `export const plugin = { createMiddleware() { throw new Error("cannot start"); } };\n`,
  );
  const state = { open: 0 };
  (globalThis as Record<string, unknown>).vanguardPluginTest = state;
  const yaml = (modules: string[]) => `
services:
  app: { urls: ["http://127.0.0.1:${upstream.addr.port}"] }
middleware:
${modules.map((module) => `  - module: ${module}`).join("\n")}
routes:
  - { id: app, path_prefix: /, service_name: app }
`;
  const gw = await startTestGateway(yaml([counted]));
  try {
    assert.equal(state.open, 1);
    const failed = await gw.gateway.reload(configFrom(yaml([counted, throwing])));
    assert.equal(failed.ok, false);
    // The instance the failed build made is gone; the running one stays.
    assert.equal(state.open, 1);
    assert.equal(await (await fetch(`${gw.url}/x`)).text(), "ok");
  } finally {
    await gw.close();
    await upstream.shutdown();
    delete (globalThis as Record<string, unknown>).vanguardPluginTest;
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(state.open, 0, "the running config's instance is released at shutdown");
});
