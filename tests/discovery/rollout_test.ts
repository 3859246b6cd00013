/**
 * Rolling updates under load (issue item 9), measured as a user would: real
 * "pods" on 127.0.0.x that shut down gracefully like real servers (stop
 * listening, close idle keep-alive connections, finish what is in flight),
 * a gateway that discovers them through the fake API server, and keep-alive
 * clients sending GETs and POSTs with 2 KB bodies the whole time.
 *
 * The race under test: a pod has shut down before the endpoint update that
 * says so reaches the gateway. New connections to it are refused and pooled
 * connections to it are dead; a request that meets either must go to another
 * endpoint, body included, and never surface as a 502.
 *
 * The pods that race are node:http servers. Deno.serve's shutdown() on Deno
 * 2.9 makes the body of an in-flight request unreadable, so a POST whose body
 * has not fully arrived gets a 500 from the pod itself (denoland/deno#36809),
 * which no gateway can mend; the Deno.serve pods here leave the orderly way,
 * out of rotation before they stop, or stay.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { Buffer } from "node:buffer";
import {
  closedPort,
  concat,
  eventually,
  sha256Hex,
  singleRoute,
  startRawUpstream,
  startTestGateway,
  type TestGateway,
  withGateway,
  within,
  writeAll,
} from "../helpers.ts";
import { endpointSlice, service, startFakeApiServer } from "./fake_apiserver.ts";

const TUNING = { inactivityMs: 1500, backoffInitialMs: 50, backoffMaxMs: 400, coalesceMs: 10 };
const BODY_BYTES = 2048;
/** Each pod takes this long per request, so a shutdown always finds requests in flight. */
const WORK_MS = 2;
/** How long a pod is gone while the gateway still routes to it. */
const RACE_MS = 100;
const WORKERS = 8;
const REQUEST_TIMEOUT_MS = 5000;
/** The load stops by itself by then, whatever the rollout does. */
const LOAD_LIMIT_MS = 8000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A pod's answer: who served the request and what body it received. */
interface Echo {
  pod: string;
  method: string;
  length: number;
  sha256: string;
}

/** The JSON a pod answers with (ASCII, so its length is its byte length). */
async function echo(pod: string, method: string, body: Uint8Array): Promise<string> {
  const answer: Echo = { pod, method, length: body.byteLength, sha256: await sha256Hex(body) };
  return JSON.stringify(answer);
}

/** A real HTTP server on one loopback address, shut down like a pod on SIGTERM. */
interface Pod {
  readonly name: string;
  readonly address: string;
  /** Requests answered so far. */
  readonly served: number;
  /** Stops listening, closes idle keep-alive connections, finishes in-flight requests. */
  shutdown(): Promise<void>;
}

/**
 * A pod on Deno.serve: shutdown() stops listening and closes idle keep-alive
 * connections at once, but see the module doc about in-flight bodies.
 */
function denoPod(name: string, address: string, port: number): Pod {
  let served = 0;
  const server = Deno.serve({ hostname: address, port, onListen() {} }, async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    await delay(WORK_MS);
    served++;
    return new Response(await echo(name, request.method, body), {
      headers: { "content-type": "application/json" },
    });
  });
  let stopped: Promise<void> | undefined;
  return {
    name,
    address,
    get served() {
      return served;
    },
    shutdown: () => stopped ??= server.shutdown(),
  };
}

/**
 * A pod on node:http: close() stops listening, closeIdleConnections() drops
 * the idle keep-alive connections, and a connection busy at that moment gets
 * its response (still saying `Connection: keep-alive`) and is closed after it.
 */
async function nodePod(name: string, address: string, port: number): Promise<Pod> {
  let served = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      await delay(WORK_MS);
      served++;
      const text = await echo(name, req.method ?? "", concat(chunks));
      res.writeHead(200, { "content-type": "application/json", "content-length": text.length });
      res.end(text);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve());
  });
  let stopped: Promise<void> | undefined;
  return {
    name,
    address,
    get served() {
      return served;
    },
    shutdown() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return stopped;
    },
  };
}

type Method = "GET" | "POST";

/** What the clients saw: requests sent and answered correctly, and every failure. */
class Tally {
  readonly sent: Record<Method, number> = { GET: 0, POST: 0 };
  readonly ok: Record<Method, number> = { GET: 0, POST: 0 };
  readonly failures: string[] = [];
  readonly byPod = new Map<string, number>();

  summary(): string {
    const counts = `GET ${this.ok.GET}/${this.sent.GET}, POST ${this.ok.POST}/${this.sent.POST}`;
    if (this.failures.length === 0) return counts;
    const kinds = new Map<string, number>();
    for (const failure of this.failures) kinds.set(failure, (kinds.get(failure) ?? 0) + 1);
    return `${counts}; failed: ${[...kinds].map(([kind, n]) => `${n} x ${kind}`).join(", ")}`;
  }
}

