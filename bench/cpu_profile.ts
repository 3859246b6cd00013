/**
 * deno task bench:profile — where a proxy's CPU goes per request: attaches
 * to a Deno process started with `--inspect=127.0.0.1:PORT`, samples its
 * CPU (V8's profiler, every 100 µs) while wrk loads a URL, and prints the
 * busy microseconds per request by category (the project's own code,
 * Deno's JavaScript, ops, socket writes, GC), by part of the gateway (each
 * part's code with the runtime work it called) and the costliest functions.
 *
 *   deno task bench:profile INSPECT_PORT URL [--seconds 5] [--top 30] [--script WRK_LUA]
 *
 * Run it against the gateway and against bench/bare_proxy.ts in turn, with
 * the same backend, to see what the gateway adds.
 */

import { inspect, partOf, wrkLoad } from "./inspector.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

async function main(): Promise<number> {
  const [port, url] = Deno.args;
  if (!port || !url) {
    console.error(
      "usage: deno task bench:profile INSPECT_PORT URL [--seconds 5] [--top 30] [--script WRK_LUA]",
    );
    return 2;
  }
  const option = (name: string, fallback: number) => {
    const at = Deno.args.indexOf(name);
    return at === -1 ? fallback : Number(Deno.args[at + 1]);
  };
  const seconds = option("--seconds", 5);
  // A wrk Lua script (`wrk -s`), for requests that need headers (an API key, a client id).
  const scriptAt = Deno.args.indexOf("--script");
  const script = scriptAt === -1 ? undefined : Deno.args[scriptAt + 1];
  const top = option("--top", 30);
  const { call, close } = await inspect(Number(port));
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 100 });
  await call("Profiler.start");
  const load = await wrkLoad(url, seconds, script);
  const { profile } = await call<
    { profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } }
  >("Profiler.stop");
  close();
  const requests = load.requests;
  if (requests === 0) {
    console.error(`wrk made no requests:\n${load.text}`);
    return 1;
  }

  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const micros = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    micros.set(id, (micros.get(id) ?? 0) + profile.timeDeltas[i]);
  });
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of micros) {
    const { functionName: name, url: source, lineNumber } = nodes.get(id)!.callFrame;
    const category = name === "(idle)"
      ? "idle"
      : name === "(garbage collector)"
      ? "gc"
      : name === "(program)"
      ? "program"
      : name === "op_write"
      ? "socket writes (op_write)"
      : name.startsWith("op_")
      ? "other ops"
      : source.startsWith("ext:")
      ? "Deno's JavaScript"
      : source.startsWith("file:")
      ? "own code"
      : "other";
    categories.set(category, (categories.get(category) ?? 0) + us);
    if (category === "own code") {
      const key = `${name || "(anonymous)"} ${source.replace(/^.*?\/(lib|bench)\//, "$1/")}:${
        lineNumber + 1
      }`;
      functions.set(key, (functions.get(key) ?? 0) + us);
    }
  }
  // Deno's JavaScript and ops charged to the nearest own-code caller: what each of our
  // functions costs with the runtime work it asks for (Headers, Response, writes...).
  const withCallees = new Map<string, number>();
  for (const [id, us] of micros) {
    const own = nodes.get(id)!.callFrame;
    if (!own.url.startsWith("ext:") && !own.functionName.startsWith("op_")) continue;
    let at = parents.get(id);
    while (at !== undefined && !nodes.get(at)!.callFrame.url.startsWith("file:")) {
      at = parents.get(at);
    }
    if (at === undefined) continue;
    const { functionName: name, url: source, lineNumber } = nodes.get(at)!.callFrame;
    const key = `${name || "(anonymous)"} ${source.replace(/^.*?\/(lib|bench)\//, "$1/")}:${
      lineNumber + 1
    }`;
    withCallees.set(key, (withCallees.get(key) ?? 0) + us);
  }
  // Every sample charged to a part of the gateway: its own code's part, or for the runtime's
  // JavaScript and ops, the part of the nearest own-code caller.
  const parts = new Map<string, number>();
  for (const [id, us] of micros) {
    const frame = nodes.get(id)!.callFrame;
    let part: string | undefined;
    if (frame.url.startsWith("file:")) part = partOf(frame.url);
    else if (frame.url.startsWith("ext:") || frame.functionName.startsWith("op_")) {
      let at = parents.get(id);
      while (at !== undefined && !nodes.get(at)!.callFrame.url.startsWith("file:")) {
        at = parents.get(at);
      }
      part = at === undefined
        ? "the runtime, called by no own code (the HTTP server, the event loop)"
        : partOf(nodes.get(at)!.callFrame.url);
    }
    if (part === undefined) continue; // idle, GC, program: printed as categories above
    parts.set(part, (parts.get(part) ?? 0) + us);
  }
  const perRequest = (us: number) => (us / requests).toFixed(2).padStart(7);
  const busy = [...categories].filter(([name]) => name !== "idle")
    .reduce((sum, [, us]) => sum + us, 0);
  console.log(`${url}: ${requests} requests in ${seconds} s`);
  console.log(`busy CPU per request: ${perRequest(busy)} µs`);
  // What the tail is made of: the process's pauses, from runs of consecutive samples.
  const pauses = stretches(
    profile,
    (id) => nodes.get(id)!.callFrame.functionName === "(garbage collector)",
  );
  const busyRuns = stretches(profile, (id) => nodes.get(id)!.callFrame.functionName !== "(idle)");
  console.log(
    `GC pauses (runs of GC samples): ${pauses.length}, median ${ms(median(pauses))}, ` +
      `99th percentile ${ms(percentile(pauses, 0.99))}, longest ${ms(Math.max(0, ...pauses))}; ` +
      `stretches without an idle moment: 99th percentile ${ms(percentile(busyRuns, 0.99))}, ` +
      `longest ${ms(Math.max(0, ...busyRuns))}`,
  );
  for (const [name, us] of [...categories].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${perRequest(us)} µs  ${name}`);
  }
  console.log(`costliest functions of the process's own code (µs per request):`);
  for (const [name, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${perRequest(us)}  ${name}`);
  }
  console.log(
    `by part of the gateway, with the runtime's JavaScript and ops each part called (µs per request):`,
  );
  for (const [name, us] of [...parts].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${perRequest(us)}  ${name}`);
  }
  console.log(
    `Deno's JavaScript and ops by the own-code function that called them (µs per request):`,
  );
  for (const [name, us] of [...withCallees].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${perRequest(us)}  ${name}`);
  }
  return 0;
}

/** The lengths (µs) of the runs of consecutive samples for which `inRun` holds. */
function stretches(
  profile: { samples: number[]; timeDeltas: number[] },
  inRun: (id: number) => boolean,
): number[] {
  const runs: number[] = [];
  let current = 0;
  profile.samples.forEach((id, i) => {
    // A sample's delta is the time since the one before: it belongs to this sample's state.
    if (inRun(id)) current += profile.timeDeltas[i];
    else if (current > 0) {
      runs.push(current);
      current = 0;
    }
  });
  if (current > 0) runs.push(current);
  return runs;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function median(values: number[]): number {
  return percentile(values, 0.5);
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(2)} ms`;
}

if (import.meta.main) Deno.exit(await main());
