import assert from "node:assert/strict";
import {
  closedPort,
  eventually,
  rawRequest,
  startUpstream,
  type TestServer,
  withGateway,
} from "../helpers.ts";

/** An upstream that answers with the path and Host it received, as JSON. */
function echo(): TestServer {
  return startUpstream((request) => {
    const url = new URL(request.url);
    return Response.json({
      path: url.pathname + url.search,
      host: request.headers.get("host"),
      tenant: request.headers.get("x-tenant"),
      dropped: request.headers.get("x-drop"),
    });
  });
}

async function get(url: string, headers: Record<string, string> = {}, method = "GET") {
  const response = await rawRequest(url, { headers, method });
  const text = new TextDecoder().decode(response.body);
  return { status: response.status, headers: response.headers, text };
}

Deno.test("redirect answers itself: parts replaced, query kept, the listener port when no scheme or port is set", async () => {
  const yaml = `routes:
  - id: moved
    path_prefix: /old
    redirect: { path_prefix: /new, status: 301 }
  - id: secure
    path_prefix: /login
    redirect: { scheme: https }
  - id: elsewhere
    path_exact: /promo
    redirect: { host: www.example.org, port: 8443, path: /offers/today, status: 308 }
  - id: root
    path_prefix: /gone
    redirect: { path_prefix: /, status: 307 }
`;
  await withGateway([], yaml, async (gw) => {
    const port = new URL(gw.url).port;
    const host = { host: `shop.example.com:${port}` };
    let answer = await get(`${gw.url}/old/a/b?x=1&y=2`, host);
    assert.equal(answer.status, 301);
    assert.equal(answer.headers.location, `http://shop.example.com:${port}/new/a/b?x=1&y=2`);
    answer = await get(`${gw.url}/old`, host);
    assert.equal(answer.headers.location, `http://shop.example.com:${port}/new`);

    answer = await get(`${gw.url}/login?next=%2Fcart`, host);
    assert.equal(answer.status, 302, "the default status");
    // A scheme without a port: that scheme's default port, which Location leaves out.
    assert.equal(answer.headers.location, "https://shop.example.com/login?next=%2Fcart");

    answer = await get(`${gw.url}/promo`, host, "POST");
    assert.equal(answer.status, 308);
    assert.equal(answer.headers.location, "http://www.example.org:8443/offers/today");

    answer = await get(`${gw.url}/gone/x/`, host);
    assert.equal(answer.status, 307);
    assert.equal(answer.headers.location, `http://shop.example.com:${port}/x/`);
  });
});

Deno.test("rewrite replaces the host, the matched prefix or the whole path the upstream receives", async () => {
  const upstream = echo();
  const yaml = `services:
  app: { urls: [${upstream.url}] }
routes:
  - id: prefix
    path_prefix: /api
    rewrite: { host: users.internal, path_prefix: /v2 }
    service_name: app
  - id: whole
    path_prefix: /legacy
    rewrite: { path: /index.html }
    service_name: app
  - id: strip
    path_prefix: /static
    strip_prefix: true
    service_name: app
`;
  await withGateway(upstream, yaml, async (gw) => {
    let seen = JSON.parse((await get(`${gw.url}/api/users/%C3%A9?q=1`)).text);
    assert.equal(seen.path, "/v2/users/%C3%A9?q=1");
    assert.equal(seen.host, "users.internal");
    seen = JSON.parse((await get(`${gw.url}/api`)).text);
    assert.equal(seen.path, "/v2");
    seen = JSON.parse((await get(`${gw.url}/api/`)).text);
    assert.equal(seen.path, "/v2/");
    seen = JSON.parse((await get(`${gw.url}/legacy/deep/page?lang=en`)).text);
    assert.equal(seen.path, "/index.html?lang=en");
    assert.equal(seen.host, `127.0.0.1:${upstream.port}`, "no rewrite.host: the endpoint's");
    seen = JSON.parse((await get(`${gw.url}/static/css/a.css`)).text);
    assert.equal(seen.path, "/css/a.css");
  });
});

