/**
 * The proxy listener's bounds and the request-target checks, seen from raw
 * TCP clients: what a slowloris client, an idle keep-alive client or a
 * crafted request line gets, and what the upstream receives.
 */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/admin/metrics.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { startGateway } from "../../lib/server/gateway.ts";
import { startListener } from "../../lib/server/listener.ts";
import {
  closedPort,
  configFrom,
  eventually,
  latch,
  metricValue,
  singleRoute,
  startRawUpstream,
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestServer,
  withGateway,
  within,
  writeAll,
} from "../helpers.ts";

/** A raw TCP client that keeps reading, so a close by the gateway is seen the moment it happens. */
interface RawClient {
  /** True once the gateway closed the connection (FIN or reset). */
  readonly ended: boolean;
  /** Resolves when the connection is closed, by either side. */
  readonly closed: Promise<void>;
  write(text: string): Promise<void>;
  /** Resolves once `text` has arrived (and is still unread). */
  received(text: string): Promise<void>;
  /** The next complete response (Content-Length or chunked). */
  response(): Promise<{ status: number; head: string; body: string }>;
  close(): Promise<void>;
}

async function rawClient(gw: TestGateway): Promise<RawClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.gateway.proxyAddr.port });
  let buffered = "";
  let ended = false;
  let wake = () => {};
  const decoder = new TextDecoder();
  const closed = (async () => {
    const buffer = new Uint8Array(16384);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        buffered += decoder.decode(buffer.subarray(0, n), { stream: true });
        wake();
      }
    } catch {
      // reset by the gateway, or closed by the test
    }
    ended = true;
    wake();
  })();
  return {
    get ended() {
      return ended;
    },
    closed,
    write: (text) => writeAll(conn, text),
    async received(text) {
      while (!buffered.includes(text)) {
        if (ended) throw new Error(`closed before ${JSON.stringify(text)} arrived`);
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    async response() {
      for (;;) {
        const parsed = parseResponse(buffered);
        if (parsed !== undefined) {
          buffered = buffered.slice(parsed.length);
          return parsed;
        }
        if (ended) {
          throw new Error(`closed before a complete response: ${JSON.stringify(buffered)}`);
        }
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    async close() {
      try {
        conn.close();
      } catch { /* closed by the gateway */ }
      await closed;
    },
  };
}

function parseResponse(
  text: string,
): { status: number; head: string; body: string; length: number } | undefined {
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd === -1) return undefined;
  const head = text.slice(0, headEnd);
  const status = Number(head.split(" ")[1]);
  const lengthMatch = /\r\ncontent-length: *(\d+)/i.exec(head);
  let offset = headEnd + 4;
  if (lengthMatch) {
    const end = offset + Number(lengthMatch[1]);
    if (text.length < end) return undefined;
    return { status, head, body: text.slice(offset, end), length: end };
  }
  if (!/\r\ntransfer-encoding: *chunked/i.test(head)) {
    return { status, head, body: "", length: offset };
  }
  let body = "";
  for (;;) {
    const lineEnd = text.indexOf("\r\n", offset);
    if (lineEnd === -1) return undefined;
    const size = parseInt(text.slice(offset, lineEnd), 16);
    if (size === 0) {
      if (text.length < lineEnd + 4) return undefined;
      return { status, head, body, length: lineEnd + 4 };
    }
    if (text.length < lineEnd + 2 + size + 2) return undefined;
    body += text.slice(lineEnd + 2, lineEnd + 2 + size);
    offset = lineEnd + 2 + size + 2;
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function metric(gw: TestGateway, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return metricValue(text, series);
}

/** The series of `vanguard_client_connections_closed_total` for one reason. */
function closedBy(reason: string): string {
  return `vanguard_client_connections_closed_total{reason="${reason}"}`;
}

/** An upstream with a fast answer, one held until `release()`, and a body that pauses midway. */
function pacedUpstream(): TestServer & { release(): void; slowArrived: Promise<void> } {
  const released = latch();
  const arrived = latch();
  const server = startUpstream(async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/slow") {
      arrived.resolve();
      await released.promise;
      return new Response("slow");
    }
    if (path === "/stream") {
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode("first;"));
            await released.promise;
            controller.enqueue(new TextEncoder().encode("second"));
            controller.close();
          },
        }),
      );
    }
    return new Response("fast");
  });
  return Object.assign(server, {
    release: () => released.resolve(),
    slowArrived: arrived.promise,
  });
}

