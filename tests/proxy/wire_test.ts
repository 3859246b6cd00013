/**
 * Strict HTTP/1.1 both ways, end to end against raw, misbehaving upstreams:
 * framing an upstream gets wrong is 502 (never a desynchronized connection,
 * never 500), nothing invalid is ever written into an upstream request head,
 * and the timeouts bound what an upstream (not a slow client) holds.
 */
import assert from "node:assert/strict";
import type { Middleware } from "../../lib/pipeline/types.ts";
import { UpstreamClient, UpstreamError } from "../../lib/proxy/upstream_client.ts";
import {
  metricValue,
  rawRequest,
  singleRoute,
  startTestGateway,
  type TestGateway,
  within,
  writeAll,
} from "../helpers.ts";
import {
  response,
  type ScriptedUpstream,
  type SeenRequest,
  send,
  sleep,
  startScriptedUpstream,
} from "./scripted_upstream.ts";

const INJECTED = response("INJECTED");

/** The first request gets `first`; every later one an answer naming its path. */
function firstAnswer(
  first: (conn: Deno.Conn, request: SeenRequest) => Promise<void | "close">,
): ScriptedUpstream {
  let answered = 0;
  return startScriptedUpstream(async (conn, request) => {
    if (answered++ === 0) return await first(conn, request);
    await send(conn, response(`answer for ${request.path}`));
  });
}

async function withUpstream(
  upstream: ScriptedUpstream,
  run: (gw: TestGateway) => Promise<void>,
  options: { server?: string; middleware?: Middleware[] } = {},
): Promise<void> {
  const gw = await startTestGateway(singleRoute(upstream, options.server), {
    middleware: options.middleware,
  });
  try {
    await run(gw);
  } finally {
    await gw.close();
    await upstream.close();
  }
}

/** How a raw request for `url` failed; fails the test if it succeeded. */
async function failureOf(url: string): Promise<unknown> {
  const outcome = await rawRequest(url).then(() => undefined, (error: unknown) => error ?? "error");
  assert.ok(outcome !== undefined, "the response completed although its body never did");
  return outcome;
}

async function metrics(gw: TestGateway): Promise<string> {
  return await (await fetch(`${gw.adminUrl}/metrics`)).text();
}

async function expectBadGateway(gw: TestGateway, path = "/first"): Promise<void> {
  const answer = await fetch(gw.url + path);
  const body = await answer.json();
  assert.equal(answer.status, 502, JSON.stringify(body));
  assert.equal(body.error, "bad_gateway");
}

async function expectOwnAnswer(gw: TestGateway, path = "/next"): Promise<void> {
  const answer = await fetch(gw.url + path);
  assert.equal(answer.status, 200);
  assert.equal(await answer.text(), `answer for ${path}`);
}

for (
  const [name, head] of [
    ["xchunked with a Content-Length", "transfer-encoding: xchunked\r\ncontent-length: 5"],
    [
      "chunked then identity with a Content-Length",
      "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\ncontent-length: 5",
    ],
    ["chunked, gzip", "transfer-encoding: chunked, gzip"],
  ]
) {
  Deno.test(`upstream Transfer-Encoding ${name}: 502, and injected bytes reach nobody`, async () => {
    const upstream = firstAnswer(async (conn) => {
      await send(conn, `HTTP/1.1 200 OK\r\n${head}\r\n\r\nhello${INJECTED}`);
    });
    await withUpstream(upstream, async (gw) => {
      await expectBadGateway(gw);
      await expectOwnAnswer(gw);
    });
  });
}

Deno.test("a chunked response that also says Content-Length reaches the client whole, without the stale length", async () => {
  const upstream = firstAnswer(async (conn) => {
    await send(
      conn,
      "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
  });
  await withUpstream(upstream, async (gw) => {
    const answer = await rawRequest(`${gw.url}/first`);
    assert.equal(new TextDecoder().decode(answer.body), "hello");
    assert.notEqual(answer.headers["content-length"], "3");
    await expectOwnAnswer(gw);
  });
});

for (
  const [name, head] of [
    ["an invalid header name", "HTTP/1.1 200 OK\r\nbad name: x\r\ncontent-length: 0\r\n\r\n"],
    [
      "a header value with a bare LF",
      "HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 0\r\n\r\n",
    ],
    ["status 600", "HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n"],
    ["status 999", "HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n"],
    ["status 099", "HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n"],
    [
      "a 70 KB head",
      `HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(70 * 1024)}\r\ncontent-length: 0\r\n\r\n`,
    ],
  ]
) {
  Deno.test(`an upstream response with ${name} is 502 bad_gateway and counts against the endpoint`, async () => {
    const upstream = firstAnswer(async (conn) => await send(conn, head));
    await withUpstream(upstream, async (gw) => {
      await expectBadGateway(gw);
      const text = await metrics(gw);
      assert.equal(
        metricValue(text, 'vanguard_upstream_errors_total{service="app",kind="protocol"}'),
        1,
      );
      assert.equal(
        metricValue(text, 'vanguard_requests_total{route="app",status="500"}'),
        undefined,
      );
      await expectOwnAnswer(gw);
    });
  });
}

for (
  const [name, head, server] of [
    [
      "a Content-Length body that stalls is aborted after upstream_body_timeout_ms",
      "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello",
      "  upstream_body_timeout_ms: 300",
    ],
    [
      "an endless chunked body that stops sending is aborted by upstream_timeout_ms when no body timeout is set",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
      "  upstream_timeout_ms: 300",
    ],
  ]
) {
  Deno.test(`${name}: the client sees an incomplete response`, async () => {
    const upstream = firstAnswer(async (conn) => {
      await send(conn, head);
      await sleep(1500);
    });
    await withUpstream(upstream, async (gw) => {
      const started = performance.now();
      const failure = await within(
        3000,
        "the stalled body to be aborted",
        failureOf(`${gw.url}/first`),
      );
      const elapsed = performance.now() - started;
      assert.match(String(failure), /ended early|aborted|reset|closed/i);
      assert.ok(elapsed >= 250 && elapsed < 1200, `aborted after ${elapsed} ms`);
    }, { server });
  });
}

Deno.test("upstream_timeout_ms counts from the end of the upload, not from the request's arrival", async () => {
  const upstream = startScriptedUpstream(async (conn, request) => {
    await send(conn, response(`got ${request.body.length} bytes`));
  });
  await withUpstream(upstream, async (gw) => {
    // 6 chunks, 150 ms apart: the upload takes ~900 ms, three times the timeout.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent++ === 6) {
          controller.close();
          return;
        }
        await sleep(150);
        controller.enqueue(new Uint8Array(100_000).fill(97));
      },
    });
    const answer = await fetch(`${gw.url}/upload`, { method: "POST", body });
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), "got 600000 bytes");
  }, { server: "  upstream_timeout_ms: 300" });
});