/** Sends one request through the gateway and checks the echo; records the outcome. */
async function exchange(
  options: { client: Deno.HttpClient; url: string; method: Method; tally: Tally },
): Promise<void> {
  const { client, url, method, tally } = options;
  const body = method === "POST" ? crypto.getRandomValues(new Uint8Array(BODY_BYTES)) : undefined;
  const expected = await sha256Hex(body ?? new Uint8Array());
  tally.sent[method]++;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(url, { client, method, body, signal: controller.signal });
    const text = await response.text();
    if (response.status !== 200) {
      let code = "";
      try {
        code = ` ${JSON.parse(text).error}`;
      } catch { /* not a gateway error body */ }
      tally.failures.push(`${method} ${response.status}${code}`);
      return;
    }
    const answer = JSON.parse(text) as Echo;
    if (
      answer.method !== method || answer.length !== (body?.byteLength ?? 0) ||
      answer.sha256 !== expected
    ) {
      tally.failures.push(`${method} 200 with a wrong echo`);
      return;
    }
    tally.ok[method]++;
    tally.byPod.set(answer.pod, (tally.byPod.get(answer.pod) ?? 0) + 1);
  } catch (error) {
    tally.failures.push(`${method} ${error instanceof Error ? error.name : "error"}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Keeps `WORKERS` keep-alive clients busy (alternating GET and POST) until
 * `stop` resolves or `LOAD_LIMIT_MS` passes.
 */
async function runLoad(url: string, stop: Promise<void>): Promise<Tally> {
  const tally = new Tally();
  let stopping = false;
  const deadline = performance.now() + LOAD_LIMIT_MS;
  stop.then(() => stopping = true);
  await Promise.all(Array.from({ length: WORKERS }, async (_, worker) => {
    const client = Deno.createHttpClient({});
    try {
      for (let n = worker; !stopping && performance.now() < deadline; n++) {
        await exchange({ client, url, method: n % 2 === 0 ? "GET" : "POST", tally });
      }
    } finally {
      client.close();
    }
  }));
  return tally;
}

/** Conditions of one endpoint in the EndpointSlice. */
type Conditions = { ready: boolean; serving?: boolean; terminating?: boolean };

Deno.test("rollout: a rolling update under load, with pods gone before the gateway hears of it, fails no GET and no POST", async () => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const port = closedPort();
  const pods: Pod[] = [];
  let gw: TestGateway | undefined;
  let stopLoad!: () => void;
  const stop = new Promise<void>((resolve) => stopLoad = resolve);
  let load: Promise<Tally> | undefined;
  try {
    // Old pods 127.0.0.21-23 (the first two race), new pods 127.0.0.24-26.
    const kinds = ["node", "node", "deno", "deno", "node", "deno"] as const;
    const startPod = async (i: number) => {
      const name = `web-${i < 3 ? "old" : "new"}-${i % 3}-${kinds[i]}`;
      const address = `127.0.0.${21 + i}`;
      const pod = kinds[i] === "deno"
        ? denoPod(name, address, port)
        : await nodePod(name, address, port);
      pods.push(pod);
      return pod;
    };
    const members = new Map<string, Conditions>();
    const publish = () =>
      fake.apply(endpointSlice(
        "default",
        "web-x7k2p",
        "web",
        [...members].map(([address, conditions]) => ({ address, ...conditions })),
        [{ name: "http", port }],
      ));
    const old: Pod[] = [];
    for (let i = 0; i < 3; i++) {
      old.push(await startPod(i));
      members.set(old[i].address, { ready: true, serving: true, terminating: false });
    }
    fake.apply(service("default", "web", { ports: [{ name: "http", port: 80 }] }));
    publish();
    gw = await startTestGateway(
      `
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${fake.kubeconfigPath}
routes:
  - { id: web, path_prefix: /web, service_name: web }
`,
      { discoveryTuning: TUNING },
    );
    const admin = gw.adminUrl;
    /** Waits until the gateway routes to exactly the members published as ready. */
    const seen = async () => {
      const want = [...members].filter(([, c]) => c.ready).map(([a]) => `http://${a}:${port}`)
        .sort();
      await eventually(2000, `ready endpoints ${want.join(", ")}`, async () => {
        const table = await (await fetch(`${admin}/routes`)).json();
        const web = table.routes.find((r: { id: string }) => r.id === "web");
        const ready = (web?.endpoints ?? []).filter((e: { ready: boolean }) => e.ready)
          .map((e: { url: string }) => e.url).sort();
        return JSON.stringify(ready) === JSON.stringify(want);
      });
    };
    await seen();

    load = runLoad(`${gw.url}/web/echo`, stop);
    await delay(300); // the gateway's pools fill with keep-alive connections to the old pods
    const raced: string[] = [];
    for (let i = 0; i < 3; i++) {
      const next = await startPod(3 + i);
      members.set(next.address, { ready: true, serving: true, terminating: false });
      publish();
      await seen();
      await delay(300);
      const leaving = old[i];
      if (i < 2) {
        // The race: SIGTERM reaches the pod before its endpoint update reaches the gateway.
        raced.push(leaving.name);
        const down = leaving.shutdown();
        await delay(RACE_MS);
        members.set(leaving.address, { ready: false, serving: false, terminating: true });
        publish();
        await within(3000, `${leaving.name} to finish its in-flight requests`, down);
        await seen();
      } else {
        // The orderly way (a preStop sleep): out of rotation first, then shut down.
        members.set(leaving.address, { ready: false, serving: true, terminating: true });
        publish();
        await seen();
        await delay(RACE_MS);
        await leaving.shutdown();
      }
      await delay(100);
      members.delete(leaving.address);
      publish();
      await seen();
      await delay(300);
    }
    stopLoad();
    const tally = await load;
    load = undefined;

    // Proof that the race happened: requests met a closed listener or a dead connection.
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    const met = [...metrics.matchAll(
      /^vanguard_upstream_errors_total\{(?=[^}]*service="web")(?=[^}]*kind="(refused|reset)")[^}]*\} (\d+)$/gm,
    )].reduce((sum, match) => sum + Number(match[2]), 0);
    console.log(
      `rollout (${raced.length} of 3 pods gone ${RACE_MS} ms before their update): ` +
        `${tally.summary()}; ${met} upstream refused/reset met on the way`,
    );
    for (const pod of pods) {
      assert.ok(
        (tally.byPod.get(pod.name) ?? 0) > 0,
        `${pod.name} answered no request: the rollout was not under load`,
      );
    }
    assert.ok(tally.sent.GET > 100 && tally.sent.POST > 100, tally.summary());
    assert.ok(met > 0, "no request met a pod that was gone: the race was not reproduced");
    assert.deepEqual(tally.failures, [], tally.summary());
    assert.equal(tally.ok.GET, tally.sent.GET);
    assert.equal(tally.ok.POST, tally.sent.POST);
  } finally {
    stopLoad();
    await load;
    await gw?.close();
    await fake.close();
    await Promise.all(pods.map((pod) => pod.shutdown()));
  }
});

