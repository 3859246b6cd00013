/**
 * keySlot() computes the slot Redis Cluster computes (CRC16/XMODEM of the
 * hash tag, modulo 16384); the cluster tests check it against CLUSTER KEYSLOT
 * of a real cluster as well.
 */
import assert from "node:assert/strict";
import { crc16, keySlot } from "../../lib/ratelimit/key_slot.ts";

Deno.test("crc16() is CRC16/XMODEM: the check value of 123456789 is 0x31C3", () => {
  assert.equal(crc16(new TextEncoder().encode("123456789")), 0x31c3);
  assert.equal(crc16(new Uint8Array(0)), 0);
});

Deno.test("keySlot() hashes the hash tag when there is one, as the Redis Cluster spec says", () => {
  const rows: [string, string][] = [
    // [key, the part that is hashed]
    ["{user1000}.following", "user1000"],
    ["{user1000}.followers", "user1000"],
    ["foo{}{bar}", "foo{}{bar}"], // an empty tag: the whole key
    ["foo{{bar}}zap", "{bar"], // from the first { to the first } after it
    ["foo{bar}{zap}", "bar"], // only the first tag counts
    ["no tag at all", "no tag at all"],
    ["{unclosed", "{unclosed"],
    ["vanguard:rl:{orders:Zm9vYmFy}", "orders:Zm9vYmFy"],
  ];
  for (const [key, hashed] of rows) {
    assert.equal(keySlot(key), crc16(new TextEncoder().encode(hashed)) % 16384, key);
  }
  assert.equal(keySlot("123456789"), 12739);
  // Non-ASCII keys are hashed as UTF-8, as Redis sees their bytes.
  assert.equal(keySlot("{é}"), crc16(new Uint8Array([0xc3, 0xa9])) % 16384);
});
