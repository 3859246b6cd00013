/**
 * case_insensitive end to end: an upstream that reads /ADMIN as /admin must
 * not be reachable around a protected /admin prefix by changing the case.
 */
import assert from "node:assert/strict";
import { sha256Hex, startTestGateway, startUpstream } from "../helpers.ts";

const KEY = "case-test-key-0123456789";

async function gatewayFor(upstreamUrl: string, caseInsensitive: boolean) {
  const digest = await sha256Hex(new TextEncoder().encode(KEY));
  return startTestGateway(`
auth:
  api_key:
    keys: [{ id: ops, sha256: "${digest}" }]
services:
  app: { urls: [${upstreamUrl}] }
routes:
  - id: admin
    path_prefix: /admin
    service_name: app
    auth_required: true
    case_insensitive: ${caseInsensitive}
  - { id: open, path_prefix: /, service_name: app }
`);
}

Deno.test("case_insensitive: /ADMIN gets the protected /admin route's 401, not the open / route", async () => {
  const seen: string[] = [];
  const upstream = startUpstream((request) => {
    const url = new URL(request.url);
    seen.push(url.pathname + url.search);
    return new Response(`upstream saw ${url.pathname}`);
  });
  try {
    // Without the option the other spelling falls to the open route: the bypass.
    const plain = await gatewayFor(upstream.url, false);
    try {
      const answer = await fetch(`${plain.url}/ADMIN/users`);
      assert.equal(answer.status, 200);
      assert.equal(await answer.text(), "upstream saw /ADMIN/users");
    } finally {
      await plain.close();
    }
    seen.length = 0;

    const gw = await gatewayFor(upstream.url, true);
    try {
      for (const path of ["/ADMIN/users", "/Admin", "/aDmIn/x?y=1", "/%41DMIN/users"]) {
        const answer = await fetch(`${gw.url}${path}`);
        assert.equal(answer.status, 401, path);
        assert.ok(answer.headers.has("www-authenticate"), path);
        assert.equal((await answer.json()).error, "unauthorized", path);
      }
      assert.deepEqual(seen, []);
      // With a key it is the admin route, and the upstream gets the path as sent.
      const admitted = await fetch(`${gw.url}/ADMIN/users?page=2`, { headers: { "api-key": KEY } });
      assert.equal(admitted.status, 200);
      assert.equal(await admitted.text(), "upstream saw /ADMIN/users");
      assert.deepEqual(seen, ["/ADMIN/users?page=2"]);
      // Other prefixes keep their case rules: /ADMINX is not /admin.
      const other = await fetch(`${gw.url}/ADMINX`);
      assert.equal(other.status, 200);
      await other.body?.cancel();
    } finally {
      await gw.close();
    }
  } finally {
    await upstream.close();
  }
});