Deno.test("a connection holding a partial request head is closed after request_head_timeout_ms, not before", async () => {
  const upstream = pacedUpstream();
  await withGateway(
    upstream,
    singleRoute(upstream, "  request_head_timeout_ms: 300"),
    async (gw) => {
      const slowloris = await rawClient(gw);
      try {
        await slowloris.write("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
        await eventually(
          2000,
          "the connection to be counted",
          async () => await metric(gw, "vanguard_client_connections") === 1,
        );
        await pause(150);
        assert.equal(slowloris.ended, false, "closed before the head timeout");
        await within(3000, "the head timeout to close the connection", slowloris.closed);
        assert.equal(await metric(gw, closedBy("head_timeout")), 1);
        assert.equal(await metric(gw, closedBy("idle_timeout")), 0);
        assert.equal(await metric(gw, "vanguard_client_connections"), 0);

        // A client that sends its head in time is served.
        const prompt = await rawClient(gw);
        await prompt.write("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert.equal((await prompt.response()).body, "fast");
        await prompt.close();
      } finally {
        await slowloris.close();
      }
    },
  );
});

Deno.test("an idle keep-alive connection is closed after idle_timeout_ms; one with a request or body in flight is not", async () => {
  const upstream = pacedUpstream();
  const yaml = singleRoute(upstream, "  idle_timeout_ms: 300\n  request_head_timeout_ms: 10000");
  await withGateway(upstream, yaml, async (gw) => {
    const idle = await rawClient(gw);
    const slow = await rawClient(gw);
    const streaming = await rawClient(gw);
    try {
      await idle.write("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
      assert.equal((await idle.response()).body, "fast");
      await pause(150);
      assert.equal(idle.ended, false, "closed before the idle timeout");
      await slow.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
      await upstream.slowArrived;
      await streaming.write("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
      // Headers and the first chunk are out; the rest of the body is pending.
      await within(3000, "the first chunk", streaming.received("first;"));
      await within(3000, "the idle timeout to close the connection", idle.closed);
      // Well past the idle timeout: the held request and the paused body are still open.
      await pause(400);
      assert.equal(slow.ended, false, "a connection waiting for its response was closed");
      assert.equal(streaming.ended, false, "a connection receiving a body was closed");
      upstream.release();
      assert.equal((await slow.response()).body, "slow");
      assert.equal((await streaming.response()).body, "first;second");
      assert.equal(await metric(gw, closedBy("idle_timeout")), 1);
      // Now idle, they go the same way.
      await within(3000, "the idle timeout after the slow response", slow.closed);
      await within(3000, "the idle timeout after the streamed body", streaming.closed);
    } finally {
      upstream.release();
      for (const client of [idle, slow, streaming]) await client.close();
    }
  });
});

Deno.test("connections beyond max_connections are closed at accept and counted", async () => {
  const upstream = pacedUpstream();
  await withGateway(upstream, singleRoute(upstream, "  max_connections: 2"), async (gw) => {
    const first = await rawClient(gw);
    const second = await rawClient(gw);
    const clients = [first, second];
    try {
      await eventually(
        2000,
        "two open connections",
        async () => await metric(gw, "vanguard_client_connections") === 2,
      );
      const third = await rawClient(gw);
      clients.push(third);
      await within(2000, "the connection over the limit to be closed", third.closed);
      assert.equal(await metric(gw, closedBy("over_limit")), 1);
      assert.equal(first.ended || second.ended, false, "a connection under the limit was closed");
      await first.write("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
      assert.equal((await first.response()).body, "fast");

      // A freed slot is usable again.
      await second.close();
      await eventually(
        2000,
        "one open connection",
        async () => await metric(gw, "vanguard_client_connections") === 1,
      );
      const fourth = await rawClient(gw);
      clients.push(fourth);
      await fourth.write("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
      assert.equal((await fourth.response()).body, "fast");
      assert.equal(await metric(gw, closedBy("over_limit")), 1);
    } finally {
      for (const client of clients) await client.close();
    }
  });
});

/** A raw upstream that records every request head and answers 200 "ok". */
function recordingRawUpstream(): TestServer & { heads: string[] } {
  const heads: string[] = [];
  const server = startRawUpstream(async (conn, head) => {
    heads.push(head.slice(0, head.indexOf("\r\n\r\n")));
    await writeAll(
      conn,
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
    );
  });
  return Object.assign(server, { heads });
}

Deno.test("a Host header cannot splice a path into the request: 400, and the upstream sees nothing", async () => {
  const upstream = recordingRawUpstream();
  const yaml = `
services:
  raw: { urls: [${upstream.url}] }
routes:
  - { id: raw, path_prefix: /raw, service_name: raw }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const send = async (head: string) => {
      const client = await rawClient(gw);
      try {
        await client.write(head);
        return await client.response();
      } finally {
        await client.close();
      }
    };
    for (const host of ["a/raw/echo?", "a/raw/echo?q HTTP/1.0", "a#/raw", "a@b", "a:99999"]) {
      const response = await send(`GET /admin/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.equal(response.status, 400, host);
      assert.equal(JSON.parse(response.body).error, "bad_request", host);
      assert.match(response.head, /content-type: application\/json/i);
    }
    // The query of an absolute-form target cannot become its path either.
    const spliced = await send("GET http://a?x/raw/echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.equal(spliced.status, 404);
    assert.equal(upstream.heads.length, 0, upstream.heads.join("\n---\n"));

    // What is forwarded is the target's path and query.
    assert.equal((await send("GET /raw/echo?q=1 HTTP/1.1\r\nHost: a:8000\r\n\r\n")).status, 200);
    assert.equal(
      (await send("GET http://other.example/raw/abs?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")).status,
      200,
    );
    assert.deepEqual(upstream.heads.map((head) => head.split("\r\n")[0]), [
      "GET /raw/echo?q=1 HTTP/1.1",
      "GET /raw/abs?x=1 HTTP/1.1",
    ]);
    assert.match(upstream.heads[0], /\r\nx-forwarded-host: a:8000\r\n/i);
  });
});

Deno.test("CONNECT is 501, OPTIONS * and a missing Host are 400; none reaches the upstream", async () => {
  const upstream = recordingRawUpstream();
  const yaml = `
services:
  raw: { urls: [${upstream.url}] }
routes:
  - { id: raw, path_prefix: /, service_name: raw }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const rows: [string, number, string][] = [
      [
        "CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n",
        501,
        "not_implemented",
      ],
      ["OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"],
      // Deno reports OPTIONS * exactly as OPTIONS /*.
      ["OPTIONS /* HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"],
      ["GET /x HTTP/1.1\r\n\r\n", 400, "bad_request"],
      // Deno does not tell HTTP/1.0 from 1.1: refused too.
      ["GET /x HTTP/1.0\r\n\r\n", 400, "bad_request"],
      ["GET /x HTTP/1.1\r\nHost:\r\n\r\n", 400, "bad_request"],
    ];
    for (const [head, status, code] of rows) {
      const client = await rawClient(gw);
      try {
        await client.write(head);
        const response = await client.response();
        assert.equal(response.status, status, head);
        assert.equal(JSON.parse(response.body).error, code, head);
      } finally {
        await client.close();
      }
    }
    assert.equal(upstream.heads.length, 0, upstream.heads.join("\n---\n"));
    const line = gw.logs.find((record) => record.event === "request" && record.status === 501);
    assert.equal(line?.method, "CONNECT");

    // An ordinary OPTIONS (a CORS preflight, say) is forwarded.
    const client = await rawClient(gw);
    try {
      await client.write("OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n");
      assert.equal((await client.response()).status, 200);
    } finally {
      await client.close();
    }
    assert.deepEqual(upstream.heads.map((head) => head.split("\r\n")[0]), ["OPTIONS /x HTTP/1.1"]);
  });
});

Deno.test("shutdown closes idle and half-sent connections at once and lets an in-flight request finish", async () => {
  const upstream = pacedUpstream();
  const gw = await startTestGateway(singleRoute(upstream), { accessLog: false });
  const idle = await rawClient(gw);
  const partial = await rawClient(gw);
  const slow = await rawClient(gw);
  try {
    await idle.write("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.equal((await idle.response()).body, "fast");
    await partial.write("GET /fast HTTP/1.1\r\nHost:");
    await slow.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await upstream.slowArrived;
    await eventually(
      2000,
      "three open connections",
      async () => await metric(gw, "vanguard_client_connections") === 3,
    );

    const stopped = gw.gateway.shutdown();
    await within(2000, "the idle connection to be closed", idle.closed);
    await within(2000, "the half-sent head to be closed", partial.closed);
    assert.equal(slow.ended, false);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: gw.gateway.proxyAddr.port }));

    upstream.release();
    const response = await slow.response();
    assert.equal(response.status, 200);
    assert.equal(response.body, "slow");
    await within(5000, "shutdown to complete", stopped);
    await within(2000, "the drained connection to be closed", slow.closed);
    assert.ok(gw.logs.some((record) => record.event === "shutdown_complete" && record.drained));
  } finally {
    upstream.release();
    for (const client of [idle, partial, slow]) await client.close();
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a WebSocket session outlives the idle timeout and is closed with 1001 at shutdown", async () => {
  const upstream = startUpstream((request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
  const gw = await startTestGateway(
    singleRoute(upstream, "  idle_timeout_ms: 200\n  request_head_timeout_ms: 200"),
    { accessLog: false },
  );
  const ws = new WebSocket(`${gw.url.replace("http", "ws")}/ws`);
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  try {
    await within(3000, "the session to open", new Promise((resolve) => ws.onopen = resolve));
    await pause(600);
    const echoed = new Promise<string>((resolve) => ws.onmessage = (event) => resolve(event.data));
    ws.send("still here");
    assert.equal(await within(3000, "the echo", echoed), "still here");
    assert.equal(await metric(gw, "vanguard_client_connections"), 1);
    assert.equal(await metric(gw, closedBy("idle_timeout")), 0);

    await within(5000, "shutdown to complete", gw.gateway.shutdown());
    const event = await within(3000, "the client to see the close", closed);
    assert.equal(event.code, 1001);
  } finally {
    if (ws.readyState === WebSocket.OPEN) ws.close();
    await closed;
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a burst of WebSocket upgrades all open, and those waiting their turn are not closed as idle", async () => {
  const upstream = startUpstream((request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
  // Far shorter than the wait of the last upgrades in the burst (see listener.ts).
  const gw = await startTestGateway(singleRoute(upstream, "  idle_timeout_ms: 1"), {
    accessLog: false,
  });
  const sessions = Array.from({ length: 100 }, (_, i) => {
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/s${i}`);
    const closed = new Promise<number>((resolve) => ws.onclose = (event) => resolve(event.code));
    const echoed = new Promise<string>((resolve) => {
      ws.onopen = () => setTimeout(() => ws.send(`m${i}`), 200);
      ws.onmessage = (event) => resolve(event.data);
    });
    return { ws, closed, echo: Promise.race([echoed, closed.then((code) => `closed ${code}`)]) };
  });
  try {
    const echoes = await within(10_000, "every echo", Promise.all(sessions.map((s) => s.echo)));
    assert.deepEqual(echoes, sessions.map((_, i) => `m${i}`));
    assert.equal(await metric(gw, "vanguard_client_connections"), 100);
    assert.equal(await metric(gw, closedBy("idle_timeout")), 0);
  } finally {
    for (const { ws } of sessions) if (ws.readyState <= WebSocket.OPEN) ws.close();
    await Promise.all(sessions.map((s) => s.closed));
    await gw.close();
    await upstream.close();
  }
});

Deno.test("new bounds from a reload apply to the listener", async () => {
  const upstream = pacedUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const result = await gw.gateway.reload(
      configFrom(singleRoute(upstream, "  idle_timeout_ms: 200")),
    );
    assert.deepEqual(result, { ok: true });
    const client = await rawClient(gw);
    try {
      await client.write("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
      assert.equal((await client.response()).body, "fast");
      await within(3000, "the new idle timeout to close the connection", client.closed);
      assert.equal(await metric(gw, closedBy("idle_timeout")), 1);
    } finally {
      await client.close();
    }
  });
});

