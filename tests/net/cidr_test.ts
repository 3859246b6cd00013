import assert from "node:assert/strict";
import { CidrSet } from "../../lib/net/cidr.ts";
import { clientAddress } from "../../lib/net/client_address.ts";

Deno.test("CidrSet matches IPv4 ranges", () => {
  const set = new CidrSet(["10.0.0.0/8", "192.168.1.0/24"]);
  assert.equal(set.contains("10.0.0.1"), true);
  assert.equal(set.contains("10.255.255.255"), true);
  assert.equal(set.contains("192.168.1.77"), true);
  assert.equal(set.contains("11.0.0.1"), false);
  assert.equal(set.contains("192.168.2.1"), false);
  assert.equal(set.contains("9.255.255.255"), false);
});

Deno.test("CidrSet matches IPv6 ranges and keeps them apart from IPv4", () => {
  const set = new CidrSet(["fd00::/8", "::1/128"]);
  assert.equal(set.contains("fd12:3456::1"), true);
  assert.equal(set.contains("::1"), true);
  assert.equal(set.contains("0:0:0:0:0:0:0:1"), true);
  assert.equal(set.contains("::2"), false);
  assert.equal(set.contains("fe80::1"), false);
  assert.equal(set.contains("10.0.0.1"), false);
  assert.equal(new CidrSet(["::/0"]).contains("10.0.0.1"), false);
  assert.equal(new CidrSet(["0.0.0.0/0"]).contains("::1"), false);
});

Deno.test("CidrSet treats IPv4-mapped IPv6 addresses as IPv4", async (t) => {
  await t.step("a mapped address matches an IPv4 range", () => {
    const set = new CidrSet(["10.0.0.0/8"]);
    assert.equal(set.contains("::ffff:10.1.2.3"), true);
    assert.equal(set.contains("::ffff:a01:203"), true);
    assert.equal(set.contains("::ffff:11.1.2.3"), false);
  });
  await t.step("a mapped range matches IPv4 and mapped addresses", () => {
    const set = new CidrSet(["::ffff:10.0.0.0/104"]);
    assert.equal(set.contains("10.1.2.3"), true);
    assert.equal(set.contains("::ffff:10.1.2.3"), true);
    assert.equal(set.contains("11.1.2.3"), false);
    assert.equal(set.contains("::ffff:11.1.2.3"), false);
  });
  await t.step("a bare mapped address matches that one IPv4 address", () => {
    const set = new CidrSet(["::ffff:10.0.0.1"]);
    assert.equal(set.contains("10.0.0.1"), true);
    assert.equal(set.contains("10.0.0.2"), false);
  });
});

Deno.test("CidrSet accepts a bare address as a single-address range", () => {
  const v4 = new CidrSet(["127.0.0.1"]);
  assert.equal(v4.contains("127.0.0.1"), true);
  assert.equal(v4.contains("127.0.0.2"), false);
  const v6 = new CidrSet(["2001:db8::7"]);
  assert.equal(v6.contains("2001:db8::7"), true);
  assert.equal(v6.contains("2001:db8::8"), false);
});

Deno.test("CidrSet answers false for anything that is not an IP", () => {
  const set = new CidrSet(["0.0.0.0/0", "::/0"]);
  assert.equal(set.contains("10.0.0.1"), true, "the set does match real addresses");
  for (
    const value of [
      "",
      "garbage",
      "10.0.0.256",
      "10.0.0.1:80",
      "[::1]",
      "::ffff::1",
      "1.2.3.4/8",
      "unknown",
    ]
  ) {
    assert.equal(set.contains(value), false, JSON.stringify(value));
  }
});

Deno.test("an empty CidrSet contains nothing", () => {
  const set = new CidrSet([]);
  assert.equal(set.empty, true);
  assert.equal(set.contains("127.0.0.1"), false);
  assert.equal(new CidrSet(["::1"]).empty, false);
});

Deno.test("clientAddress() ignores X-Forwarded-For from an untrusted peer", () => {
  const trusted = new CidrSet(["10.0.0.0/8"]);
  assert.equal(clientAddress("203.0.113.9", trusted, "1.2.3.4"), "203.0.113.9");
  assert.equal(clientAddress("203.0.113.9", trusted, "10.0.0.1, 1.2.3.4"), "203.0.113.9");
  // With no trusted proxies at all, the header is never believed.
  assert.equal(clientAddress("10.0.0.1", new CidrSet([]), "1.2.3.4"), "10.0.0.1");
});

Deno.test("clientAddress() returns the peer when there is no X-Forwarded-For", () => {
  assert.equal(clientAddress("10.0.0.1", new CidrSet(["10.0.0.0/8"]), null), "10.0.0.1");
});

Deno.test("clientAddress() walks X-Forwarded-For right to left over trusted hops", () => {
  const trusted = new CidrSet(["10.0.0.0/8", "fd00::/8"]);
  assert.equal(clientAddress("10.0.0.1", trusted, "198.51.100.7"), "198.51.100.7");
  assert.equal(clientAddress("10.0.0.1", trusted, "198.51.100.7, 10.0.0.2"), "198.51.100.7");
  assert.equal(
    clientAddress("10.0.0.1", trusted, "6.6.6.6, 198.51.100.7, 10.0.0.3,10.0.0.2"),
    "198.51.100.7",
    "a client-written hop left of the first untrusted one is ignored",
  );
  assert.equal(clientAddress("fd00::1", trusted, "2001:db8::5, fd00::2"), "2001:db8::5");
  assert.equal(clientAddress("::ffff:10.0.0.1", trusted, "198.51.100.7"), "198.51.100.7");
});

Deno.test("clientAddress() returns the left-most hop when every hop is trusted", () => {
  const trusted = new CidrSet(["10.0.0.0/8"]);
  assert.equal(clientAddress("10.0.0.1", trusted, "10.0.0.9, 10.0.0.8"), "10.0.0.9");
});

Deno.test("clientAddress() returns the peer when a hop is not an IP", () => {
  const trusted = new CidrSet(["10.0.0.0/8"]);
  assert.equal(clientAddress("10.0.0.1", trusted, "unknown"), "10.0.0.1");
  assert.equal(clientAddress("10.0.0.1", trusted, "198.51.100.7, garbage"), "10.0.0.1");
  assert.equal(clientAddress("10.0.0.1", trusted, "198.51.100.7, 10.0.0.2:8080"), "10.0.0.1");
  assert.equal(clientAddress("10.0.0.1", trusted, ""), "10.0.0.1");
  assert.equal(clientAddress("10.0.0.1", trusted, "198.51.100.7,,10.0.0.2"), "10.0.0.1");
});
