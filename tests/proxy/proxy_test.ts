import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  closedPort,
  expectStreamed,
  latch,
  rawRequest,
  sha256Hex,
  singleRoute,
  startRawUpstream,
  startTestGateway,
  startUpstream,
  type TestServer,
  twoChunkUpstream,
  withGateway,
  within,
  writeAll,
} from "../helpers.ts";

/** An upstream that answers with what it received. */
function echoUpstream(): TestServer {
  return startUpstream(async (request, info) => {
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array();
    return Response.json({
      method: request.method,
      url: request.url.slice(request.url.indexOf("/", 8)),
      headers: Object.fromEntries(request.headers),
      peer: info.remoteAddr.hostname,
      body_sha256: await sha256Hex(body),
      body_length: body.byteLength,
    });
  });
}

Deno.test("the upstream receives method, path, query and body unchanged", async () => {
  const upstream = echoUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await fetch(`${gw.url}/a/b%20c?x=1&y=%2F#frag`, {
      method: "PATCH",
      body: "hello",
    });
    assert.equal(response.status, 200);
    const seen = await response.json();
    assert.equal(seen.method, "PATCH");
    assert.equal(seen.url, "/a/b%20c?x=1&y=%2F");
    assert.equal(seen.body_sha256, await sha256Hex(new TextEncoder().encode("hello")));
  });
});

Deno.test("a 5 MB upload arrives with the same SHA-256", async () => {
  const upstream = echoUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const payload = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 65536) {
      crypto.getRandomValues(payload.subarray(i, i + 65536));
    }
    const response = await fetch(`${gw.url}/upload`, { method: "POST", body: payload });
    const seen = await response.json();
    assert.equal(seen.body_length, payload.byteLength);
    assert.equal(seen.body_sha256, await sha256Hex(payload));
  });
});

Deno.test("the response streams: the client gets the first chunk before the upstream sends the last", async () => {
  const upstream = twoChunkUpstream();
  try {
    await withGateway(upstream, singleRoute(upstream), async (gw) => {
      await expectStreamed(await fetch(`${gw.url}/stream`), upstream);
    });
  } finally {
    upstream.release();
  }
});

Deno.test("the request streams: the upstream gets the first chunk before the client sends the last", async () => {
  const upstreamGotFirst = latch();
  const upstream = startUpstream(async (request) => {
    const reader = request.body!.getReader();
    const first = await reader.read();
    upstreamGotFirst.resolve();
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    return new Response(text);
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 0) {
          controller.enqueue(new TextEncoder().encode("first;"));
        } else if (sent === 1) {
          await upstreamGotFirst.promise;
          controller.enqueue(new TextEncoder().encode("second"));
        } else {
          controller.close();
        }
        sent++;
      },
    });
    const response = await within(
      5000,
      "the upstream to answer",
      fetch(`${gw.url}/upload`, { method: "POST", body }),
    );
    assert.equal(await response.text(), "first;second");
  });
});

Deno.test("a gzip body passes through byte for byte, with and without the client's Accept-Encoding", async () => {
  const gzipped = gzipSync(new TextEncoder().encode("compressible text ".repeat(2000)));
  const upstream = startUpstream(() =>
    new Response(new Uint8Array(gzipped), {
      headers: { "content-encoding": "gzip", "content-type": "text/plain" },
    })
  );
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    for (const headers of [{ "accept-encoding": "gzip, br" }, {}] as Record<string, string>[]) {
      const response = await rawRequest(`${gw.url}/file.txt`, { headers });
      assert.equal(response.status, 200);
      assert.equal(response.headers["content-encoding"], "gzip");
      assert.deepEqual(response.body, new Uint8Array(gzipped));
      if (response.headers["content-length"] !== undefined) {
        assert.equal(Number(response.headers["content-length"]), gzipped.byteLength);
      }
    }
  });
});

Deno.test("an uncompressed body is not compressed by the gateway", async () => {
  const text = "plain text that would compress well ".repeat(500);
  const upstream = startUpstream(() =>
    new Response(text, { headers: { "content-type": "text/plain" } })
  );
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await rawRequest(`${gw.url}/plain`, {
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(response.headers["content-encoding"], undefined);
    assert.equal(new TextDecoder().decode(response.body), text);
  });
});

