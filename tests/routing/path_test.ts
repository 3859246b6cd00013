import assert from "node:assert/strict";
import {
  canonicalizePath,
  type CanonicalPath,
  encodeSegment,
  isRejection,
  type PathRejection,
} from "../../lib/routing/path.ts";

function accepted(raw: string): CanonicalPath {
  const result = canonicalizePath(raw);
  assert.ok(
    !isRejection(result),
    `expected ${JSON.stringify(raw)} to be accepted, got ${JSON.stringify(result)}`,
  );
  return result;
}

function rejected(raw: string): PathRejection {
  const result = canonicalizePath(raw);
  assert.ok(
    isRejection(result),
    `expected ${JSON.stringify(raw)} to be rejected, got ${JSON.stringify(result)}`,
  );
  assert.equal(typeof result.rejected, "string");
  assert.ok(result.rejected.length > 0);
  return result;
}

Deno.test("canonicalizePath() returns plain paths unchanged", () => {
  for (const raw of ["/", "/users", "/users/", "/users/42", "/a-b_c.d~e/f", "/v1/items/x.json"]) {
    assert.deepEqual(canonicalizePath(raw), { path: raw, encoded: raw });
  }
});

Deno.test("canonicalizePath() rejects a path that does not start with /", () => {
  for (const raw of ["", "users", "*", "http://example.com/users", "%2Fusers"]) {
    rejected(raw);
  }
});

Deno.test("canonicalizePath() rejects encoded slashes, backslashes and control characters", async (t) => {
  await t.step("encoded slash in either case", () => {
    rejected("/a%2Fb");
    rejected("/a%2fb");
    rejected("/admin%2F..%2Fsecret");
  });
  await t.step("encoded backslash", () => {
    rejected("/a%5Cb");
    rejected("/a%5cb");
  });
  await t.step("literal backslash", () => {
    rejected("/a\\b");
    rejected("/\\admin");
  });
  await t.step("NUL and other control characters, encoded or literal", () => {
    for (const raw of ["/a%00b", "/a%01", "/a%0A", "/a%0d", "/a%09b", "/a%1F", "/a%7F", "/a\tb"]) {
      rejected(raw);
    }
  });
  await t.step("the rejection message names the problem", () => {
    assert.match(rejected("/a%2Fb").rejected, /slash/);
    assert.match(rejected("/a\\b").rejected, /backslash/);
  });
});

Deno.test("canonicalizePath() rejects dot-segments in every spelling", () => {
  const spellings = [
    "/a/../b",
    "/a/./b",
    "/..",
    "/.",
    "/a/..",
    "/a/.",
    "/a/../",
    "/a/%2e%2e/b",
    "/a/%2E%2E/b",
    "/a/.%2E/b",
    "/a/%2e./b",
    "/a/%2e/b",
    "/a/%2E",
    "//../admin",
  ];
  for (const raw of spellings) {
    assert.match(rejected(raw).rejected, /dot-segment/, raw);
  }
});

Deno.test("canonicalizePath() keeps segments that merely contain dots", () => {
  assert.deepEqual(canonicalizePath("/a/.../b"), { path: "/a/.../b", encoded: "/a/.../b" });
  assert.deepEqual(canonicalizePath("/a/..b/.c"), { path: "/a/..b/.c", encoded: "/a/..b/.c" });
  assert.deepEqual(accepted("/a/%2e%2e%2e"), { path: "/a/...", encoded: "/a/..." });
});

Deno.test("canonicalizePath() rejects invalid percent-encoding", () => {
  for (const raw of ["/a%zz", "/a%e9", "/caf%e9", "/%", "/a%", "/a%2", "/a%C3", "/a%ED%A0%80"]) {
    assert.match(rejected(raw).rejected, /percent-encoding/, raw);
  }
});

Deno.test("canonicalizePath() merges repeated slashes", () => {
  assert.deepEqual(accepted("//admin"), { path: "/admin", encoded: "/admin" });
  assert.deepEqual(accepted("/a///b/"), { path: "/a/b/", encoded: "/a/b/" });
  assert.deepEqual(accepted("/a//b"), { path: "/a/b", encoded: "/a/b" });
  assert.deepEqual(accepted("//"), { path: "/", encoded: "/" });
  assert.deepEqual(accepted("///"), { path: "/", encoded: "/" });
});

Deno.test("canonicalizePath() decodes unreserved escapes and re-encodes canonically", () => {
  assert.deepEqual(accepted("/us%65rs"), { path: "/users", encoded: "/users" });
  assert.deepEqual(accepted("/%55SERS/%31"), { path: "/USERS/1", encoded: "/USERS/1" });
});

Deno.test("canonicalizePath() round trips a space as %20", () => {
  assert.deepEqual(accepted("/a%20b"), { path: "/a b", encoded: "/a%20b" });
  assert.deepEqual(accepted("/a b"), { path: "/a b", encoded: "/a%20b" });
});

