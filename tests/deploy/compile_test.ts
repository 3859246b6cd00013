/**
 * deno task compile, run for real. It downloads Deno's `denort` runtime
 * from the release server; where that cannot be reached (these development
 * machines) the test is skipped, with the reason in its name.
 */
import assert from "node:assert/strict";
import { closedPort, startUpstream, within } from "../helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

const compiled = await new Deno.Command("deno", {
  args: ["task", "-q", "compile"],
  cwd: ROOT,
  stdout: "piped",
  stderr: "piped",
}).output();
const errors = new TextDecoder().decode(compiled.stderr);
const unreachable = !compiled.success &&
  /dns error|lookup address|error sending request|Connect|network/i.test(errors);
// The cause only (e.g. "dns error: failed to lookup address information"), not the URL.
const reason = errors.match(/dns error[^\n]*/)?.[0].trim() ?? "the download failed";

Deno.test({
  name: unreachable
    ? `deno task compile builds dist/vanguard (skipped: the denort runtime cannot be downloaded here: ${reason})`
    : "deno task compile builds dist/vanguard, which validates and serves",
  ignore: unreachable,
  async fn() {
    assert.ok(compiled.success, errors);
    const binary = `${ROOT}dist/vanguard`;
    const validate = await new Deno.Command(binary, {
      args: ["validate", "config.yaml"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(validate.stdout).trim(), "config OK");

    const upstream = startUpstream(() => new Response("compiled"));
    const port = closedPort();
    await Deno.mkdir(`${ROOT}tests/.tmp`, { recursive: true });
    await Deno.writeTextFile(
      `${ROOT}tests/.tmp/compiled.yaml`,
      `server: { host: 127.0.0.1, port: ${port}, admin_host: 127.0.0.1, admin_port: ${closedPort()} }
discovery: { kubernetes: { enabled: false } }
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]
`,
    );
    const child = new Deno.Command(binary, {
      args: ["--config", "tests/.tmp/compiled.yaml"],
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      let body = "";
      await within(
        10000,
        "the compiled gateway",
        (async () => {
          for (;;) {
            try {
              body = await (await fetch(`http://127.0.0.1:${port}/x`)).text();
              return;
            } catch {
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
        })(),
      );
      assert.equal(body, "compiled");
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      await upstream.close();
    }
  },
});