Deno.test("hop-by-hop and Connection-named request headers never reach the upstream", async () => {
  const upstream = echoUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await rawRequest(`${gw.url}/h`, {
      headers: {
        "connection": "keep-alive, X-Hop-Secret",
        "x-hop-secret": "must not pass",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "proxy-connection": "keep-alive",
        "x-end-to-end": "kept",
      },
    });
    const seen = JSON.parse(new TextDecoder().decode(response.body)).headers;
    for (
      const name of [
        "x-hop-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
      ]
    ) {
      assert.equal(seen[name], undefined, `${name} was forwarded`);
    }
    assert.equal(seen["x-end-to-end"], "kept");
    assert.notEqual(seen["connection"], "keep-alive, X-Hop-Secret");
  });
});

Deno.test("hop-by-hop and Connection-named response headers never reach the client", async () => {
  const upstream = startRawUpstream(async (conn) => {
    await writeAll(
      conn,
      "HTTP/1.1 200 OK\r\n" +
        "Content-Length: 2\r\n" +
        "Connection: X-Internal-Hop\r\n" +
        "X-Internal-Hop: secret\r\n" +
        "Keep-Alive: timeout=5\r\n" +
        "Proxy-Authenticate: Basic\r\n" +
        "Set-Cookie: a=1\r\n" +
        "Set-Cookie: b=2\r\n" +
        "X-End-To-End: kept\r\n" +
        "\r\nok",
    );
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await rawRequest(`${gw.url}/h`);
    assert.equal(response.status, 200);
    assert.equal(response.headers["x-internal-hop"], undefined);
    assert.equal(response.headers["keep-alive"], undefined);
    assert.equal(response.headers["proxy-authenticate"], undefined);
    assert.equal(response.headers["x-end-to-end"], "kept");
    assert.deepEqual(response.headers["set-cookie"], ["a=1", "b=2"]);
    assert.equal(new TextDecoder().decode(response.body), "ok");
  });
});

Deno.test("hop-by-hop response headers in any letter case never reach the client, without a Connection header too", async () => {
  const upstream = startRawUpstream(async (conn) => {
    await writeAll(
      conn,
      "HTTP/1.1 200 OK\r\n" +
        "Content-Length: 2\r\n" +
        "KEEP-ALIVE: timeout=5\r\n" +
        "PROXY-Custom: x\r\n" +
        "Te: trailers\r\n" +
        "Trailer: X-Sum\r\n" +
        "uPgRaDe: h2c\r\n" +
        "X-Request-ID: chosen-by-upstream\r\n" +
        "X-End-To-End: kept\r\n" +
        "\r\nok",
    );
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await rawRequest(`${gw.url}/h`);
    assert.equal(response.status, 200);
    for (const name of ["keep-alive", "proxy-custom", "te", "trailer", "upgrade"]) {
      assert.equal(response.headers[name], undefined, name);
    }
    // The gateway's own request id, not the upstream's.
    assert.match(String(response.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    assert.equal(response.headers["x-end-to-end"], "kept");
  });
});

Deno.test("X-Forwarded-For from an untrusted client is replaced, not appended to", async () => {
  const upstream = echoUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await fetch(`${gw.url}/x`, {
      headers: {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-vanguard-consumer": "admin",
        "x-vanguard-anything": "spoofed",
        "forwarded": "for=203.0.113.9",
      },
    });
    const seen = (await response.json()).headers;
    assert.equal(seen["x-forwarded-for"], "127.0.0.1");
    assert.equal(seen["x-forwarded-proto"], "http");
    assert.equal(seen["x-forwarded-host"], new URL(gw.url).host);
    assert.equal(seen["x-vanguard-consumer"], undefined);
    assert.equal(seen["x-vanguard-anything"], undefined);
    assert.equal(seen["forwarded"], undefined);
  });
});