/**
 * A keep-alive upstream that answers one request per connection, then closes
 * it after `idleMs` without having said `Connection: close` (as a server whose
 * keep-alive timeout is shorter than the gateway's does). Counts connections.
 */
function idleClosingUpstream(idleMs: number) {
  let connections = 0;
  const server = startRawUpstream(async (conn, head) => {
    connections++;
    const end = head.indexOf("\r\n\r\n");
    const method = head.slice(0, head.indexOf(" "));
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    // The body is ASCII in this test, so characters are bytes.
    const chunks = [new TextEncoder().encode(head.slice(end + 4))];
    let received = chunks[0].byteLength;
    const buffer = new Uint8Array(65536);
    while (received < length) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("request body ended early");
      chunks.push(buffer.slice(0, n));
      received += n;
    }
    const answer = await echo("single", method, concat(chunks));
    await writeAll(
      conn,
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`,
    );
    await delay(idleMs);
  });
  return {
    url: server.url,
    port: server.port,
    close: () => server.close(),
    get connections() {
      return connections;
    },
  };
}

Deno.test("rollout: an upstream that closes an idle keep-alive connection unannounced costs no request, GET or POST", async () => {
  const upstream = idleClosingUpstream(30);
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = Deno.createHttpClient({});
    const outcomes: string[] = [];
    try {
      for (const method of ["GET", "POST", "GET", "POST", "POST", "GET"] as const) {
        // Well past the upstream's idle close: the gateway's pooled connection is dead.
        await delay(150);
        const body = method === "POST" ? "x".repeat(BODY_BYTES) : undefined;
        const response = await fetch(`${gw.url}/echo`, { client, method, body });
        const text = await response.text();
        if (response.status !== 200) {
          outcomes.push(`${method} ${response.status} ${text}`);
          continue;
        }
        const answer = JSON.parse(text) as Echo;
        const bytes = new TextEncoder().encode(body ?? "");
        assert.equal(answer.method, method);
        assert.equal(answer.length, bytes.byteLength);
        assert.equal(answer.sha256, await sha256Hex(bytes));
        outcomes.push(`${method} 200`);
      }
    } finally {
      client.close();
    }
    console.log(
      `idle close: ${outcomes.filter((o) => o.endsWith(" 200")).length}/${outcomes.length} ok, ` +
        `${upstream.connections} upstream connections`,
    );
    assert.deepEqual(outcomes.filter((o) => !o.endsWith(" 200")), []);
  });
});
