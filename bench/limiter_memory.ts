/**
 * deno task bench:limiter-memory — what distinct clients cost the gateway
 * process: RSS after 100,000 requests from one client (the baseline: the
 * heap a busy gateway settles at), then after 100,000 requests from
 * 100,000 distinct clients of an in-memory-limited route. The contract
 * bounds the growth between the two by the limiter's budget (64 MiB).
 *
 *   deno task bench:limiter-memory [--clients 100000] [--budget-mb 64]
 */
import { freePort, rssMb, spawn, startFlags, stopAll, TMP, waitForPort } from "./support.ts";

/** Sends `count` requests over `concurrency` keep-alive connections; `client(i)` names request i's client. */
async function load(url: string, count: number, client: (i: number) => string): Promise<number> {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const response = await fetch(url, { headers: { "x-client": client(i) } });
      await response.arrayBuffer();
      if (response.status !== 200) failed++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return failed;
}

async function main(): Promise<number> {
  const at = Deno.args.indexOf("--clients");
  const clients = at === -1 ? 100_000 : Number(Deno.args[at + 1]);
  await Deno.mkdir(TMP, { recursive: true });
  const backendPort = freePort();
  spawn("deno", ["run", "--allow-net=127.0.0.1", "bench/backend.ts", String(backendPort)]);
  await waitForPort(backendPort);
  const port = freePort();
  const adminPort = freePort();
  const budget = Deno.args.includes("--budget-mb")
    ? `, memory_limiter_max_bytes: ${
      Number(Deno.args[Deno.args.indexOf("--budget-mb") + 1]) * 1048576
    }`
    : "";
  await Deno.writeTextFile(
    `${TMP}/limiter-memory.yaml`,
    `server: { port: ${port}, host: 127.0.0.1, admin_port: ${adminPort}, admin_host: 127.0.0.1${budget} }
services:
  backend: { urls: [http://127.0.0.1:${backendPort}] }
routes:
  - id: limited
    path_prefix: /
    service_name: backend
    rate_limit: { requests_per_period: 1000000, period_seconds: 3600, client_identifier: X-Client }
`,
  );
  const gateway = spawn("deno", [
    "run",
    ...(await startFlags()),
    "main.ts",
    "--config",
    "bench/.tmp/limiter-memory.yaml",
  ]);
  await waitForPort(port);
  const url = `http://127.0.0.1:${port}/x`;
  const started = await rssMb(gateway.pid);
  const sameFailed = await load(url, clients, () => "one-client");
  const baseline = await rssMb(gateway.pid);
  const distinctFailed = await load(url, clients, (i) => `client-${i}-${"x".repeat(16)}`);
  const after = await rssMb(gateway.pid);
  console.log(`RSS at start:                               ${started.toFixed(1)} MB`);
  console.log(`after ${clients} requests from one client:      ${baseline.toFixed(1)} MB`);
  console.log(`after ${clients} requests from distinct clients: ${after.toFixed(1)} MB`);
  console.log(`growth from distinct clients:               ${(after - baseline).toFixed(1)} MB`);
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const series = (name: string) => metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1];
  console.log(
    `buckets kept: ${series("vanguard_ratelimit_memory_buckets")}, evicted: ${
      series("vanguard_ratelimit_evictions_total")
    }`,
  );
  if (sameFailed + distinctFailed > 0) {
    console.log(`non-200 answers: ${sameFailed + distinctFailed}`);
  }
  await stopAll();
  return 0;
}

Deno.exit(await main());
