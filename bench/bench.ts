/**
 * deno task bench: load figures for Vanguard next to nginx, from one run,
 * scenarios interleaved round by round (A B C ... A B C ...) so that a
 * change in machine load hits all of them alike.
 *
 *   deno task bench [--seconds 5] [--rounds 3] [--connections 50]
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

  const scenarios: { name: string; url: string; script?: string }[] = [
    { name: "backend direct", url: `http://127.0.0.1:${backendPort}/plain`, script },
    ...(haveNginx
      ? [{ name: "nginx proxy", url: `http://127.0.0.1:${nginxProxyPort}/plain` }]
      : []),
    // The same client script as the limited routes, so wrk does the same work in both.
    { name: "vanguard plain", url: `http://127.0.0.1:${memoryPort}/plain`, script },
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
  return 0;
}

try {
  Deno.exitCode = await main();
} finally {
  await stopAll();
}
