/**
 * A consumer id becomes the X-Vanguard-Consumer header upstream: a JWT
 * `sub` (or a configured key id) that is not a valid header value must be
 * refused where it is made, never reach the request head.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { parseConfig } from "../../lib/config/load.ts";
import { startTestGateway } from "../helpers.ts";
import { response, send, startScriptedUpstream } from "../proxy/scripted_upstream.ts";

const SECRET = "0123456789abcdef0123456789abcdef-consumer-test";

function token(sub: string): Promise<string> {
  return new SignJWT({ sub })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(SECRET));
}

Deno.test("a JWT sub that is not a valid header value is refused with 401, and nothing is injected upstream", async () => {
  Deno.env.set("VANGUARD_CONSUMER_TEST_SECRET", SECRET);
  const upstream = startScriptedUpstream(async (conn, request) => {
    await send(conn, response(`answer for ${request.path}`));
  });
  const gw = await startTestGateway(`
auth:
  jwt:
    algorithms: [HS256]
    secret_env: VANGUARD_CONSUMER_TEST_SECRET
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: private, path_prefix: /, service_name: app, auth_required: true }
`);
  try {
    for (
      const sub of [
        "alice\r\nx-injected: 1",
        "alice\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
        "\u010d\u010ax-injected: 1",
        "alice\nx-injected: 1",
        "  ",
        "",
        " alice",
        "a".repeat(257),
      ]
    ) {
      const answer = await fetch(`${gw.url}/x`, {
        headers: { authorization: `Bearer ${await token(sub)}` },
      });
      assert.equal(answer.status, 401, JSON.stringify(sub));
      await answer.body?.cancel();
    }
    assert.equal(upstream.requests.length, 0);
    const good = await fetch(`${gw.url}/ok`, {
      headers: { authorization: `Bearer ${await token("alice@example.com")}` },
    });
    assert.equal(await good.text(), "answer for /ok");
    assert.equal(upstream.requests.length, 1);
    const consumer = upstream.requests[0].headers.filter(([name]) =>
      name === "x-vanguard-consumer"
    );
    assert.deepEqual(consumer, [["x-vanguard-consumer", "alice@example.com"]]);
    assert.ok(!upstream.requests.some((r) => r.headers.some(([name]) => name === "x-injected")));
  } finally {
    Deno.env.delete("VANGUARD_CONSUMER_TEST_SECRET");
    await gw.close();
    await upstream.close();
  }
});

Deno.test("an API key id that is not a valid consumer id fails validation at its line", () => {
  const result = parseConfig(
    `auth:
  api_key:
    keys:
      - { id: "bad id\\r\\nx-a: 1", sha256: "${"a".repeat(64)}" }
routes:
  - { path_prefix: /, service_name: app }
`,
    { displayPath: "gw.yaml", absolutePath: "/tmp/gw.yaml" },
  );
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.problems[0].line, 4);
  assert.equal(result.problems[0].field, "auth.api_key.keys[0].id");
  assert.match(result.problems[0].message, /printable ASCII/);
});
