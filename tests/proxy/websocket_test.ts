import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha256Hex as keyHash } from "../../lib/auth/api_keys.ts";
import {
  closedPort,
  eventually,
  latch,
  rawRequest,
  sha256Hex,
  singleRoute,
  startRawUpstream,
  startUpstream,
  type TestGateway,
  type TestServer,
  withGateway,
  within,
  writeAll,
} from "../helpers.ts";

/** What a WebSocket upstream saw of one connection. */
interface UpstreamSession {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly socket: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
}

/**
 * A real WebSocket upstream: upgrades every request (picking the first
 * offered protocol in `accept`), records the handshake, and lets `onOpen`
 * drive the socket; by default it echoes every message.
 */
function wsUpstream(
  options: {
    accept?: string[];
    onOpen?: (socket: WebSocket) => void;
  } = {},
): TestServer & { sessions: UpstreamSession[] } {
  const sessions: UpstreamSession[] = [];
  const server = startUpstream((request) => {
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
      .map((p) => p.trim());
    const protocol = options.accept?.find((p) => offered.includes(p));
    // Read before upgrading: the request is gone afterwards.
    const url = request.url.slice(request.url.indexOf("/", 8));
    const headers = Object.fromEntries(request.headers);
    const { socket, response } = Deno.upgradeWebSocket(request, protocol ? { protocol } : {});
    socket.binaryType = "arraybuffer";
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      socket.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }));
    });
    sessions.push({
      url,
      headers,
      socket,
      closed,
    });
    if (options.onOpen) socket.addEventListener("open", () => options.onOpen!(socket));
    else socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  return Object.assign(server, { sessions });
}

/** A test client over Deno's WebSocket with a message queue. */
interface Client {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  next(): Promise<string | ArrayBuffer>;
}

function connect(
  url: string,
  options: { protocols?: string[]; headers?: Record<string, string> } = {},
): Client {
  const ws = new WebSocket(url.replace(/^http/, "ws"), {
    protocols: options.protocols,
    headers: options.headers,
  });
  ws.binaryType = "arraybuffer";
  const queue: (string | ArrayBuffer)[] = [];
  const waiting: ((data: string | ArrayBuffer) => void)[] = [];
  ws.onmessage = (e) => {
    const waiter = waiting.shift();
    if (waiter) waiter(e.data);
    else queue.push(e.data);
  };
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("close", () => reject(new Error("closed before open")));
  });
  opened.catch(() => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }));
  });
  return {
    ws,
    opened: within(5000, "the WebSocket to open", opened),
    closed,
    next() {
      const data = queue.shift();
      if (data !== undefined) return Promise.resolve(data);
      return within(5000, "a message", new Promise((resolve) => waiting.push(resolve)));
    },
  };
}

/** Closes the client and waits until the gateway logged the session as over (both sides closed). */
async function finish(gw: TestGateway, client: Client, sessions = 1): Promise<void> {
  if (client.ws.readyState <= WebSocket.OPEN) client.ws.close();
  await within(5000, "the client to close", client.closed);
  await sessionsLogged(gw, sessions);
}

async function sessionsLogged(gw: TestGateway, count: number) {
  await eventually(
    5000,
    `${count} WebSocket session(s) in the access log`,
    () => webSocketLog(gw).length >= count,
  );
}

function webSocketLog(gw: TestGateway) {
  return gw.logs.filter((r) => r.event === "request" && r.status === 101);
}

const UPGRADE_HEADERS = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

Deno.test("text and binary messages pass both ways byte-exact, keeping their type", async () => {
  const upstream = wsUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(`${gw.url}/chat`);
    await client.opened;

    const text = "héllo wörld 👋🏽 — 漢字 \u0000 end";
    client.ws.send(text);
    assert.equal(await client.next(), text);

    const binary = new Uint8Array(1024 * 1024);
    for (let i = 0; i < binary.length; i += 65536) {
      crypto.getRandomValues(binary.subarray(i, i + 65536));
    }
    client.ws.send(binary);
    const echoed = await client.next();
    assert.ok(echoed instanceof ArrayBuffer, "binary came back as text");
    assert.equal(echoed.byteLength, binary.byteLength);
    assert.equal(await sha256Hex(new Uint8Array(echoed)), await sha256Hex(binary));

    // Text that looks like bytes stays text; empty messages survive.
    client.ws.send("");
    assert.equal(await client.next(), "");
    client.ws.send(new Uint8Array(0));
    const empty = await client.next();
    assert.ok(empty instanceof ArrayBuffer && empty.byteLength === 0);

    await finish(gw, client);
    const [log] = webSocketLog(gw);
    const expected = new TextEncoder().encode(text).byteLength + binary.byteLength;
    assert.equal(log.bytes_in, expected);
    assert.equal(log.bytes_out, expected);
    assert.equal(log.body, "complete");
  });
});

