/**
 * `server.tls` with worker threads: every worker serves HTTPS on the shared
 * port, and replaced certificate files (polled by the main thread) reach
 * every worker's new connections.
 */
import assert from "node:assert/strict";
import { eventually, startTestGateway, startUpstream } from "../helpers.ts";
import { type Pki, pki } from "../tls_pki.ts";

/** A CA `<name>-ca.crt` and a leaf `<name>.crt`/`<name>.key` it signs for 127.0.0.1; the CA's PEM. */
async function caAndLeaf(certs: Pki, name: string): Promise<string> {
  const ca = await certs.ca(name);
  await certs.leaf(name, name, ["localhost"]);
  return ca;
}

/** One GET on a new TLS connection trusting only `ca`: the status, or the error's name. */
async function getTrusting(url: string, ca: string): Promise<number | string> {
  const client = Deno.createHttpClient({ caCerts: [ca] });
  try {
    const response = await fetch(url, { client });
    await response.body?.cancel();
    return response.status;
  } catch (error) {
    return error instanceof Error ? error.name : String(error);
  } finally {
    client.close();
  }
}

Deno.test("with workers, every worker serves server.tls and takes replaced certificate files", async () => {
  const certs = await pki();
  const dir = certs.dir;
  const upstream = startUpstream(() => new Response("ok"));
  try {
    const oldCa = await caAndLeaf(certs, "old");
    const newCa = await caAndLeaf(certs, "new");
    await Deno.copyFile(`${dir}/old.crt`, `${dir}/tls.crt`);
    await Deno.copyFile(`${dir}/old.key`, `${dir}/tls.key`);
    const gw = await startTestGateway(
      `server:
  workers: 2
  tls: { cert_file: ${dir}/tls.crt, key_file: ${dir}/tls.key }
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`,
      { workerLogs: "logger", tlsPollIntervalMs: 50 },
    );
    try {
      const url = `https://127.0.0.1:${gw.gateway.proxyAddr.port}/`;
      const before = await Promise.all(Array.from({ length: 20 }, () => getTrusting(url, oldCa)));
      assert.deepEqual(before.filter((status) => status !== 200), []);
      await eventually(
        2000,
        "both workers to have served HTTPS",
        () =>
          [0, 1].every((worker) =>
            gw.logs.some((record) => record.event === "request" && record.worker === worker)
          ),
      );
      // Replaced as a Secret volume would: new files renamed into place.
      await Deno.copyFile(`${dir}/new.crt`, `${dir}/tls.crt.tmp`);
      await Deno.copyFile(`${dir}/new.key`, `${dir}/tls.key.tmp`);
      await Deno.rename(`${dir}/tls.key.tmp`, `${dir}/tls.key`);
      await Deno.rename(`${dir}/tls.crt.tmp`, `${dir}/tls.crt`);
      await eventually(
        5000,
        "every worker to load the new pair",
        () =>
          [0, 1].every((worker) =>
            gw.logs.some((record) => record.event === "tls_reloaded" && record.worker === worker)
          ),
      );
      const after = await Promise.all(Array.from({ length: 20 }, () => getTrusting(url, newCa)));
      assert.deepEqual(after.filter((status) => status !== 200), []);
    } finally {
      await gw.close();
    }
  } finally {
    await upstream.close();
    await certs.remove();
  }
});