Deno.test("a port in use fails the start naming the address and the config key", async (t) => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const config = configFrom(`
services:
  app: { urls: ["http://127.0.0.1:${closedPort()}"] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`);
  try {
    await t.step("server.port", async () => {
      await assert.rejects(
        startGateway({
          config,
          logger: memoryLogger(),
          listen: { port, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
        }),
        new Error(
          `Cannot listen on 127.0.0.1:${port} (server.port): address already in use; stop the other process or choose another port`,
        ),
      );
    });
    await t.step("server.admin_port", async () => {
      await assert.rejects(
        startGateway({
          config,
          logger: memoryLogger(),
          listen: { port: 0, host: "127.0.0.1", adminPort: port, adminHost: "127.0.0.1" },
        }),
        new Error(
          `Cannot listen on 127.0.0.1:${port} (server.admin_port): address already in use; stop the other process or choose another port`,
        ),
      );
    });
  } finally {
    taken.close();
  }
});

Deno.test("without Deno's internal API the listener falls back to Deno.serve and says so", async () => {
  const logger = memoryLogger();
  const listener = startListener(
    {
      hostname: "127.0.0.1",
      port: 0,
      requestHeadTimeoutMs: 300,
      idleTimeoutMs: 300,
      maxConnections: 1,
      logger,
      metrics: new Metrics(),
      onError: () => new Response("error", { status: 500 }),
      internals: null,
    },
    (request, client) =>
      new Response(`${new URL(request.url).pathname} ${client.remoteAddr.hostname}`),
  );
  try {
    assert.equal(listener.bounded, false);
    assert.deepEqual(logger.records.map((record) => record.event), ["listener_unbounded"]);
    const response = await fetch(`http://127.0.0.1:${listener.addr.port}/hello`);
    assert.equal(await response.text(), "/hello 127.0.0.1");
  } finally {
    await listener.shutdown();
  }
});