Deno.test("canonicalizePath() leaves sub-delimiters, ':' and '@' unencoded", () => {
  assert.deepEqual(accepted("/a:b@c$d&e+f,g=h"), {
    path: "/a:b@c$d&e+f,g=h",
    encoded: "/a:b@c$d&e+f,g=h",
  });
  // Spelled as escapes, they decode and come back readable.
  assert.deepEqual(accepted("/%3A%40%24%26%2B%2C%3D"), {
    path: "/:@$&+,=",
    encoded: "/:@$&+,=",
  });
});

Deno.test("canonicalizePath() rejects ';' path parameters, raw or encoded", () => {
  // Servlet containers cut a segment at ";" and other upstreams do not.
  for (const raw of ["/admin;x/y", "/a;", "/a/b;jsessionid=1", "/admin%3Bx/y", "/a%3b"]) {
    assert.match(rejected(raw).rejected, /';'/, raw);
  }
});

Deno.test("canonicalizePath() escapes what must not appear raw in a path", () => {
  assert.deepEqual(accepted("/a%3Fb%23c%25d"), { path: "/a?b#c%d", encoded: "/a%3Fb%23c%25d" });
});

Deno.test("canonicalizePath() decodes non-ASCII and re-encodes it as UTF-8", () => {
  assert.deepEqual(accepted("/caf%C3%A9"), { path: "/café", encoded: "/caf%C3%A9" });
  assert.deepEqual(accepted("/caf%c3%a9"), { path: "/café", encoded: "/caf%C3%A9" });
  assert.deepEqual(accepted("/café"), { path: "/café", encoded: "/caf%C3%A9" });
});

Deno.test("encodeSegment() encodes reserved characters and keeps pchar readable", () => {
  assert.equal(encodeSegment("users"), "users");
  assert.equal(encodeSegment("a b"), "a%20b");
  assert.equal(encodeSegment("é"), "%C3%A9");
  assert.equal(encodeSegment("a/b"), "a%2Fb");
  assert.equal(encodeSegment("a?b#c%"), "a%3Fb%23c%25");
  assert.equal(encodeSegment(":@$&+,="), ":@$&+,=");
  assert.equal(encodeSegment(";"), "%3B");
  assert.equal(encodeSegment("-._~!'()*"), "-._~!'()*");
});

Deno.test("canonicalizePath() gives the upstream, decoding once, the path the router saw", () => {
  const tricky = [
    "/",
    "/users",
    "/users/",
    "//admin",
    "/a///b/",
    "/us%65rs",
    "/%75%73%65%72%73/%31",
    "/a%20b",
    "/a+b",
    "/a%2Bb",
    "/a%252Fb",
    "/a%25",
    "/%25%32%46",
    "/caf%C3%A9",
    "/café",
    "/%E2%82%AC/%F0%9F%98%80",
    "/a:b@c$d&e+f,g=h",
    "/%3A%40%24%26%2B%2C%3D",
    "/a;b",
    "/a%3Fb%23c",
    "/a/.../b",
    "/a/%2e%2e%2e",
    "/~user/!'()*",
    "/%7Euser",
    "/a%22b%3Cc%3E",
    "/a%5Bb%5D",
    "/a/../b",
    "/a/%2e%2e/b",
    "/a%2Fb",
    "/a%5Cb",
    "/a%00",
    "/a%zz",
    "/a%e9",
    "relative",
    "/\\",
  ];
  let acceptedCount = 0;
  for (const raw of tricky) {
    const result = canonicalizePath(raw);
    if (isRejection(result)) continue;
    acceptedCount++;
    const decodedOnce = result.encoded.split("/").map((segment) => decodeURIComponent(segment))
      .join("/");
    assert.equal(decodedOnce, result.path, `decoding ${result.encoded} (from ${raw})`);
    assert.ok(!result.path.includes("//"), `no empty segment in ${result.path}`);
    assert.deepEqual(canonicalizePath(result.encoded), result, `idempotent for ${raw}`);
  }
  // The list must actually exercise the invariant, not reject everything.
  assert.equal(acceptedCount, 25);
  assert.equal(tricky.length - acceptedCount, 10);
});

Deno.test("canonicalizePath() keeps an encoded percent sign from being decoded twice", () => {
  // "%252F" is a literal "%2F" after one decode: it must not become a slash.
  assert.deepEqual(accepted("/a%252Fb"), { path: "/a%2Fb", encoded: "/a%252Fb" });
});

Deno.test("canonicalizePath() rejects a lone surrogate instead of throwing", () => {
  assert.match(rejected("/\uD800").rejected, /UTF-8/);
  assert.match(rejected("/a/b\uDFFFc").rejected, /UTF-8/);
});
