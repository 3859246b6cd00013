/**
 * deno task bench:soak — two endurance checks on a plain route:
 * 1. 5,000 concurrent keep-alive connections (wrk -c5000) without errors;
 * 2. 1,000,000 requests in 10-second slices, sampling the gateway's RSS
 *    after each: over the second half it should stay flat (within 10%).
 *
 *   deno task bench:soak [--requests 1000000]
 */
import {
  freePort,
  rssMb,
  spawn,
  startFlags,
  stopAll,
  TMP,
  waitForPort,
  which,
  wrk,
} from "./support.ts";

async function main(): Promise<number> {
  const target = Number(Deno.args[Deno.args.indexOf("--requests") + 1]) || 1_000_000;
  if (!(await which("wrk"))) {
    console.error("wrk is not installed: apt-get install -y wrk");
    return 1;
  }
  await Deno.mkdir(TMP, { recursive: true });
  const backendPort = freePort();
  if (await which("nginx")) {
    await Deno.writeTextFile(
      `${TMP}/soak-nginx.conf`,
      `worker_processes 1;
daemon off;
master_process off;
pid ${TMP}/soak-nginx.pid;
error_log ${TMP}/soak-nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${TMP}; proxy_temp_path ${TMP}; fastcgi_temp_path ${TMP};
  uwsgi_temp_path ${TMP}; scgi_temp_path ${TMP};
  server { listen 127.0.0.1:${backendPort}; location / { return 200 "hello world"; } }
}
`,
    );
    spawn("nginx", ["-c", `${TMP}/soak-nginx.conf`]);
  } else {
    spawn("deno", ["run", "--allow-net=127.0.0.1", "bench/backend.ts", String(backendPort)]);
  }
  await waitForPort(backendPort);

  const port = freePort();
  await Deno.writeTextFile(
    `${TMP}/soak.yaml`,
    `server: { host: 127.0.0.1, port: ${port}, admin_host: 127.0.0.1, admin_port: ${freePort()} }
discovery: { kubernetes: { enabled: false } }
services: { backend: { urls: [http://127.0.0.1:${backendPort}] } }
routes: [{ id: plain, path_prefix: /, service_name: backend }]
`,
  );
  const gateway = spawn("deno", [
    "run",
    ...(await startFlags()),
    "main.ts",
    "--config",
    "bench/.tmp/soak.yaml",
  ]);
  await waitForPort(port);
  const url = `http://127.0.0.1:${port}/`;
  console.log(
    `Machine: ${navigator.hardwareConcurrency} cores, shared by wrk, the backend and the gateway.`,
  );

  // A 10 s client timeout: with 5,000 connections on 2 shared cores, queueing alone
  // takes ~0.5 s per request; wrk's default 2 s would count slow answers as errors.
  const many = await wrk(url, { threads: 2, connections: 5000, seconds: 10, timeoutSeconds: 10 });
  console.log(
    `5,000 connections, 10 s: ${many.requests} requests, ${Math.round(many.rps)} req/s, ` +
      `p50 ${many.p50.toFixed(1)} ms, p99 ${
        many.p99.toFixed(1)
      } ms, errors (socket + non-2xx) ${many.errors}`,
  );

  const samples: { requests: number; rss: number }[] = [];
  let total = 0;
  while (total < target) {
    const slice = await wrk(url, { connections: 50, seconds: 10 });
    total += slice.requests;
    samples.push({ requests: total, rss: await rssMb(gateway.pid) });
    console.log(
      `  ${total} requests: RSS ${samples.at(-1)!.rss.toFixed(1)} MB (${
        Math.round(slice.rps)
      } req/s, errors ${slice.errors})`,
    );
  }
  const second = samples.slice(Math.floor(samples.length / 2));
  const values = second.map((s) => s.rss);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const spread = (Math.max(...values) - Math.min(...values)) / mean;
  console.log(
    `RSS over the second half (${second.length} samples): ${Math.min(...values).toFixed(1)}` +
      ` to ${Math.max(...values).toFixed(1)} MB, spread ${(spread * 100).toFixed(1)}% of the mean` +
      ` (${spread <= 0.1 ? "flat" : "NOT flat"})`,
  );
  return 0;
}

try {
  Deno.exitCode = await main();
} finally {
  await stopAll();
}
