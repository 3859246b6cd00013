import assert from "node:assert/strict";
import { rawRequest, startUpstream, type TestServer, withGateway, writeAll } from "../helpers.ts";

/** An upstream that answers with its own name, so the test sees which service served. */
function named(name: string): TestServer {
  return startUpstream(() => new Response(name));
}

function configFor(api: TestServer, web: TestServer, canary: TestServer): string {
  return `services:
  api: { urls: [${api.url}] }
  web: { urls: [${web.url}] }
  canary: { urls: [${canary.url}] }
routes:
  - { id: api, hosts: [api.example.com], path_prefix: /, service_name: api }
  - { id: web, hosts: ["*.example.com"], path_prefix: /, service_name: web }
  - id: canary
    hosts: [api.example.com]
    path_prefix: /
    headers: [{ name: X-Canary, value: "true" }]
    service_name: canary
  - { id: health, path_exact: /healthz, methods: [GET], service_name: web }
`;
}

async function served(
  url: string,
  headers: Record<string, string>,
  method = "GET",
): Promise<[number, string]> {
  const response = await rawRequest(url, { headers, method });
  return [response.status, new TextDecoder().decode(response.body)];
}

/** Sends one HTTP/1.1 request with exactly this request line and Host, returns the status and body. */
async function rawLine(port: number, line: string, host: string): Promise<[number, string]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, `${line}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((all, c) => new Uint8Array([...all, ...c]), new Uint8Array()),
    );
    const status = Number(text.slice(9, 12));
    return [status, text.slice(text.indexOf("\r\n\r\n") + 4)];
  } finally {
    conn.close();
  }
}

Deno.test("the gateway routes two hosts to two services, and a header to a canary", async () => {
  const api = named("api");
  const web = named("web");
  const canary = named("canary");
  await withGateway([api, web, canary], configFor(api, web, canary), async (gw) => {
    const url = `${gw.url}/users/1`;
    assert.deepEqual(await served(url, { host: "api.example.com" }), [200, "api"]);
    assert.deepEqual(await served(url, { host: "API.Example.com:8000" }), [200, "api"]);
    assert.deepEqual(await served(url, { host: "www.example.com" }), [200, "web"]);
    assert.deepEqual(await served(url, { host: "a.b.example.com" }), [200, "web"]);
    assert.deepEqual(
      await served(url, { host: "api.example.com", "x-canary": "true" }),
      [200, "canary"],
    );
    assert.deepEqual(
      await served(url, { host: "api.example.com", "x-canary": "false" }),
      [200, "api"],
    );

    const [status, body] = await served(url, { host: "example.com" });
    assert.equal(status, 404);
    assert.equal(JSON.parse(body).error, "route_not_found");
    assert.deepEqual(await served(`${gw.url}/healthz`, { host: "example.com" }), [200, "web"]);
    assert.equal((await served(`${gw.url}/healthz`, { host: "example.com" }, "POST"))[0], 404);
  });
});

Deno.test("an absolute-form target's authority wins over the Host header (RFC 9112 3.2.2)", async () => {
  const api = named("api");
  const web = named("web");
  const canary = named("canary");
  await withGateway([api, web, canary], configFor(api, web, canary), async (gw) => {
    const port = Number(new URL(gw.url).port);
    assert.deepEqual(
      await rawLine(port, "GET http://api.example.com/x HTTP/1.1", "www.example.com"),
      [200, "api"],
    );
    assert.deepEqual(
      await rawLine(port, "GET http://www.example.com/x HTTP/1.1", "api.example.com"),
      [200, "web"],
    );
    assert.deepEqual(await rawLine(port, "GET /x HTTP/1.1", "api.example.com"), [200, "api"]);
  });
});

Deno.test("/routes shows each route's hosts, match, methods, headers and query", async () => {
  const api = named("api");
  const web = named("web");
  const canary = named("canary");
  await withGateway([api, web, canary], configFor(api, web, canary), async (gw) => {
    const body = await (await fetch(`${gw.adminUrl}/routes`)).json();
    const byId = Object.fromEntries(
      body.routes.map((route: { id: string }) => [route.id, route]),
    );
    assert.deepEqual(byId.canary.hosts, ["api.example.com"]);
    assert.deepEqual(byId.canary.match, { kind: "prefix", value: "/" });
    assert.deepEqual(byId.canary.headers, [{ name: "x-canary", value: "true" }]);
    assert.equal(byId.canary.query, null);
    assert.deepEqual(byId.health.match, { kind: "exact", value: "/healthz" });
    assert.deepEqual(byId.health.methods, ["GET"]);
    assert.equal(byId.health.hosts, null);
    assert.deepEqual(byId.web.hosts, ["*.example.com"]);
  });
});