Deno.test("X-Forwarded-For from a trusted proxy is kept and the peer appended", async () => {
  const upstream = echoUpstream();
  const yaml = singleRoute(upstream, "  trusted_proxies: [127.0.0.0/8]");
  await withGateway(upstream, yaml, async (gw) => {
    const response = await fetch(`${gw.url}/x`, {
      headers: { "x-forwarded-for": "203.0.113.9, 10.0.0.1", "x-forwarded-proto": "https" },
    });
    const seen = (await response.json()).headers;
    assert.equal(seen["x-forwarded-for"], "203.0.113.9, 10.0.0.1, 127.0.0.1");
    assert.equal(seen["x-forwarded-proto"], "https");
  });
});

Deno.test("X-Request-Id: a sane client value is kept, anything else replaced, and returned to the client", async (t) => {
  const upstream = echoUpstream();
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    await t.step("sane value kept", async () => {
      const response = await fetch(`${gw.url}/x`, { headers: { "x-request-id": "abc-123_x.y" } });
      assert.equal((await response.json()).headers["x-request-id"], "abc-123_x.y");
      assert.equal(response.headers.get("x-request-id"), "abc-123_x.y");
    });
    for (const bad of ["has space", "x".repeat(129), "semi;colon", ""]) {
      await t.step(`replaced: ${JSON.stringify(bad.slice(0, 12))}`, async () => {
        const response = await fetch(`${gw.url}/x`, { headers: { "x-request-id": bad } });
        const forwarded = (await response.json()).headers["x-request-id"];
        assert.notEqual(forwarded, bad);
        assert.match(forwarded, /^[A-Za-z0-9._-]{1,128}$/);
        assert.equal(response.headers.get("x-request-id"), forwarded);
      });
    }
    await t.step("error responses carry the id too", async () => {
      const response = await fetch(`${gw.url}/%2F`, { headers: { "x-request-id": "err-1" } });
      assert.equal(response.status, 400);
      assert.equal(response.headers.get("x-request-id"), "err-1");
      assert.equal((await response.json()).request_id, "err-1");
    });
  });
});

Deno.test("strip_prefix removes the route prefix; without it the upstream sees the full path", async () => {
  const upstream = echoUpstream();
  const yaml = `
services:
  echo:
    urls: [${upstream.url}]
routes:
  - id: stripped
    path_prefix: /api/v1
    service_name: echo
    strip_prefix: true
  - id: full
    path_prefix: /full
    service_name: echo
`;
  await withGateway(upstream, yaml, async (gw) => {
    const seen = async (path: string) => (await (await fetch(gw.url + path)).json()).url;
    assert.equal(await seen("/api/v1/users/7?q=1"), "/users/7?q=1");
    assert.equal(await seen("/api/v1"), "/");
    assert.equal(await seen("/api/v1/"), "/");
    assert.equal(await seen("/full/x"), "/full/x");
  });
});

Deno.test("an upstream that resets mid-body aborts the client response instead of ending it cleanly", async (t) => {
  const upstream = startRawUpstream(async (conn, head) => {
    if (head.startsWith("GET /length")) {
      await writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + "a".repeat(500));
    } else {
      await writeAll(
        conn,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      );
    }
    // returning closes the socket with the body unfinished
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    for (const path of ["/length", "/chunked"]) {
      await t.step(path, async () => {
        await assert.rejects(rawRequest(`${gw.url}${path}`));
      });
    }
  });
});

Deno.test("a client that goes away cancels the upstream request", async (t) => {
  const upstreamSawAbort = latch();
  const bodyCancelled = latch();
  const upstream = startUpstream((request) => {
    if (new URL(request.url).pathname === "/slow-headers") {
      return new Promise((resolve) => {
        request.signal.addEventListener("abort", () => {
          upstreamSawAbort.resolve();
          resolve(new Response("late"));
        });
      });
    }
    let timer: ReturnType<typeof setInterval> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        timer = setInterval(() => controller.enqueue(new Uint8Array(1024)), 20);
      },
      cancel() {
        clearInterval(timer);
        bodyCancelled.resolve();
      },
    });
    return new Response(body);
  });
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    await t.step("while waiting for response headers", async () => {
      const controller = new AbortController();
      const pending = fetch(`${gw.url}/slow-headers`, { signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      await assert.rejects(pending);
      await within(5000, "the upstream to see the abort", upstreamSawAbort.promise);
    });
    await t.step("while the body streams", async () => {
      const controller = new AbortController();
      const response = await fetch(`${gw.url}/endless`, { signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.cancel().catch(() => {});
      await within(5000, "the upstream body to be cancelled", bodyCancelled.promise);
    });
  });
});

