/**
 * A smoke run of `deno task bench` (1-second rounds): the benchmark keeps
 * working as the code changes. Load figures come from full runs, not this.
 * Skipped, with the reason, where wrk is not installed; the peers (nginx,
 * HAProxy, Caddy, Redis) are checked only where they are installed.
 *
 * And the bench's bare Deno proxy (the runtime's ceiling it compares the
 * gateway with) passes bodies through intact, whatever their framing.
 */
import assert from "node:assert/strict";
import { freePort, waitForPort } from "../bench/support.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function installed(command: string): Promise<boolean> {
  const output = await new Deno.Command("sh", {
    args: ["-c", `command -v ${command}`],
    stdout: "null",
  }).output();
  return output.success;
}

const haveWrk = await installed("wrk");

Deno.test({
  name: haveWrk
    ? "deno task bench runs every scenario without errors (smoke run)"
    : "deno task bench runs every scenario without errors (skipped: wrk is not installed)",
  ignore: !haveWrk,
  async fn() {
    const output = await new Deno.Command("deno", {
      args: ["task", "-q", "bench", "--seconds", "1", "--rounds", "1"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, text + new TextDecoder().decode(output.stderr));
    const optional: [string, string][] = [
      ["nginx proxy", "nginx"],
      ["haproxy", "haproxy"],
      ["caddy", "caddy"],
      ["vanguard auth+limit (redis)", "redis-server"],
    ];
    const scenarios = [
      "backend direct",
      "bare deno proxy",
      "vanguard plain",
      "vanguard plain, 2 workers",
      "vanguard host+header",
      "vanguard auth+limit (memory)",
      "bare deno proxy 100 KB",
      "vanguard 100 KB response",
    ];
    for (const [scenario, command] of optional) {
      if (await installed(command)) scenarios.push(scenario);
    }
    const header = text.split("\n").find((line) => line.startsWith("| scenario |"));
    assert.ok(header, `no table:\n${text}`);
    const column = (name: string) => header.split("|").map((cell) => cell.trim()).indexOf(name);
    for (const scenario of scenarios) {
      const row = text.split("\n").find((line) => line.startsWith(`| ${scenario} |`));
      assert.ok(row, `no row for ${scenario}:\n${text}`);
      const cells = row.split("|").map((cell) => cell.trim());
      assert.ok(Number(cells[column("req/s")]) > 0, `${scenario}: no requests`);
      assert.equal(cells[column("errors")], "0", `${scenario}: errors`);
      // The serving process's CPU time per request: a 1-second run may round to 0 ticks, not less.
      assert.ok(Number(cells[column("CPU µs/req")]) >= 0, `${scenario}: no CPU figure`);
    }
    for (
      const line of [
        /^vanguard plain \/ bare deno proxy: \d+\.\d\d \(\d+ \/ \d+ req\/s\)/m,
        /^vanguard plain, 2 workers \/ vanguard plain: \d+\.\d\d .*share the same \d+ cores/m,
        /^vanguard host\+header \/ vanguard plain: \d+\.\d\d/m,
        /^vanguard auth\+limit \(memory\) \/ vanguard plain: \d+\.\d\d/m,
        /^peak RSS, vanguard plain \(.*\): \d+ MB$/m,
        /^peak RSS, vanguard plain, 2 workers: \d+ MB$/m,
        /^peak RSS, vanguard host\+header: \d+ MB$/m,
        /^peak RSS, bare deno proxy: \d+ MB$/m,
      ]
    ) {
      assert.match(text, line);
    }
  },
});

Deno.test({
  name: haveWrk
    ? "deno task bench:profile and bench:heap attach to a process and print its figures per request"
    : "deno task bench:profile and bench:heap print per-request figures (skipped: wrk is not installed)",
  ignore: !haveWrk,
  async fn() {
    const backend = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("ok"),
    );
    const inspectPort = freePort();
    const { port: proxyPort, proxy } = await startBareProxy(backend.addr.port, [
      `--inspect=127.0.0.1:${inspectPort}`,
    ]);
    try {
      const run = async (task: string) => {
        const output = await new Deno.Command("deno", {
          args: [
            "task",
            "-q",
            task,
            String(inspectPort),
            `http://127.0.0.1:${proxyPort}/`,
            "--seconds",
            "1",
          ],
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(output.stdout);
        assert.ok(output.success, text + new TextDecoder().decode(output.stderr));
        return text;
      };
      const cpu = await run("bench:profile");
      assert.match(cpu, /^busy CPU per request: +\d+\.\d\d µs$/m);
      assert.match(cpu, /^GC pauses \(runs of GC samples\): \d+/m);
      assert.match(cpu, /^by part of the gateway/m);
      assert.match(cpu, /the bench's own program \(bench\/\)/);
      const heap = await run("bench:heap");
      const allocated = Number(heap.match(/allocated: (\d+) bytes per request/)?.[1]);
      const survived = Number(heap.match(/collection: (\d+) bytes per request/)?.[1]);
      assert.ok(allocated > 0, heap);
      assert.ok(survived >= 0 && survived < allocated, heap);
      assert.match(heap, /bench\/bare_proxy\.ts:\d+/);
    } finally {
      proxy.kill();
      await proxy.status;
      await backend.shutdown();
    }
  },
});

Deno.test("the bench's bare Deno proxy passes Content-Length, chunked and request bodies through", async () => {
  const pattern = (size: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7) % 251);
  const upstreamPorts = new Set<number>();
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request, info) => {
      upstreamPorts.add(info.remoteAddr.port);
      const [, kind, size] = new URL(request.url).pathname.split("/");
      const bytes = pattern(Number(size ?? 0));
      if (kind === "fixed") return new Response(bytes, { headers: { "x-kind": "fixed" } });
      if (kind === "chunked") {
        // Uneven pieces, so chunks straddle the proxy's reads.
        let offset = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (offset >= bytes.length) return controller.close();
            const end = Math.min(bytes.length, offset + 1 + (offset % 9973));
            controller.enqueue(bytes.slice(offset, end));
            offset = end;
          },
        });
        return new Response(body);
      }
      if (kind === "echo") return new Response(await request.arrayBuffer(), { status: 201 });
      return new Response(null, { status: 204 });
    },
  );
  const { port, proxy } = await startBareProxy(upstream.addr.port);
  try {
    const base = `http://127.0.0.1:${port}`;
    for (const kind of ["fixed", "chunked"]) {
      for (const size of [0, 11, 16 * 1024 - 40, 100 * 1024, 1024 * 1024 + 3]) {
        const response = await fetch(`${base}/${kind}/${size}`);
        const body = new Uint8Array(await response.arrayBuffer());
        assert.equal(response.status, 200, `${kind} ${size}`);
        assert.deepEqual(body, pattern(size), `${kind} ${size}: the body differs`);
      }
    }
    const fixed = await fetch(`${base}/fixed/5`);
    await fixed.body?.cancel();
    assert.equal(fixed.headers.get("x-kind"), "fixed");
    const empty = await fetch(`${base}/none`);
    assert.equal(empty.status, 204);
    await empty.body?.cancel();
    const echo = await fetch(`${base}/echo`, { method: "POST", body: pattern(70_000) });
    assert.equal(echo.status, 201);
    assert.deepEqual(new Uint8Array(await echo.arrayBuffer()), pattern(70_000));
    // One request at a time: the proxy kept one upstream connection alive for all of them.
    assert.equal(upstreamPorts.size, 1, `upstream connections: ${upstreamPorts.size}`);
  } finally {
    proxy.kill("SIGTERM");
    await proxy.status;
    await upstream.shutdown();
  }
});

/** bench/bare_proxy.ts in front of `upstreamPort` (with extra `deno run` flags), once it listens. */
async function startBareProxy(
  upstreamPort: number,
  flags: string[] = [],
): Promise<{ port: number; proxy: Deno.ChildProcess }> {
  const port = freePort();
  const proxy = new Deno.Command("deno", {
    args: [
      "run",
      ...flags,
      "--allow-net=127.0.0.1",
      "bench/bare_proxy.ts",
      String(port),
      String(upstreamPort),
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForPort(port);
  } catch (error) {
    proxy.kill();
    await proxy.status;
    throw error;
  }
  return { port, proxy };
}
