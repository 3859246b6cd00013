/**
 * deno task bench:heap — what a proxy allocates per request: attaches to a
 * Deno process started with `--inspect=127.0.0.1:PORT` and runs V8's
 * sampling heap profiler (one sample per 512 bytes) while wrk loads a URL,
 * twice: once counting every allocation, once only what outlived a
 * young-generation collection (what the collector had to copy or promote,
 * the part that costs). Prints bytes per request, by part of the gateway and
 * by allocating function.
 *
 *   deno task bench:heap INSPECT_PORT URL [--seconds 5] [--top 15] [--script WRK_LUA]
 *
 * Run it against the gateway and against bench/bare_proxy.ts in turn, with
 * the same backend, to see what the gateway adds.
 */
import { inspect, partOf, wrkLoad } from "./inspector.ts";

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

async function main(): Promise<number> {
  const [port, url] = Deno.args;
  if (!port || !url) {
    console.error(
      "usage: deno task bench:heap INSPECT_PORT URL [--seconds 5] [--top 15] [--script WRK_LUA]",
    );
    return 2;
  }
  const option = (name: string, fallback: number) => {
    const at = Deno.args.indexOf(name);
    return at === -1 ? fallback : Number(Deno.args[at + 1]);
  };
  const seconds = option("--seconds", 5);
  const top = option("--top", 15);
  const scriptAt = Deno.args.indexOf("--script");
  const script = scriptAt === -1 ? undefined : Deno.args[scriptAt + 1];
  const inspector = await inspect(Number(port));
  await inspector.call("HeapProfiler.enable");
  for (const survivorsOnly of [false, true]) {
    await inspector.call("HeapProfiler.startSampling", {
      samplingInterval: 512,
      includeObjectsCollectedByMinorGC: !survivorsOnly,
      includeObjectsCollectedByMajorGC: true,
    });
    const load = await wrkLoad(url, seconds, script);
    const { profile } = await inspector.call<{ profile: { head: HeapNode } }>(
      "HeapProfiler.stopSampling",
    );
    if (load.requests === 0) {
      console.error(`wrk made no requests:\n${load.text}`);
      inspector.close();
      return 1;
    }
    const byPart = new Map<string, number>();
    const byFunction = new Map<string, number>();
    let total = 0;
    // A builtin (no URL: Array push, Promise, slice...) is charged to the function that called it.
    const walk = (node: HeapNode, caller: HeapNode | undefined) => {
      const frame = node.callFrame.url === "" && caller !== undefined
        ? caller.callFrame
        : node.callFrame;
      const name = `${frame.functionName || "(anonymous)"} ${
        frame.url.replace(/^.*?\/(lib|bench)\//, "$1/")
      }:${frame.lineNumber + 1}`;
      const part = frame.url.startsWith("file:")
        ? partOf(frame.url)
        : frame.url.startsWith("ext:")
        ? "the runtime's JavaScript"
        : "V8 itself";
      total += node.selfSize;
      byPart.set(part, (byPart.get(part) ?? 0) + node.selfSize);
      byFunction.set(name, (byFunction.get(name) ?? 0) + node.selfSize);
      const next = node.callFrame.url === "" ? caller : node;
      for (const child of node.children) walk(child, next);
    };
    walk(profile.head, undefined);
    const perRequest = (bytes: number) => Math.round(bytes / load.requests).toString().padStart(7);
    console.log(
      `${url}: ${load.requests} requests in ${seconds} s; ` +
        (survivorsOnly
          ? `outlived a young-generation collection: ${perRequest(total).trim()} bytes per request`
          : `allocated: ${perRequest(total).trim()} bytes per request`),
    );
    console.log("  by part (bytes per request):");
    for (const [name, bytes] of [...byPart].sort((a, b) => b[1] - a[1])) {
      if (bytes / load.requests >= 0.5) console.log(`  ${perRequest(bytes)}  ${name}`);
    }
    console.log("  by allocating function (bytes per request):");
    for (const [name, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${perRequest(bytes)}  ${name}`);
    }
  }
  inspector.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
