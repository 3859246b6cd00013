/**
 * deno task bench:discovery — how long a gateway takes to sync a cluster of
 * 500 Services with 5,000 endpoints from the fake API server (real
 * list/watch protocol over loopback), what it costs in memory, and how fast
 * a burst of endpoint changes reaches the routing table.
 */
import { parseConfig } from "../lib/config/load.ts";
import { memoryLogger } from "../lib/log/logger.ts";
import { startGateway } from "../lib/server/gateway.ts";
import { endpointSlice, service, startFakeApiServer } from "../tests/discovery/fake_apiserver.ts";

const SERVICES = 500;
const ENDPOINTS_PER_SERVICE = 10;

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function slices(index: number, generation: number) {
  return endpointSlice(
    "default",
    `svc-${index}-slice`,
    `svc-${index}`,
    Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, e) => ({
      address: `10.${(index >> 8) & 255}.${index & 255}.${(e + generation) % 250 + 1}`,
    })),
    [{ name: "http", port: 8080 }],
  );
}

const fake = await startFakeApiServer({ bookmarkIntervalMs: 60_000, splitWrites: false });
for (let i = 0; i < SERVICES; i++) {
  fake.apply(service("default", `svc-${i}`, {
    ports: [{ name: "http", port: 80 }],
    annotations: { "vanguard.io/path-prefix": `/svc-${i}` },
  }));
  fake.apply(slices(i, 0));
}
const parsed = parseConfig(
  `discovery:\n  kubernetes: { enabled: true, kubeconfig: ${fake.kubeconfigPath} }\nroutes: []\n`,
  { displayPath: "bench", absolutePath: `${Deno.cwd()}/bench.yaml` },
);
if (!parsed.ok) throw new Error("bench config invalid");

(globalThis as { gc?: () => void }).gc?.();
const before = Deno.memoryUsage();
const started = performance.now();
const gateway = await startGateway({
  config: parsed.config,
  logger: memoryLogger(),
  listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
  accessLog: false,
});
const ready = async () => (await fetch(`http://127.0.0.1:${gateway.adminAddr.port}/readyz`)).status;
while ((await ready()) !== 200) await new Promise((resolve) => setTimeout(resolve, 5));
const syncMs = performance.now() - started;
const table = gateway.routing.current;
const endpoints = [...new Set(table.services.values())].reduce((n, s) => n + s.ready.length, 0);
(globalThis as { gc?: () => void }).gc?.();
const after = Deno.memoryUsage();

// A burst: every Service's endpoints change once.
const burstStart = performance.now();
for (let i = 0; i < SERVICES; i++) fake.apply(slices(i, 1));
const last = `http://10.${((SERVICES - 1) >> 8) & 255}.${(SERVICES - 1) & 255}.2:8080`;
while (!gateway.routing.current.service(`svc-${SERVICES - 1}`)?.ready.some((e) => e.url === last)) {
  await new Promise((resolve) => setTimeout(resolve, 2));
}
const burstMs = performance.now() - burstStart;

console.log(`Machine: ${navigator.hardwareConcurrency} cores (shared with the fake API server).`);
console.log(`| measure | value |`);
console.log(`| --- | ---: |`);
console.log(
  `| Services / routes / ready endpoints synced | ${SERVICES} / ${table.routes.length} / ${endpoints} |`,
);
console.log(`| start to ready (LIST of both kinds, first table) | ${syncMs.toFixed(0)} ms |`);
console.log(`| heap used before → after sync | ${mb(before.heapUsed)} → ${mb(after.heapUsed)} |`);
console.log(`| RSS before → after sync | ${mb(before.rss)} → ${mb(after.rss)} |`);
console.log(
  `| ${SERVICES} slice updates (one per Service) until all in the table | ${
    burstMs.toFixed(0)
  } ms |`,
);

await gateway.shutdown();
await fake.close();
