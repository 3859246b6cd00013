/**
 * deno task bench: load figures for Vanguard next to nginx, from one run,
 * scenarios interleaved round by round (A B C ... A B C ...) so that a
 * change in machine load hits all of them alike.
 *
 *   deno task bench [--seconds 5] [--rounds 3] [--connections 50]
 *
 * "vanguard host+header" is the cost of edge matching: a route matched by
 * host and header, next to the plain prefix route in the same gateway (whose
 * table is then conditional, so the plain route too is matched through the
 * host/condition index).
 *
 * Needs wrk (apt-get install -y wrk); uses nginx (apt-get install -y nginx)
 * as backend and as the reference proxy when installed, and redis-server for
 * the Redis-limited route when installed.
 */
import { sha256Hex } from "../lib/auth/api_keys.ts";
import {
  API_KEY,
  freePort,
  median,
  parseArgs,
  peakRssMb,
  type Result,
  spawn,
  startFlags,
  stopAll,
  TMP,
  waitForPort,
  which,
  wrk,
} from "./support.ts";

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  if (!(await which("wrk"))) {
    console.error("wrk is not installed: apt-get install -y wrk");
    return 1;
  }
  const haveNginx = await which("nginx");
  const haveRedis = await which("redis-server");
  await Deno.mkdir(TMP, { recursive: true });

  const backendPort = freePort();
  const nginxProxyPort = freePort();
  if (haveNginx) {
    await Deno.writeTextFile(`${TMP}/big.bin`, "x".repeat(100 * 1024));
    await Deno.writeTextFile(
      `${TMP}/nginx.conf`,
      `worker_processes 1;
daemon off;
master_process off;
pid ${TMP}/nginx.pid;
error_log ${TMP}/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${TMP}; proxy_temp_path ${TMP}; fastcgi_temp_path ${TMP};
  uwsgi_temp_path ${TMP}; scgi_temp_path ${TMP};
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${backendPort};
    location / { return 200 "hello world"; }
    location /big/100k { alias ${TMP}/big.bin; }
  }
  server {
    listen 127.0.0.1:${nginxProxyPort};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
    );
    // One process (no master): it runs as the invoking user, who can read
    // bench/.tmp even inside a private (0700) checkout; a worker would not.
    spawn("nginx", ["-c", `${TMP}/nginx.conf`]);
  } else {
    spawn("deno", ["run", `--allow-net=127.0.0.1`, "bench/backend.ts", String(backendPort)]);
  }
  await waitForPort(backendPort);

  let redisPort: number | undefined;
  if (haveRedis) {
    redisPort = freePort();
    spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", ""]);
    await waitForPort(redisPort);
  }

  const gatewayConfig = (port: number, redis: boolean) =>
    `server:
  host: 127.0.0.1
  port: ${port}
  admin_host: 127.0.0.1
  admin_port: ${freePort()}
${redis ? `redis:\n  url: redis://127.0.0.1:${redisPort}\n  failure_mode: closed\n` : ""}auth:
  api_key:
    keys:
      - { id: bench, sha256: "${sha256Hex(API_KEY)}" }
services:
  backend: { urls: [http://127.0.0.1:${backendPort}] }
routes:
  - { id: plain, path_prefix: /plain, service_name: backend }
  - id: edge
    hosts: [${EDGE_HOST}, "*.example.com"]
    path_prefix: /edge
    headers: [{ name: X-Tenant, value: ${EDGE_TENANT} }]
    service_name: backend
  - { id: big, path_prefix: /big, service_name: backend }
  - id: limited
    path_prefix: /limited
    service_name: backend
    auth_required: true
    rate_limit: { requests_per_period: 100000, period_seconds: 60, client_identifier: X-Client }
`;
  const flags = await startFlags();
  const memoryPort = freePort();
  const redisGatewayPort = freePort();
  await Deno.writeTextFile(`${TMP}/memory.yaml`, gatewayConfig(memoryPort, false));
  const memoryGateway = spawn("deno", [
    "run",
    ...flags,
    "main.ts",
    "--config",
    "bench/.tmp/memory.yaml",
  ]);
  let redisGateway: Deno.ChildProcess | undefined;
  if (haveRedis) {
    await Deno.writeTextFile(`${TMP}/redis.yaml`, gatewayConfig(redisGatewayPort, true));
    redisGateway = spawn("deno", ["run", ...flags, "main.ts", "--config", "bench/.tmp/redis.yaml"]);
  }
  await waitForPort(memoryPort);
  if (redisGateway) await waitForPort(redisGatewayPort);

  // 10,000 clients with an API key each request: a realistic spread of buckets.
  const script = `${TMP}/limited.lua`;
  await Deno.writeTextFile(
    script,
    `request = function()
  return wrk.format(nil, nil, { ["API-Key"] = "${API_KEY}", ["X-Client"] = tostring(math.random(1, 10000)) })
end
`,
  );

  // The same, plus the host and header the edge route matches on. Not wrk -H: wrk drops -H
  // headers when a script's request() passes its own header table, as this one does.
  const edgeScript = `${TMP}/edge.lua`;
  await Deno.writeTextFile(
    edgeScript,
    `request = function()
  return wrk.format(nil, nil, {
    ["Host"] = "${EDGE_HOST}",
    ["X-Tenant"] = "${EDGE_TENANT}",
    ["API-Key"] = "${API_KEY}",
    ["X-Client"] = tostring(math.random(1, 10000)),
  })
end
`,
  );
  // The edge route answers with its host and header, and only with them (else this measures a 404).
  const edgeProblem = await checkEdgeRoute(memoryPort);
  if (edgeProblem) {
    console.error(`vanguard host+header: ${edgeProblem}`);
    return 1;
  }

  const scenarios: { name: string; url: string; script?: string }[] = [
    { name: "backend direct", url: `http://127.0.0.1:${backendPort}/plain`, script },
    ...(haveNginx
      ? [{ name: "nginx proxy", url: `http://127.0.0.1:${nginxProxyPort}/plain` }]
      : []),
    // The same client script as the limited routes, so wrk does the same work in both.
    { name: "vanguard plain", url: `http://127.0.0.1:${memoryPort}/plain`, script },
    {
      name: "vanguard host+header",
      url: `http://127.0.0.1:${memoryPort}/edge`,
      script: edgeScript,
    },
    { name: "vanguard auth+limit (memory)", url: `http://127.0.0.1:${memoryPort}/limited`, script },
    ...(redisGateway
      ? [{
        name: "vanguard auth+limit (redis)",
        url: `http://127.0.0.1:${redisGatewayPort}/limited`,
        script,
      }]
      : []),
    { name: "vanguard 100 KB response", url: `http://127.0.0.1:${memoryPort}/big/100k` },
  ];

  console.log(
    `Machine: ${navigator.hardwareConcurrency} cores, shared by wrk, the backend, the proxies and Redis.`,
  );
  console.log(
    `Backend: ${haveNginx ? "nginx returning a fixed body" : "Deno (bench/backend.ts)"}; ` +
      `wrk -t1 -c${options.connections} -d${options.seconds}s, ${options.rounds} interleaved rounds, medians shown.`,
  );
  // Warm up every target (JIT, connection pools) before measuring.
  for (const scenario of scenarios) {
    await wrk(scenario.url, { ...options, seconds: 2 }, scenario.script);
  }
  const results = new Map<string, Result[]>();
  for (let round = 0; round < options.rounds; round++) {
    for (const scenario of scenarios) {
      const result = await wrk(scenario.url, options, scenario.script);
      results.set(scenario.name, [...(results.get(scenario.name) ?? []), result]);
    }
  }

  const summary = new Map<string, Result>();
  console.log("\n| scenario | req/s | p50 ms | p99 ms | errors |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const [name, runs] of results) {
    const row = {
      requests: runs.reduce((n, r) => n + r.requests, 0),
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
      non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    };
    summary.set(name, row);
    console.log(
      `| ${name} | ${Math.round(row.rps)} | ${row.p50.toFixed(2)} | ${
        row.p99.toFixed(2)
      } | ${row.errors} |`,
    );
  }
  console.log(
    `\nPeak RSS: gateway (memory) ${await peakRssMb(memoryGateway.pid)} MB` +
      (redisGateway ? `, gateway (redis) ${await peakRssMb(redisGateway.pid)} MB` : ""),
  );
  const ratio = (a: string, b: string) => {
    const x = summary.get(a), y = summary.get(b);
    return x && y ? (x.rps / y.rps).toFixed(2) : "n/a";
  };
  console.log(`vanguard plain / nginx proxy: ${ratio("vanguard plain", "nginx proxy")}`);
  console.log(
    `auth+limit (memory) / plain: ${ratio("vanguard auth+limit (memory)", "vanguard plain")}`,
  );
  console.log(
    `auth+limit (redis) / plain: ${ratio("vanguard auth+limit (redis)", "vanguard plain")}`,
  );
  const nginx = summary.get("nginx proxy"), plain = summary.get("vanguard plain");
  if (nginx && plain) {
    console.log(`p99 vanguard plain / nginx proxy: ${(plain.p99 / nginx.p99).toFixed(2)}`);
  }
  // A ratio against 404s (or nothing) would be meaningless: fail instead of printing one quietly.
  let failed = false;
  for (const name of ["vanguard plain", "vanguard host+header"]) {
    const row = summary.get(name);
    if (row && (row.non2xx > 0 || row.requests === 0)) {
      console.error(
        `\n!!! ${name}: ${row.non2xx} of ${row.requests} responses were not 2xx/3xx; ` +
          `its figures are not valid, and no host+header / plain ratio is given.`,
      );
      failed = true;
    }
  }
  const edge = summary.get("vanguard host+header");
  if (edge && plain && !failed) {
    console.log(
      `host+header / plain: req/s ${(edge.rps / plain.rps).toFixed(2)} ` +
        `(${Math.round(edge.rps)} / ${Math.round(plain.rps)}), ` +
        `p99 ${(edge.p99 / plain.p99).toFixed(2)} ` +
        `(${edge.p99.toFixed(2)} ms / ${plain.p99.toFixed(2)} ms)`,
    );
  }
  return failed ? 1 : 0;
}

/** The host and header value of the edge route ("vanguard host+header"). */
const EDGE_HOST = "api.example.com";
const EDGE_TENANT = "acme";

/** The status code of one GET on the gateway, with the given header lines (raw, so Host is ours). */
async function statusOf(port: number, path: string, headers: string[]): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = [`GET ${path} HTTP/1.1`, ...headers, "Connection: close", "", ""].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return Number(text.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

/**
 * Why the edge scenario would not measure the edge route, or undefined: it
 * must answer 200 with its host and header, and 404 without the header or
 * on another host (so the match really depends on both).
 */
async function checkEdgeRoute(port: number): Promise<string | undefined> {
  const cases: [string[], number][] = [
    [[`Host: ${EDGE_HOST}`, `X-Tenant: ${EDGE_TENANT}`], 200],
    [[`Host: ${EDGE_HOST}`], 404],
    [["Host: other.test", `X-Tenant: ${EDGE_TENANT}`], 404],
  ];
  for (const [headers, expected] of cases) {
    const status = await statusOf(port, "/edge", headers);
    if (status !== expected) {
      return `GET /edge with ${headers.join(", ")} answered ${status}, expected ${expected}`;
    }
  }
  return undefined;
}

try {
  Deno.exitCode = await main();
} finally {
  await stopAll();
}
