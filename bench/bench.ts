/**
 * deno task bench: load figures for Vanguard next to the runtime's ceiling
 * (a bare Deno proxy) and peer proxies (nginx, HAProxy, Caddy), from one
 * run, scenarios interleaved round by round (A B C ... A B C ...) so that a
 * change in machine load hits all of them alike.
 *
 *   deno task bench [--seconds 5] [--rounds 3] [--connections 50] [--only NAME,...]
 *
 * Every proxy gets one core's worth of itself: nginx 1 worker (a process of
 * its own, apart from the backend), HAProxy `nbthread 1`, Caddy
 * `GOMAXPROCS=1`, the bare Deno proxy and the gateway one thread each
 * (except the "2 workers" gateway). The gateways are separate processes on
 * the flags of `deno task start`:
 *
 * - "plain": a table of plain path prefixes only (the plain route, the
 *   API key + in-memory limit route, the 100 KB route);
 * - "2 workers": the same with `server.workers: 2`;
 * - "edge": only the host + header route, so its table is conditional and
 *   "host+header / plain" includes the cost of a conditional table;
 * - "redis": the plain-prefix table with the limit kept in Redis.
 *
 * Needs wrk (apt-get install -y wrk); uses nginx as backend and reference
 * proxy, HAProxy and Caddy as peers, and redis-server for the Redis-limited
 * route, each when installed (a note says what was skipped).
 */
import { sha256Hex } from "../lib/auth/api_keys.ts";
import {
  API_KEY,
  childPids,
  cpuTicks,
  freePort,
  median,
  othersShare,
  parseArgs,
  peakRssMb,
  processTicks,
  type Result,
  spawn,
  startFlags,
  stopAll,
  TMP,
  waitForChild,
  which,
  wrk,
} from "./support.ts";

/** This run's files (configs, scripts, logs): its own, since a smoke run may run beside it. */
const DIR = `${TMP}/bench-${Deno.pid}`;

/** The host and header value of the edge route ("vanguard host+header"). */
const EDGE_HOST = "api.example.com";
const EDGE_TENANT = "acme";

/** Scenario names, as the table and the ratios print them. */
const S = {
  backend: "backend direct",
  nginx: "nginx proxy",
  haproxy: "haproxy",
  caddy: "caddy",
  bare: "bare deno proxy",
  plain: "vanguard plain",
  workers: "vanguard plain, 2 workers",
  edge: "vanguard host+header",
  memory: "vanguard auth+limit (memory)",
  redis: "vanguard auth+limit (redis)",
  bareBig: "bare deno proxy 100 KB",
  big: "vanguard 100 KB response",
} as const;

interface Scenario {
  name: string;
  url: string;
  script?: string;
  /** The processes whose CPU time per request the table shows (the one serving it, and Redis). */
  cpu?: { serving?: number; redis?: number };
}

/** A process whose peak RSS the run reports. */
interface Measured {
  name: string;
  child: Deno.ChildProcess;
}

/** One scenario's figures over all rounds. */
interface Row {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  worstP99: number;
  errors: number;
  non2xx: number;
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  if (!(await which("wrk"))) {
    console.error("wrk is not installed: apt-get install -y wrk");
    return 1;
  }
  const [haveNginx, haveHaproxy, haveCaddy, haveRedis] = await Promise.all(
    ["nginx", "haproxy", "caddy", "redis-server"].map(which),
  );
  await Deno.mkdir(DIR, { recursive: true });
  const notes: string[] = [];
  const measured: Measured[] = [];
  const starting: Promise<void>[] = [];
  /** The process listening on each port, for the CPU per request of its scenario. */
  const pidOn = new Map<number, number>();
  const serve = (name: string, child: Deno.ChildProcess, port: number) => {
    starting.push(waitForChild(child, name, port));
    pidOn.set(port, child.pid);
    return child;
  };