/** Sends raw request bytes to the gateway and returns the status line and the whole answer. */
async function rawExchange(gw: TestGateway, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.gateway.proxyAddr.port });
  try {
    await writeAll(conn, text);
    const buffer = new Uint8Array(65536);
    let answer = "";
    while (!answer.includes("\r\n\r\n")) {
      const n = await within(3000, "an answer", conn.read(buffer));
      if (n === null) break;
      answer += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return answer;
  } finally {
    conn.close();
  }
}

Deno.test("two identical Content-Length headers from a client reach the upstream as one", async () => {
  const upstream = startScriptedUpstream(async (conn, request) => {
    await send(conn, response(`got ${request.body}`));
  });
  await withUpstream(upstream, async (gw) => {
    const answer = await rawExchange(
      gw,
      "POST /x HTTP/1.1\r\nhost: gw\r\ncontent-length: 5\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    );
    assert.match(answer, /^HTTP\/1\.1 200/);
    const lengths = upstream.requests[0].headers.filter(([name]) => name === "content-length");
    assert.deepEqual(lengths, [["content-length", "5"]]);
  });
});

Deno.test("a client request with both Transfer-Encoding and Content-Length is refused, never forwarded", async () => {
  const upstream = startScriptedUpstream(async (conn) => await send(conn, response("reached")));
  await withUpstream(upstream, async (gw) => {
    const answer = await rawExchange(
      gw,
      "POST /x HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal(upstream.requests.length, 0);
  });
});

Deno.test("a header value with CR LF set by a middleware is refused (500), and nothing reaches the upstream", async () => {
  const upstream = startScriptedUpstream(async (conn) => await send(conn, response("reached")));
  const inject: Middleware = function inject(ctx, next) {
    ctx.upstreamHeaders = { "x-tenant": "acme\r\nx-injected: 1" };
    return next();
  };
  await withUpstream(upstream, async (gw) => {
    const answer = await fetch(`${gw.url}/x`);
    const body = await answer.json();
    assert.equal(answer.status, 500);
    assert.equal(body.error, "invalid_upstream_request");
    assert.equal(upstream.connections(), 0);
    assert.ok(gw.logs.some((r) => r.event === "upstream_request_refused"));
  }, { middleware: [inject] });
});

Deno.test("UpstreamClient refuses invalid header names and values, U+0100 and up included, before connecting", async () => {
  const upstream = startScriptedUpstream(async (conn) => await send(conn, response("reached")));
  const client = new UpstreamClient();
  try {
    for (
      const headers of [
        { "x-a": "1\r\nx-b: 2" },
        { "x-a": "\u010d\u010ax-b: 2" },
        { "x-a": "1\nx-b: 2" },
        { "x a": "1" },
        { "x-a\r\nx-b": "1" },
      ] as Record<string, string>[]
    ) {
      await assert.rejects(
        client.send({
          origin: upstream.url,
          method: "GET",
          path: "/",
          headers,
          body: null,
          signal: new AbortController().signal,
          headersTimeoutMs: 1000,
          maxBodyBytes: 1024,
        }),
        (error: unknown) => error instanceof UpstreamError && error.kind === "invalid_request",
      );
    }
    assert.equal(upstream.connections(), 0);
  } finally {
    client.close();
    await upstream.close();
  }
});

Deno.test("an upstream the --allow-net flag does not permit: 502, and one log line naming the flag", async () => {
  // [::1] is outside the test run's --allow-net list, so Deno refuses before any packet is sent.
  const gw = await startTestGateway(`
services:
  app: { urls: ["http://[::1]:9"] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`);
  try {
    for (let i = 0; i < 2; i++) {
      const answer = await fetch(`${gw.url}/x`);
      assert.equal(answer.status, 502);
      assert.match((await answer.json()).message, /network permission/);
    }
    const denied = gw.logs.filter((r) => r.event === "upstream_permission_denied");
    assert.equal(denied.length, 1);
    assert.match(String(denied[0].message), /--allow-net/);
  } finally {
    await gw.close();
  }
});
