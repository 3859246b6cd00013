import assert from "node:assert/strict";
import { closestName, didYouMean, editDistance } from "../../lib/config/did_you_mean.ts";

Deno.test("editDistance() counts a swap of neighbours as one edit", () => {
  const rows: [string, string, number][] = [
    ["port", "port", 0],
    ["prot", "port", 1], // swap
    ["wbe", "web", 1], // swap
    ["url", "urls", 1], // insertion
    ["hostt", "host", 1], // deletion
    ["pirt", "port", 1], // substitution
    ["servce_nmae", "service_name", 2], // insertion and swap
    ["", "abc", 3],
    ["abc", "", 3],
    ["ca", "abc", 3], // optimal string alignment: no edit of a swapped pair
  ];
  for (const [a, b, expected] of rows) {
    assert.equal(editDistance(a, b), expected, `${a} -> ${b}`);
    assert.equal(editDistance(b, a), expected, `${b} -> ${a}`);
  }
});

Deno.test("closestName() suggests the nearest name, ignoring case, within a bound that grows with length", () => {
  const keys = ["port", "host", "admin_port", "workers", "access_log"];
  assert.equal(closestName("prot", keys), "port");
  assert.equal(closestName("Port", keys), "port");
  assert.equal(closestName("HOST", keys), "host");
  assert.equal(closestName("acess_log", keys), "access_log");
  assert.equal(closestName("wrokers", keys), "workers");
  // Too far from everything: no guess.
  assert.equal(closestName("bogus", keys), undefined);
  assert.equal(closestName("admin", keys), undefined);
  // Short names: one edit turns any into any other, so only letter case counts.
  assert.equal(closestName("b", ["a"]), undefined);
  assert.equal(closestName("id", ["ip"]), undefined);
  assert.equal(closestName("ID", ["id"]), "id");
  // The name itself is not a suggestion; ties go to the first.
  assert.equal(closestName("port", ["port"]), undefined);
  assert.equal(closestName("abcd", ["abce", "abcf"]), "abce");
});

Deno.test("didYouMean() is a clause to append, or nothing", () => {
  assert.equal(didYouMean("prot", ["port"]), '; did you mean "port"?');
  assert.equal(didYouMean("zzzz", ["port"]), "");
});