Deno.test("a HEAD request and a 204 pass through without a body", async () => {
  const upstream = startUpstream((request) =>
    new URL(request.url).pathname === "/none"
      ? new Response(null, { status: 204, headers: { "x-kind": "none" } })
      : new Response("twelve bytes", { headers: { "x-kind": "head" } })
  );
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const head = await rawRequest(`${gw.url}/file`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers["x-kind"], "head");
    assert.equal(head.body.byteLength, 0);
    const none = await rawRequest(`${gw.url}/none`);
    assert.equal(none.status, 204);
    assert.equal(none.headers["x-kind"], "none");
  });
});

Deno.test("upstream status codes and headers reach the client unchanged", async () => {
  const upstream = startUpstream(() =>
    new Response("teapot", {
      status: 418,
      headers: { "x-upstream": "yes", "cache-control": "max-age=5" },
    })
  );
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const response = await fetch(`${gw.url}/tea`);
    assert.equal(response.status, 418);
    assert.equal(response.headers.get("x-upstream"), "yes");
    assert.equal(response.headers.get("cache-control"), "max-age=5");
    assert.equal(await response.text(), "teapot");
  });
});

Deno.test("many concurrent requests all get their own responses", async () => {
  const upstream = startUpstream((request) => new Response(new URL(request.url).pathname));
  await withGateway(upstream, singleRoute(upstream), async (gw) => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => fetch(`${gw.url}/n/${i}`).then((r) => r.text())),
    );
    results.forEach((text, i) => assert.equal(text, `/n/${i}`));
  });
});

Deno.test("a refused connection is retried once on another endpoint", async () => {
  const upstream = startUpstream(() => new Response("alive"));
  const dead = `http://127.0.0.1:${closedPort()}`;
  const yaml = `
services:
  mixed:
    urls: [${dead}, ${upstream.url}]
routes:
  - id: mixed
    path_prefix: /
    service_name: mixed
`;
  await withGateway(upstream, yaml, async (gw) => {
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${gw.url}/r`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "alive");
    }
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /vanguard_upstream_errors_total\{service="mixed",kind="refused"\} [1-9]/);
  });
});

Deno.test("requests spread over two endpoints, and a busy endpoint gets fewer", async (t) => {
  const counts = { a: 0, b: 0 };
  const release = latch();
  const a = startUpstream(async (request) => {
    counts.a++;
    if (new URL(request.url).pathname === "/hold") await release.promise;
    return new Response("a");
  });
  const b = startUpstream(() => {
    counts.b++;
    return new Response("b");
  });
  const yaml = `
services:
  pair:
    urls: [${a.url}, ${b.url}]
routes:
  - id: pair
    path_prefix: /
    service_name: pair
`;
  const gw = await startTestGateway(yaml);
  try {
    await t.step("sequential requests alternate", async () => {
      for (let i = 0; i < 20; i++) await (await fetch(`${gw.url}/x`)).text();
      assert.equal(counts.a, 10);
      assert.equal(counts.b, 10);
    });
    await t.step("while one endpoint holds a request, new ones go to the other", async () => {
      counts.a = 0;
      counts.b = 0;
      // Endpoint b answers /hold at once and a holds it: send /hold until one
      // is held by a (at most two tries, since picks alternate).
      const seen = () => counts.a + counts.b;
      let held: Promise<Response> | undefined;
      for (let i = 0; i < 2 && held === undefined; i++) {
        const before = { a: counts.a, total: seen() };
        const pending = fetch(`${gw.url}/hold`);
        while (seen() === before.total) await new Promise((r) => setTimeout(r, 5));
        if (counts.a > before.a) held = pending;
        else await (await pending).text();
      }
      assert.ok(held, "a held request reached endpoint a");
      counts.b = 0;
      for (let i = 0; i < 10; i++) await (await fetch(`${gw.url}/x`)).text();
      assert.equal(counts.b, 10);
      release.resolve();
      await (await held!).text();
    });
  } finally {
    release.resolve();
    await gw.close();
    await a.close();
    await b.close();
  }
});