  const backendPort = freePort();
  if (haveNginx) {
    await Deno.writeTextFile(`${DIR}/big.bin`, "x".repeat(100 * 1024));
    await Deno.writeTextFile(
      `${DIR}/nginx-backend.conf`,
      nginxConfig(
        "backend",
        `server {
    listen 127.0.0.1:${backendPort};
    location / { return 200 "hello world"; }
    location /big/100k { alias ${DIR}/big.bin; }
  }`,
      ),
    );
    serve("nginx backend", spawn("nginx", ["-c", `${DIR}/nginx-backend.conf`]), backendPort);
  } else {
    notes.push("nginx is not installed: a Deno backend (bench/backend.ts), no nginx proxy");
    serve(
      "backend",
      spawn("deno", ["run", "--allow-net=127.0.0.1", "bench/backend.ts", String(backendPort)]),
      backendPort,
    );
  }

  const ports = {
    nginx: freePort(),
    haproxy: freePort(),
    caddy: freePort(),
    bare: freePort(),
    plain: freePort(),
    workers: freePort(),
    edge: freePort(),
    redisGateway: freePort(),
    redis: freePort(),
  };
  if (haveNginx) {
    await Deno.writeTextFile(
      `${DIR}/nginx-proxy.conf`,
      nginxConfig(
        "proxy",
        `upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${ports.nginx};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
      ),
    );
    const child = spawn("nginx", ["-c", `${DIR}/nginx-proxy.conf`]);
    measured.push({ name: "nginx proxy", child: serve("nginx proxy", child, ports.nginx) });
  }
  if (haveHaproxy) {
    await Deno.writeTextFile(
      `${DIR}/haproxy.cfg`,
      `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  # Idle backend connections are shared by all clients, like nginx's keepalive pool.
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:${ports.haproxy}
  default_backend backend
backend backend
  server backend 127.0.0.1:${backendPort}
`,
    );
    const child = spawn("haproxy", ["-db", "-f", `${DIR}/haproxy.cfg`]);
    measured.push({ name: "haproxy", child: serve("haproxy", child, ports.haproxy) });
  } else {
    notes.push("haproxy is not installed (apt-get install -y haproxy): no haproxy scenario");
  }
  if (haveCaddy) {
    await Deno.writeTextFile(
      `${DIR}/Caddyfile`,
      `{
\tadmin off
\tauto_https off
}

http://:${ports.caddy} {
\tbind 127.0.0.1
\treverse_proxy 127.0.0.1:${backendPort} {
\t\ttransport http {
\t\t\tkeepalive 60s
\t\t\tkeepalive_idle_conns_per_host 64
\t\t}
\t}
}
`,
    );
    const child = spawn("caddy", [
      "run",
      "--config",
      `${DIR}/Caddyfile`,
      "--adapter",
      "caddyfile",
    ], {
      // Caddy's data and config directories stay in bench/.tmp.
      env: { GOMAXPROCS: "1", XDG_DATA_HOME: `${DIR}/caddy`, XDG_CONFIG_HOME: `${DIR}/caddy` },
    });
    measured.push({ name: "caddy", child: serve("caddy", child, ports.caddy) });
  } else {
    notes.push("caddy is not installed (apt-get install -y caddy): no caddy scenario");
  }

  const flags = await startFlags();
  // The same flags as the gateways, so the two Deno processes differ only in what they run.
  const bare = spawn("deno", [
    "run",
    ...flags,
    "bench/bare_proxy.ts",
    String(ports.bare),
    String(backendPort),
  ]);
  measured.push({ name: "bare deno proxy", child: serve("bare deno proxy", bare, ports.bare) });

  if (haveRedis) {
    const args = ["--port", String(ports.redis), "--bind", "127.0.0.1", "--save", ""];
    serve("redis-server", spawn("redis-server", args), ports.redis);
  } else {
    notes.push("redis-server is not installed: no Redis-limited scenario");
  }

  const gateways: { id: string; name: string; port: number; yaml: string }[] = [
    {
      id: "plain",
      name: "vanguard plain (also auth+limit memory, 100 KB)",
      port: ports.plain,
      yaml: gatewayConfig({ port: ports.plain, backendPort, routes: PLAIN_ROUTES }),
    },
    {
      id: "workers",
      name: "vanguard plain, 2 workers",
      port: ports.workers,
      yaml: gatewayConfig({ port: ports.workers, backendPort, routes: PLAIN_ROUTES, workers: 2 }),
    },
    {
      id: "edge",
      name: "vanguard host+header",
      port: ports.edge,
      yaml: gatewayConfig({ port: ports.edge, backendPort, routes: EDGE_ROUTES }),
    },
    ...(haveRedis
      ? [{
        id: "redis",
        name: "vanguard auth+limit (redis)",
        port: ports.redisGateway,
        yaml: gatewayConfig({
          port: ports.redisGateway,
          backendPort,
          routes: PLAIN_ROUTES,
          redisPort: ports.redis,
        }),
      }]
      : []),
  ];
  // Redis first: the Redis gateway connects at start.
  await Promise.all(starting.splice(0));
  for (const gateway of gateways) {
    await Deno.writeTextFile(`${DIR}/gateway-${gateway.id}.yaml`, gateway.yaml);
    const child = spawn("deno", [
      "run",
      ...flags,
      "main.ts",
      "--config",
      `${DIR}/gateway-${gateway.id}.yaml`,
    ]);
    measured.push({ name: gateway.name, child: serve(gateway.name, child, gateway.port) });
  }
  await Promise.all(starting.splice(0));

  // 10,000 clients with an API key each request: a realistic spread of buckets.
  const script = `${DIR}/limited.lua`;
  await Deno.writeTextFile(
    script,
    `request = function()
  return wrk.format(nil, nil, { ["API-Key"] = "${API_KEY}", ["X-Client"] = tostring(math.random(1, 10000)) })
end
`,
  );
  // The same, plus the host and header the edge route matches on. Not wrk -H: wrk drops -H
  // headers when a script's request() passes its own header table, as this one does.
  const edgeScript = `${DIR}/edge.lua`;
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
  const edgeProblem = await checkEdgeRoute(ports.edge);
  if (edgeProblem) {
    console.error(`${S.edge}: ${edgeProblem}`);
    return 1;
  }

  const at = (port: number, path: string) => `http://127.0.0.1:${port}${path}`;
  // Every proxy scenario runs the same client script, so wrk does the same work in each.
  const scenarios: Scenario[] = [
    { name: S.backend, url: at(backendPort, "/plain"), script },
    ...(haveNginx ? [{ name: S.nginx, url: at(ports.nginx, "/plain"), script }] : []),
    ...(haveHaproxy ? [{ name: S.haproxy, url: at(ports.haproxy, "/plain"), script }] : []),
    ...(haveCaddy ? [{ name: S.caddy, url: at(ports.caddy, "/plain"), script }] : []),
    { name: S.bare, url: at(ports.bare, "/plain"), script },
    { name: S.plain, url: at(ports.plain, "/plain"), script },
    { name: S.workers, url: at(ports.workers, "/plain"), script },
    { name: S.edge, url: at(ports.edge, "/edge"), script: edgeScript },
    { name: S.memory, url: at(ports.plain, "/limited"), script },
    ...(haveRedis ? [{ name: S.redis, url: at(ports.redisGateway, "/limited"), script }] : []),
    { name: S.bareBig, url: at(ports.bare, "/big/100k") },
    { name: S.big, url: at(ports.plain, "/big/100k") },
  ];

  if (options.only.length > 0) {
    const kept = scenarios.filter((scenario) =>
      options.only.some((part) => scenario.name.includes(part))
    );
    if (kept.length === 0) {
      console.error(`--only ${options.only.join(",")}: no scenario matches`);
      return 2;
    }
    scenarios.splice(0, scenarios.length, ...kept);
  }
  for (const scenario of scenarios) {
    const serving = pidOn.get(Number(new URL(scenario.url).port));
    scenario.cpu = {
      serving,
      redis: scenario.name === S.redis ? pidOn.get(ports.redis) : undefined,
    };
  }

  const cores = navigator.hardwareConcurrency;
  console.log(
    `Machine: ${cores} cores, shared by wrk, the backend, the proxies and Redis ` +
      `(one proxy is under load at a time; the others idle).`,
  );
  console.log(
    `Backend: ${
      haveNginx ? "nginx returning a fixed body (1 worker)" : "Deno (bench/backend.ts)"
    }; ` +
      `wrk -t1 -c${options.connections} -d${options.seconds}s, ${options.rounds} interleaved ` +
      `rounds, medians shown (worst p99: the highest of the rounds).`,
  );
  for (const note of notes) console.log(`Note: ${note}.`);

  // Warm up every target (JIT, connection pools) before measuring, and stop at once if one
  // does not answer 2xx: its figures would be meaningless.
  for (const scenario of scenarios) {
    const warm = await wrk(
      scenario.url,
      { ...options, seconds: Math.min(2, options.seconds) },
      scenario.script,
    );
    if (warm.requests === 0 || warm.non2xx > 0) {
      console.error(
        `${scenario.name}: ${warm.non2xx} of ${warm.requests} responses were not 2xx/3xx ` +
          `while warming up (${scenario.url})`,
      );
      return 1;
    }
  }
  const results = new Map<string, Result[]>();
  // What processes outside this run took of the machine during each measured round.
  const others = new Map<string, number[]>();
  const pids = childPids();
  /** CPU time of the serving process (and of Redis) per request, µs, by scenario and round. */
  const cpuPerRequest = new Map<string, { serving?: number; redis?: number }[]>();
  for (let round = 0; round < options.rounds; round++) {
    for (const scenario of scenarios) {
      const watched = [scenario.cpu?.serving, scenario.cpu?.redis]
        .filter((pid): pid is number => pid !== undefined);
      const ticksBefore = await processTicks(watched);
      const before = await cpuTicks(pids);
      const start = performance.now();
      const result = await wrk(scenario.url, options, scenario.script);
      const share = othersShare(before, await cpuTicks(pids), performance.now() - start);
      const ticksAfter = await processTicks(watched);
      // Linux counts 100 clock ticks a second: a tick is 10,000 µs.
      const usPerRequest = (pid: number | undefined) =>
        pid === undefined || result.requests === 0
          ? undefined
          : ((ticksAfter.get(pid) ?? 0) - (ticksBefore.get(pid) ?? 0)) * 10_000 / result.requests;
      results.set(scenario.name, [...(results.get(scenario.name) ?? []), result]);
      others.set(scenario.name, [...(others.get(scenario.name) ?? []), share]);
      cpuPerRequest.set(scenario.name, [
        ...(cpuPerRequest.get(scenario.name) ?? []),
        { serving: usPerRequest(scenario.cpu?.serving), redis: usPerRequest(scenario.cpu?.redis) },
      ]);
    }
  }

  const summary = new Map<string, Row>();
  console.log(
    "\n| scenario | req/s | p50 ms | p99 ms | worst p99 ms | CPU µs/req | errors | others' CPU | req/s by round |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [name, runs] of results) {
    const row: Row = {
      requests: runs.reduce((n, r) => n + r.requests, 0),
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      worstP99: Math.max(...runs.map((r) => r.p99)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
      non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    };
    summary.set(name, row);
    const othersWorst = percent(Math.max(...others.get(name)!));
    const byRound = runs.map((r) => Math.round(r.rps)).join(", ");
    const cpu = medianOf(cpuPerRequest.get(name)!.map((c) => c.serving));
    console.log(
      `| ${name} | ${Math.round(row.rps)} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ` +
        `${row.worstP99.toFixed(2)} | ${cpu === undefined ? "n/a" : Math.round(cpu)} | ` +
        `${row.errors} | ${othersWorst} | ${byRound} |`,
    );
  }
  console.log(
    "\nCPU µs/req: user + system time of the process serving the scenario (for a Vanguard " +
      "gateway with workers, all its threads) per request, median of the rounds.",
  );
  const redisCpu = medianOf((cpuPerRequest.get(S.redis) ?? []).map((c) => c.redis));
  if (redisCpu !== undefined) {
    console.log(
      `redis-server CPU per request of ${S.redis}: ${Math.round(redisCpu)} µs ` +
        `(on the same ${navigator.hardwareConcurrency} cores as the gateway).`,
    );
  }
  const shares = [...others.values()].flat();
  const worstShare = Math.max(...shares);
  console.log(
    `\nOthers' CPU: the share of the ${cores} cores used by processes outside this run during ` +
      `a measured round (the highest round shown): ${
        percent(shares.reduce((a, b) => a + b, 0) / shares.length)
      } on average, at most ${percent(worstShare)}.`,
  );
  if (worstShare > 0.1) {
    console.log(
      "!!! Another process used more than 10% of the machine during a measured round: " +
        "these figures are disturbed; run again on a quiet machine.",
    );
  }

  console.log(`\nPeak RSS at ${options.connections} connections (VmHWM over the whole run):`);
  for (const { name, child } of measured) {
    console.log(`peak RSS, ${name}: ${await peakRssMb(child.pid)} MB`);
  }

  // A figure from 404s (or from nothing) would be meaningless: no ratio uses it, and the run fails.
  const invalid = new Set<string>();
  for (const [name, row] of summary) {
    if (row.non2xx > 0 || row.requests === 0) {
      console.error(
        `\n!!! ${name}: ${row.non2xx} of ${row.requests} responses were not 2xx/3xx; ` +
          `its figures are not valid, and no ratio uses them.`,
      );
      invalid.add(name);
    }
  }
  const figure = (name: string) => invalid.has(name) ? undefined : summary.get(name);
  const verdict = (value: number, target?: string) => {
    if (!target) return "";
    const [op, limit] = [target.slice(0, 1), Number(target.slice(1))];
    const met = op === "≥" ? value >= limit : value <= limit;
    return `, target ${op} ${limit}: ${met ? "met" : "not met"}`;
  };
  const missing = (a: string, b: string) =>
    [a, b].filter((name) => !figure(name)).map((name) =>
      invalid.has(name) ? `${name}: not valid` : `no ${name} scenario`
    ).join(", ");
  const rpsRatio = (a: string, b: string, options: { target?: string; note?: string } = {}) => {
    const x = figure(a), y = figure(b);
    const label = `${a} / ${b}`;
    if (!x || !y) return console.log(`${label}: n/a (${missing(a, b)})`);
    const value = x.rps / y.rps;
    console.log(
      `${label}: ${value.toFixed(2)} (${Math.round(x.rps)} / ${Math.round(y.rps)} req/s)` +
        verdict(value, options.target) + (options.note ? ` [${options.note}]` : ""),
    );
  };
  const p99Ratio = (a: string, b: string, options: { target?: string; note?: string } = {}) => {
    const x = figure(a), y = figure(b);
    const label = `worst p99, ${a} / ${b}`;
    if (!x || !y) return console.log(`${label}: n/a (${missing(a, b)})`);
    const value = x.worstP99 / y.worstP99;
    console.log(
      `${label}: ${value.toFixed(2)} (${x.worstP99.toFixed(2)} ms / ${y.worstP99.toFixed(2)} ms)` +
        verdict(value, options.target) + (options.note ? ` [${options.note}]` : ""),
    );
  };

  console.log("\nRatios (req/s: medians of the rounds; worst p99: the highest round of each):");
  rpsRatio(S.plain, S.bare, { target: "≥0.85" });
  rpsRatio(S.plain, S.nginx, { target: "≥0.5", note: "1 worker each" });
  p99Ratio(S.plain, S.nginx, { target: "≤3" });
  rpsRatio(S.redis, S.plain, { target: "≥0.8" });
  rpsRatio(S.memory, S.plain);
  rpsRatio(S.workers, S.plain, {
    note: `2 workers / 1 worker; wrk and the backend share the same ${cores} cores`,
  });
  rpsRatio(S.edge, S.plain, {
    note: "host+header on a gateway of its own, so it includes the cost of a conditional table",
  });
  p99Ratio(S.edge, S.plain);
  rpsRatio(S.big, S.bareBig);
  rpsRatio(S.bare, S.nginx);
  rpsRatio(S.plain, S.haproxy);
  rpsRatio(S.plain, S.caddy);
  rpsRatio(S.haproxy, S.nginx);
  rpsRatio(S.caddy, S.nginx);
  return invalid.size > 0 ? 1 : 0;
}

/** The median of the values present, or undefined when there are none. */
function medianOf(values: (number | undefined)[]): number | undefined {
  const present = values.filter((value): value is number => value !== undefined);
  return present.length === 0 ? undefined : median(present);
}

/** A share (0..1) as a whole percentage. */
function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

/** A one-process nginx config (no master: it runs as the invoking user, who can read bench/.tmp). */
function nginxConfig(name: string, servers: string): string {
  return `worker_processes 1;
daemon off;
master_process off;
pid ${DIR}/nginx-${name}.pid;
error_log ${DIR}/nginx-${name}-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${DIR}; proxy_temp_path ${DIR}; fastcgi_temp_path ${DIR};
  uwsgi_temp_path ${DIR}; scgi_temp_path ${DIR};
  ${servers}
}
`;
}

/** Plain path prefixes only: the table the plain route is measured on. */
const PLAIN_ROUTES = `  - { id: plain, path_prefix: /plain, service_name: backend }
  - { id: big, path_prefix: /big, service_name: backend }
  - id: limited
    path_prefix: /limited
    service_name: backend
    auth_required: true
    rate_limit: { requests_per_period: 100000, period_seconds: 60, client_identifier: X-Client }
`;

/** A route matched by host and header: the whole table becomes conditional. */
const EDGE_ROUTES = `  - id: edge
    hosts: [${EDGE_HOST}, "*.example.com"]
    path_prefix: /edge
    headers: [{ name: X-Tenant, value: ${EDGE_TENANT} }]
    service_name: backend
`;

/** One gateway's config: the same server, auth and service for all, its own routes. */
function gatewayConfig(
  options: {
    port: number;
    backendPort: number;
    routes: string;
    redisPort?: number;
    workers?: number;
  },
): string {
  const redis = options.redisPort === undefined
    ? ""
    // failure_mode closed: Redis trouble shows as non-2xx, which fails the run. timeout_ms 1000
    // (default 50): on a loaded 2-core machine a Redis answer can take longer than 50 ms, and a
    // fast 503 instead of a limited request would be measured as throughput.
    : `redis:\n  url: redis://127.0.0.1:${options.redisPort}\n  failure_mode: closed\n` +
      `  timeout_ms: 1000\n`;
  return `server:
  host: 127.0.0.1
  port: ${options.port}
  admin_host: 127.0.0.1
  admin_port: ${freePort()}
${options.workers === undefined ? "" : `  workers: ${options.workers}\n`}${redis}auth:
  api_key:
    keys:
      - { id: bench, sha256: "${sha256Hex(API_KEY)}" }
services:
  backend: { urls: [http://127.0.0.1:${options.backendPort}] }
routes:
${options.routes}`;
}

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
  await Deno.remove(DIR, { recursive: true }).catch(() => {});
}