Deno.test("an upstream Location under a replaced prefix comes back under the route's prefix", async () => {
  let upstreamPort = 0;
  const upstream = startUpstream((request) => {
    const path = new URL(request.url).pathname;
    const to: Record<string, string> = {
      "/docs": "/docs/",
      "/v2/account": "/v2/login?back=1",
      "/v2/away": "/elsewhere",
      "/v2/absolute": `http://127.0.0.1:${upstreamPort}/v2/home`,
      "/v2/foreign": "https://id.example.net/v2/sso",
    };
    return new Response(null, { status: 302, headers: { location: to[path] ?? "/" } });
  });
  upstreamPort = upstream.port;
  const yaml = `services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: static, path_prefix: /static, strip_prefix: true, service_name: app }
  - { id: api, path_prefix: /api, rewrite: { path_prefix: /v2 }, service_name: app }
  - { id: plain, path_prefix: /, service_name: app }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const location = async (path: string) => (await get(`${gw.url}${path}`)).headers.location;
    assert.equal(await location("/static/docs"), "/static/docs/");
    assert.equal(await location("/api/account"), "/api/login?back=1");
    assert.equal(await location("/api/away"), "/elsewhere", "outside the replaced prefix");
    assert.equal(await location("/api/absolute"), "/api/home", "the upstream's own authority");
    assert.equal(await location("/api/foreign"), "https://id.example.net/v2/sso");
    assert.equal(await location("/docs"), "/docs/", "a route that changes nothing");
  });
});

Deno.test("mirror copies requests with their body, and a slow or dead mirror never delays or fails the client", async () => {
  const main = startUpstream(async (request) => new Response(`main:${await request.text()}`));
  const copies: { method: string; path: string; body: string; marked: string | null }[] = [];
  const shadow = startUpstream(async (request) => {
    copies.push({
      method: request.method,
      path: new URL(request.url).pathname,
      body: await request.text(),
      marked: request.headers.get("x-vanguard-mirror"),
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return new Response("shadow answer, discarded");
  });
  const yaml = `services:
  main: { urls: [${main.url}] }
  shadow: { urls: [${shadow.url}] }
  dead: { urls: [http://127.0.0.1:${closedPort()}] }
routes:
  - { id: all, path_prefix: /all, service_name: main, mirror: { service_name: shadow } }
  - { id: half, path_prefix: /half, service_name: main, mirror: { service_name: shadow, percent: 50 } }
  - { id: dead, path_prefix: /dead, service_name: main, mirror: { service_name: dead } }
`;
  await withGateway([main, shadow], yaml, async (gw) => {
    const started = performance.now();
    const response = await fetch(`${gw.url}/all/orders`, { method: "POST", body: "order-1" });
    assert.equal(await response.text(), "main:order-1");
    assert.ok(performance.now() - started < 1000, "the client waited for the mirror");
    await eventually(3000, "the mirrored copy", () => copies.length === 1);
    assert.deepEqual(copies[0], {
      method: "POST",
      path: "/all/orders",
      body: "order-1",
      marked: "1",
    });

    const dead = await fetch(`${gw.url}/dead/x`, { method: "PUT", body: "y" });
    assert.equal(dead.status, 200);
    assert.equal(await dead.text(), "main:y");

    copies.length = 0;
    await Promise.all(
      Array.from({ length: 200 }, () => fetch(`${gw.url}/half`).then((r) => r.text())),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(copies.length > 65 && copies.length < 135, `50% mirrored ${copies.length} of 200`);

    await eventually(3000, "the failed mirror counted", async () => {
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return metrics.includes('vanguard_mirror_requests_total{route="dead",outcome="failed"} 1');
    });
  });
});

Deno.test("timeout_ms bounds one route's wait for response headers with 504", async () => {
  const slow = startUpstream(async () => {
    await new Promise((resolve) => setTimeout(resolve, 600));
    return new Response("late");
  });
  const yaml = `services:
  slow: { urls: [${slow.url}] }
routes:
  - { id: quick, path_prefix: /quick, service_name: slow, timeout_ms: 100 }
  - { id: patient, path_prefix: /, service_name: slow }
`;
  await withGateway(slow, yaml, async (gw) => {
    const started = performance.now();
    const response = await fetch(`${gw.url}/quick`);
    assert.equal(response.status, 504);
    assert.equal((await response.json()).error, "upstream_timeout");
    assert.ok(performance.now() - started < 500);
    assert.equal(await (await fetch(`${gw.url}/other`)).text(), "late");
  });
});

Deno.test("preserve_host and the header modifier keys change what the upstream and the client see", async () => {
  const upstream = echo();
  const yaml = `services:
  app: { urls: [${upstream.url}] }
routes:
  - id: kept
    path_prefix: /kept
    preserve_host: true
    request_headers: { set: { X-Tenant: acme }, remove: [X-Drop] }
    response_headers: { set: { X-Frame-Options: DENY }, remove: [X-Powered-By] }
    service_name: app
  - { id: plain, path_prefix: /, service_name: app }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const headers = { host: "Shop.Example.com:8080", "x-drop": "secret" };
    const kept = await get(`${gw.url}/kept`, headers);
    assert.deepEqual(JSON.parse(kept.text), {
      path: "/kept",
      host: "Shop.Example.com:8080",
      tenant: "acme",
      dropped: null,
    });
    assert.equal(kept.headers["x-frame-options"], "DENY");
    const plain = await get(`${gw.url}/plain`, headers);
    assert.deepEqual(JSON.parse(plain.text), {
      path: "/plain",
      host: `127.0.0.1:${upstream.port}`,
      tenant: null,
      dropped: "secret",
    });
    assert.equal(plain.headers["x-frame-options"], undefined);
  });
});

