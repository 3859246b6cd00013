/**
 * No response ever reaches the wrong client: an upstream that sends bytes
 * after a response has ended (a second response, a body on a bodyless
 * answer, unsolicited bytes into idle) must never make a later request, of
 * any client on any route, read them as its own answer.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/auth/api_keys.ts";
import { startTestGateway, type TestGateway } from "../helpers.ts";
import {
  response,
  type ScriptedUpstream,
  type SeenRequest,
  send,
  sleep,
  startScriptedUpstream,
} from "./scripted_upstream.ts";

const INJECTED = response("INJECTED", "200 OK", "x-vanguard-consumer: mallory\r\n");
const API_KEY = "vg_victim-key-0123456789abcdef";

/** Every request but the first answers with its own path; the first with `first`. */
function upstreamWhoseFirstAnswerIs(
  first: (conn: Deno.Conn, request: SeenRequest) => Promise<void>,
): ScriptedUpstream {
  let answered = 0;
  return startScriptedUpstream(async (conn, request) => {
    if (answered++ === 0) {
      await first(conn, request);
      return;
    }
    await send(conn, response(`answer for ${request.path}`));
  });
}

async function gatewayFor(upstream: ScriptedUpstream): Promise<TestGateway> {
  return await startTestGateway(`
auth:
  api_key:
    keys: [{ id: victim, sha256: "${sha256Hex(API_KEY)}" }]
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: open, path_prefix: /open, service_name: app }
  - { id: private, path_prefix: /private, service_name: app, auth_required: true }
`);
}

/**
 * The attacker's request (on the open route) makes the upstream misbehave;
 * after `wait` ms the victim asks the protected route with a valid key.
 */
async function attackThenVictim(
  misbehave: (conn: Deno.Conn, request: SeenRequest) => Promise<void>,
  options: { method?: string; wait: number },
): Promise<void> {
  const upstream = upstreamWhoseFirstAnswerIs(misbehave);
  const gw = await gatewayFor(upstream);
  try {
    const attack = await fetch(`${gw.url}/open/attack`, { method: options.method ?? "GET" });
    await attack.arrayBuffer();
    await sleep(options.wait);
    const victim = await fetch(`${gw.url}/private/account`, { headers: { "api-key": API_KEY } });
    assert.equal(victim.status, 200);
    assert.equal(await victim.text(), "answer for /private/account");
    assert.equal(victim.headers.get("x-vanguard-consumer"), null);
    // And the attacker does not get the victim's answer either.
    const again = await fetch(`${gw.url}/open/again`);
    assert.equal(await again.text(), "answer for /open/again");
  } finally {
    await gw.close();
    await upstream.close();
  }
}

Deno.test("pool: a second response sent 100 ms after a Content-Length body reaches no client", async () => {
  await attackThenVictim(async (conn) => {
    await send(conn, response("hello"));
    await sleep(100);
    await send(conn, INJECTED);
  }, { wait: 300 });
});

Deno.test("pool: a second response sent 100 ms after a chunked body reaches no client", async () => {
  await attackThenVictim(async (conn) => {
    await send(
      conn,
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    await sleep(100);
    await send(conn, INJECTED);
  }, { wait: 300 });
});

for (
  const [name, method, status] of [
    ["a body on a HEAD response", "HEAD", "200 OK"],
    ["a body on a 204 response", "GET", "204 No Content"],
    ["a body on a 304 response", "GET", "304 Not Modified"],
  ] as const
) {
  Deno.test(`pool: ${name}, sent in a later segment, reaches no client`, async () => {
    await attackThenVictim(async (conn) => {
      await send(conn, `HTTP/1.1 ${status}\r\ncontent-length: ${INJECTED.length}\r\n\r\n`);
      await sleep(100);
      await send(conn, INJECTED);
    }, { method, wait: 300 });
  });
}

Deno.test("pool: unsolicited bytes 500 ms into idle close the connection", async () => {
  await attackThenVictim(async (conn) => {
    await send(conn, response("hello"));
    await sleep(500);
    await send(conn, INJECTED);
  }, { wait: 700 });
});

Deno.test("pool: an idle connection the upstream closes is dropped, and the next request is served", async () => {
  const upstream = startScriptedUpstream(async (conn, request) => {
    await send(conn, response(`answer for ${request.path}`));
    if (request.connection === 0) return "close";
  });
  const gw = await gatewayFor(upstream);
  try {
    for (const path of ["/open/1", "/open/2"]) {
      const answer = await fetch(gw.url + path, { method: "POST", body: "x".repeat(2048) });
      assert.equal(answer.status, 200);
      assert.equal(await answer.text(), `answer for ${path}`);
      await sleep(50);
    }
    assert.equal(upstream.connections(), 2);
  } finally {
    await gw.close();
    await upstream.close();
  }
});
