import assert from "node:assert/strict";
import { memoryLogger } from "../../lib/log/logger.ts";
import { startConfigReloader } from "../../lib/server/reloader.ts";
import {
  configFrom,
  eventually,
  latch,
  startTestGateway,
  startUpstream,
  within,
} from "../helpers.ts";

function twoRoutes(a: string, b: string, extra = ""): string {
  return `
services:
  a: { urls: [${a}] }
  b: { urls: [${b}] }
routes:
${extra}`;
}

async function status(url: string): Promise<number> {
  const response = await fetch(url);
  await response.body?.cancel();
  return response.status;
}

Deno.test("reload() swaps routes at once, and a request in flight finishes on the old config", async () => {
  const release = latch();
  const arrived = latch();
  const a = startUpstream(async (request) => {
    if (new URL(request.url).pathname === "/old/slow") {
      arrived.resolve();
      await release.promise;
    }
    return new Response("a");
  });
  const b = startUpstream(() => new Response("b"));
  const gw = await startTestGateway(
    twoRoutes(a.url, b.url, "  - { id: old, path_prefix: /old, service_name: a }"),
  );
  try {
    const slow = fetch(`${gw.url}/old/slow`);
    await within(5000, "the slow request", arrived.promise);
    const result = await gw.gateway.reload(
      configFrom(twoRoutes(a.url, b.url, "  - { id: new, path_prefix: /new, service_name: b }")),
    );
    assert.deepEqual(result, { ok: true });
    assert.equal(await status(`${gw.url}/old/x`), 404);
    assert.equal(await (await fetch(`${gw.url}/new/x`)).text(), "b");
    release.resolve();
    assert.equal(await (await slow).text(), "a");
    const routes = (await (await fetch(`${gw.adminUrl}/routes`)).json()).routes;
    assert.deepEqual(routes.map((r: { id: string }) => r.id), ["new"]);
    assert.equal(gw.gateway.config.routes[0].id, "new");
  } finally {
    release.resolve();
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("reload() applies auth and rate limits of the new config", async () => {
  const a = startUpstream(() => new Response("a"));
  const b = startUpstream(() => new Response("b"));
  const gw = await startTestGateway(
    twoRoutes(a.url, b.url, "  - { id: r, path_prefix: /, service_name: a }"),
  );
  try {
    assert.equal(await status(`${gw.url}/x`), 200);
    await gw.gateway.reload(configFrom(twoRoutes(
      a.url,
      b.url,
      `  - id: r
    path_prefix: /
    service_name: a
    auth_required: true
  - id: limited
    path_prefix: /limited
    service_name: b
    rate_limit: { requests_per_period: 1, period_seconds: 60 }`,
    )));
    assert.equal(await status(`${gw.url}/x`), 401);
    assert.equal(await status(`${gw.url}/limited`), 200);
    assert.equal(await status(`${gw.url}/limited`), 429);
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("reload() that cannot be built keeps the running config and says why", async () => {
  const a = startUpstream(() => new Response("a"));
  const b = startUpstream(() => new Response("b"));
  const gw = await startTestGateway(
    twoRoutes(a.url, b.url, "  - { id: r, path_prefix: /, service_name: a }"),
  );
  // Looks like a PEM key to the validator; cannot be imported when the config is built.
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const keyFile = `${Deno.cwd()}/tests/.tmp/garbage_key.pem`;
  await Deno.writeTextFile(
    keyFile,
    "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n",
  );
  try {
    const broken = configFrom(`
auth:
  jwt:
    issuer: https://issuer.test
    public_key_file: ${keyFile}
${twoRoutes(a.url, b.url, "  - { id: r, path_prefix: /, service_name: b, auth_required: true }")}`);
    const result = await gw.gateway.reload(broken);
    assert.equal(result.ok, false);
    assert.equal(await (await fetch(`${gw.url}/x`)).text(), "a");
    assert.ok(gw.logs.some((r) => r.event === "config_reload_failed"));
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

async function run(command: string, args: string[]): Promise<void> {
  const { success } = await new Deno.Command(command, { args }).output();
  if (!success) throw new Error(`${command} ${args.join(" ")} failed`);
}

/** A directory laid out the way kubelet mounts a ConfigMap: config.yaml -> ..data/config.yaml. */
async function configMapVolume(text: string) {
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "tests/.tmp", prefix: "configmap_" });
  let generation = 0;
  const publish = async (content: string) => {
    const version = `${dir}/..${++generation}`;
    await Deno.mkdir(version);
    await Deno.writeTextFile(`${version}/config.yaml`, content);
    // Atomic swap, as kubelet does: a new symlink renamed over ..data. (Deno.symlink
    // needs unscoped read and write permissions, so the test uses ln and mv.)
    await run("ln", ["-s", `..${generation}`, `${dir}/..data_tmp`]);
    await run("mv", ["-T", `${dir}/..data_tmp`, `${dir}/..data`]);
  };
  await publish(text);
  await run("ln", ["-s", "..data/config.yaml", `${dir}/config.yaml`]);
  return {
    path: `${dir}/config.yaml`,
    publish,
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("a ConfigMap update (symlink swap) is noticed, validated and applied; an invalid one is refused", async () => {
  const a = startUpstream(() => new Response("a"));
  const b = startUpstream(() => new Response("b"));
  const first = twoRoutes(a.url, b.url, "  - { id: r, path_prefix: /, service_name: a }");
  const volume = await configMapVolume(first);
  const gw = await startTestGateway(first);
  const logger = memoryLogger();
  const reloader = startConfigReloader({
    path: volume.path,
    gateway: gw.gateway,
    logger,
    intervalMs: 50,
  });
  try {
    await volume.publish(twoRoutes(a.url, b.url, "  - { id: r, path_prefix: /, service_name: b }"));
    await eventually(
      2000,
      "the new config",
      async () => (await (await fetch(`${gw.url}/x`)).text()) === "b",
    );
    await volume.publish("routes:\n  - { id: r, path_prefix: nope, service_name: b }\n");
    await eventually(
      2000,
      "the rejection",
      () => logger.records.some((r) => r.event === "config_reload_rejected"),
    );
    const rejected = logger.records.find((r) => r.event === "config_reload_rejected")!;
    assert.match(
      (rejected.problems as string[]).join("\n"),
      /routes\[0\]\.path_prefix: must start with "\/"/,
    );
    assert.equal(await (await fetch(`${gw.url}/x`)).text(), "b", "the running config stays");
    assert.equal(await reloader.reload("SIGHUP"), false);
  } finally {
    reloader.stop();
    await gw.close();
    await a.close();
    await b.close();
    await volume.remove();
  }
});