Deno.test("/routes shows each route's filters", async () => {
  const upstream = echo();
  const yaml = `services:
  app: { urls: [${upstream.url}] }
  shadow: { urls: [${upstream.url}] }
routes:
  - id: api
    path_prefix: /api
    rewrite: { path_prefix: /v2 }
    mirror: { service_name: shadow, percent: 5 }
    timeout_ms: 2500
    request_headers: { add: { X-A: "1" } }
    service_name: app
  - { id: away, path_prefix: /away, redirect: { scheme: https, status: 301 } }
`;
  await withGateway(upstream, yaml, async (gw) => {
    const body = await (await fetch(`${gw.adminUrl}/routes`)).json();
    const byId = Object.fromEntries(body.routes.map((r: { id: string }) => [r.id, r]));
    assert.deepEqual(byId.api.filters, {
      rewrite: { host: null, path: null, path_prefix: "/v2" },
      mirror: { service_name: "shadow", percent: 5 },
      request_headers: { set: {}, add: { "x-a": "1" }, remove: [] },
      timeout_ms: 2500,
    });
    assert.deepEqual(byId.away.filters, {
      redirect: {
        scheme: "https",
        host: null,
        port: null,
        path: null,
        path_prefix: null,
        status: 301,
      },
    });
    assert.equal(byId.away.service_name, null);
    assert.deepEqual(byId.away.backends, []);
  });
});

Deno.test("behind a trusted proxy, a redirect keeps the scheme and port the client used", async () => {
  const yaml = `server:
  trusted_proxies: [127.0.0.1/32]
routes:
  - { id: moved, path_prefix: /old, redirect: { path_prefix: /new, status: 301 } }
`;
  await withGateway([], yaml, async (gw) => {
    const host = { host: "shop.example.com" };
    let answer = await get(`${gw.url}/old/a`, { ...host, "x-forwarded-proto": "https" });
    assert.equal(answer.headers.location, "https://shop.example.com/new/a");
    answer = await get(`${gw.url}/old/a`, {
      ...host,
      "x-forwarded-proto": "https, http",
      "x-forwarded-port": "8443",
    });
    assert.equal(answer.headers.location, "https://shop.example.com:8443/new/a");
  });
  // From a peer that is not trusted the headers count for nothing.
  await withGateway([], yaml.replace("127.0.0.1/32", "10.0.0.0/8"), async (gw) => {
    const port = new URL(gw.url).port;
    const answer = await get(`${gw.url}/old/a`, {
      host: "shop.example.com",
      "x-forwarded-proto": "https",
    });
    assert.equal(answer.headers.location, `http://shop.example.com:${port}/new/a`);
  });
});