Deno.test("many messages arrive in order, and what the upstream says first is not lost", async () => {
  const upstream = wsUpstream({
    onOpen(socket) {
      // Sent the moment the upstream accepted: before the client's 101 is out.
      for (let i = 0; i < 20; i++) socket.send(`greeting ${i}`);
      socket.onmessage = (e) => socket.send(e.data);
    },
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(gw.url);
    await client.opened;
    for (let i = 0; i < 20; i++) assert.equal(await client.next(), `greeting ${i}`);
    const count = 2000;
    for (let i = 0; i < count; i++) {
      client.ws.send(i % 2 === 0 ? `m${i}` : new Uint32Array([i]));
    }
    for (let i = 0; i < count; i++) {
      const data = await client.next();
      if (i % 2 === 0) assert.equal(data, `m${i}`);
      else assert.equal(new Uint32Array(data as ArrayBuffer)[0], i);
    }
    await finish(gw, client);
  });
});

Deno.test("a client close reaches the upstream with its code and reason", async () => {
  const upstream = wsUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(gw.url);
    await client.opened;
    client.ws.close(4001, "client is done");
    assert.deepEqual(await within(5000, "the client close", client.closed), {
      code: 4001,
      reason: "client is done",
    });
    assert.deepEqual(await within(5000, "the upstream close", upstream.sessions[0].closed), {
      code: 4001,
      reason: "client is done",
    });
    await finish(gw, client);
  });
});

Deno.test("an upstream close reaches the client with its code and reason", async (t) => {
  const upstream = wsUpstream({
    onOpen(socket) {
      socket.onmessage = (e) => {
        const [code, reason] = String(e.data).split(" ");
        socket.close(Number(code), reason);
      };
    },
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    for (
      const [code, reason] of [[4002, "upstream-done"], [1001, "restarting"], [1008, "policy"]]
    ) {
      await t.step(`code ${code}`, async () => {
        const client = connect(gw.url);
        await client.opened;
        client.ws.send(`${code} ${reason}`);
        assert.deepEqual(await within(5000, "the close", client.closed), { code, reason });
      });
    }
    await sessionsLogged(gw, 3);
  });
});

Deno.test("an upstream that vanishes closes the client with 1011", async () => {
  const upstream = startRawUpstream(async (conn, head) => {
    await writeAll(conn, handshakeAnswer(head));
    await conn.read(new Uint8Array(1024)); // the client's message; then drop the TCP connection
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(gw.url);
    await client.opened;
    client.ws.send("bye");
    assert.equal((await within(5000, "the close", client.closed)).code, 1011);
    await sessionsLogged(gw, 1);
    assert.equal(webSocketLog(gw)[0].body, "error");
  });
});

Deno.test("a client that vanishes without a close frame closes the upstream", async () => {
  const upstream = wsUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.gateway.proxyAddr.port });
    const lines = Object.entries(UPGRADE_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`);
    await writeAll(conn, `GET /drop HTTP/1.1\r\nhost: gateway\r\n${lines.join("")}\r\n`);
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 101 /);
    conn.close();
    const closed = await within(5000, "the upstream close", upstream.sessions[0].closed);
    assert.equal(closed.code, 1000);
    await sessionsLogged(gw, 1);
    assert.equal(webSocketLog(gw)[0].body, "cancelled");
  });
});

Deno.test("an unreachable upstream or one that refuses the upgrade answers 502", async (t) => {
  const refusing = startUpstream(() => new Response("no websockets here", { status: 404 }));
  const dead = `http://127.0.0.1:${closedPort()}`;
  await withGateway(
    refusing,
    `
services:
  dead: { urls: [${dead}] }
  refusing: { urls: [${refusing.url}] }
routes:
  - { id: dead, path_prefix: /dead, service_name: dead }
  - { id: refusing, path_prefix: /refusing, service_name: refusing }
`,
    async (gw) => {
      for (const path of ["/dead", "/refusing"]) {
        await t.step(path, async () => {
          const response = await rawRequest(`${gw.url}${path}`, { headers: UPGRADE_HEADERS });
          assert.equal(response.status, 502);
          assert.equal(JSON.parse(new TextDecoder().decode(response.body)).error, "bad_gateway");
          assert.equal(response.headers.upgrade, undefined);

          const client = connect(`${gw.url}${path}`);
          await assert.rejects(client.opened);
          await client.closed;
        });
      }
    },
  );
});

Deno.test("an upstream that never answers the handshake gives 504 after upstream_timeout_ms", async () => {
  const upstream = startRawUpstream(async (conn) => {
    await conn.read(new Uint8Array(1)); // until the gateway gives up and closes
  });
  const yaml = singleRoute(upstream, "  upstream_timeout_ms: 200");
  await withGateway(upstream, yaml, async (gw) => {
    const started = performance.now();
    const response = await rawRequest(gw.url, { headers: UPGRADE_HEADERS });
    assert.equal(response.status, 504);
    assert.equal(JSON.parse(new TextDecoder().decode(response.body)).error, "upstream_timeout");
    assert.ok(performance.now() - started >= 190);
  });
});

const API_KEY = "vg_websocket-test-key-0123456789abcdef";

