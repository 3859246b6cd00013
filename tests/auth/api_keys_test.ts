/** ApiKeys.verify: digests only in the config, and a key once verified answered from memory. */
import assert from "node:assert/strict";
import { ApiKeys, sha256Hex } from "../../lib/auth/api_keys.ts";

Deno.test("ApiKeys.verify() answers a key verified before the same way, and every other key as it would the first time", () => {
  const keys = new ApiKeys({
    header: "API-Key",
    keys: [
      { id: "mobile", sha256: sha256Hex("mobile-key-0123456789") },
      { id: "web", valueEnv: "WEB_KEY" },
    ],
  }, (name) => name === "WEB_KEY" ? "web-key-0123456789ab" : undefined);
  for (let i = 0; i < 3; i++) {
    assert.equal(keys.verify("mobile-key-0123456789"), "mobile");
    assert.equal(keys.verify("web-key-0123456789ab"), "web");
  }
  // Near misses of a remembered key are refused: only the exact key is remembered.
  for (
    const wrong of ["mobile-key-012345678", "mobile-key-01234567890", "Mobile-key-0123456789", ""]
  ) {
    assert.equal(keys.verify(wrong), undefined, JSON.stringify(wrong));
  }
  // A new instance (a reload) knows only its own keys.
  const reloaded = new ApiKeys({
    header: "API-Key",
    keys: [{ id: "mobile", sha256: sha256Hex("rotated-key-0123456789") }],
  }, () => undefined);
  assert.equal(reloaded.verify("mobile-key-0123456789"), undefined);
  assert.equal(reloaded.verify("rotated-key-0123456789"), "mobile");
});