Deno.test("an upgrade on an auth_required route needs credentials; the upstream sees the consumer", async () => {
  const upstream = wsUpstream();
  const yaml = `
auth:
  api_key:
    keys:
      - { id: ws-client, sha256: "${keyHash(API_KEY)}" }
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app, auth_required: true }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const denied = await rawRequest(`${gw.url}/private`, { headers: UPGRADE_HEADERS });
    assert.equal(denied.status, 401);
    assert.equal(JSON.parse(new TextDecoder().decode(denied.body)).error, "unauthorized");
    const refused = connect(`${gw.url}/private`);
    await assert.rejects(refused.opened);
    await refused.closed;
    assert.equal(upstream.sessions.length, 0, "the upstream saw a connection");

    const client = connect(`${gw.url}/private`, { headers: { "API-Key": API_KEY } });
    await client.opened;
    client.ws.send("hi");
    assert.equal(await client.next(), "hi");
    assert.equal(upstream.sessions.length, 1);
    assert.equal(upstream.sessions[0].headers["x-vanguard-consumer"], "ws-client");
    await finish(gw, client);
  });
});

Deno.test("upgrades are rate limited like any request", async () => {
  const upstream = wsUpstream();
  const yaml = `
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: app
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 1, period_seconds: 60 }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const client = connect(gw.url);
    await client.opened;
    const second = await rawRequest(gw.url, { headers: UPGRADE_HEADERS });
    assert.equal(second.status, 429);
    assert.equal(JSON.parse(new TextDecoder().decode(second.body)).error, "rate_limited");
    assert.equal(upstream.sessions.length, 1);
    await finish(gw, client);
  });
});

Deno.test("the client gets the subprotocol the upstream chose from those it offered", async (t) => {
  const upstream = wsUpstream({ accept: ["chat.v2", "chat.v1"] });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    await t.step("a protocol the upstream supports", async () => {
      const client = connect(gw.url, { protocols: ["chat.v3", "chat.v2"] });
      await client.opened;
      assert.equal(client.ws.protocol, "chat.v2");
      assert.equal(upstream.sessions[0].headers["sec-websocket-protocol"], "chat.v3, chat.v2");
      await finish(gw, client, 1);
    });
    await t.step("none offered: none chosen", async () => {
      const client = connect(gw.url);
      await client.opened;
      assert.equal(client.ws.protocol, "");
      assert.equal(upstream.sessions[1].headers["sec-websocket-protocol"], undefined);
      await finish(gw, client, 2);
    });
  });
});

Deno.test("the upstream handshake carries path, query and the forwarding headers", async () => {
  const upstream = wsUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(`${gw.url}/rooms/a%20b?token=x&y=1`, {
      headers: { "X-Request-Id": "ws-req-42", "X-Custom": "kept", Origin: "https://app.example" },
    });
    await client.opened;
    const seen = upstream.sessions[0];
    assert.equal(seen.url, "/rooms/a%20b?token=x&y=1");
    assert.equal(seen.headers["x-request-id"], "ws-req-42");
    assert.equal(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(seen.headers["x-forwarded-proto"], "http");
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["origin"], "https://app.example");
    assert.equal(seen.headers["upgrade"], "websocket");
    assert.equal(seen.headers["sec-websocket-version"], "13");
    await finish(gw, client);
  });
});

Deno.test("a client sending faster than the upstream reads is closed with 1013, not buffered without bound", async () => {
  const stop = latch();
  const upstream = startRawUpstream(async (conn, head) => {
    await writeAll(conn, handshakeAnswer(head));
    await stop.promise; // and never read
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const client = connect(gw.url);
    await client.opened;
    const chunk = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 64 && client.ws.readyState === WebSocket.OPEN; i++) {
      client.ws.send(chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal((await within(5000, "the close", client.closed)).code, 1013);
    stop.resolve();
    await sessionsLogged(gw, 1);
    assert.equal(webSocketLog(gw)[0].body, "error");
  });
});

/** The 101 a raw TCP upstream sends for the handshake request in `head`. */
function handshakeAnswer(head: string): string {
  const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
  const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    .digest("base64");
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

Deno.test("open WebSocket sessions count toward max_in_flight; a closed one frees its slot", async () => {
  const upstream = wsUpstream();
  const yaml = `
services:
  app: { urls: [${upstream.url}], max_in_flight: 2 }
routes:
  - { id: app, path_prefix: /, service_name: app }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const first = connect(`${gw.url}/a`);
    const second = connect(`${gw.url}/b`);
    await first.opened;
    await second.opened;
    for (let i = 0; i < 8; i++) {
      const refused = await within(
        3000,
        "a 503 for a session beyond max_in_flight",
        rawRequest(`${gw.url}/more`, { headers: UPGRADE_HEADERS }),
      );
      assert.equal(refused.status, 503);
      assert.equal(JSON.parse(new TextDecoder().decode(refused.body)).error, "upstream_overloaded");
    }
    assert.equal(upstream.sessions.length, 2);
    await finish(gw, first);
    const third = connect(`${gw.url}/c`);
    await third.opened;
    assert.equal(upstream.sessions.length, 3);
    await finish(gw, second, 2);
    await finish(gw, third, 3);
  });
});
