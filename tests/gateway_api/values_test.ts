/** The small value rules, one row per input: hostname intersection, durations, path values. */
import assert from "node:assert/strict";
import { intersectHostname } from "../../lib/gateway_api/hostnames.ts";
import { parseDuration } from "../../lib/gateway_api/http_rule.ts";
import { exactPath, prefixPath } from "../../lib/gateway_api/paths.ts";

Deno.test("intersectHostname() follows the Gateway API hostname table", () => {
  const rows: [string | undefined, string | undefined, string | undefined][] = [
    ["www.example.com", "www.example.com", "www.example.com"],
    ["*.example.com", "www.example.com", "www.example.com"],
    ["*.example.com", "sub.domain.example.com", "sub.domain.example.com"],
    ["www.example.com", "*.example.com", "www.example.com"],
    ["sub.domain.example.com", "*.example.com", "sub.domain.example.com"],
    ["*.example.com", "*.example.com", "*.example.com"],
    ["*.com", "*.example.com", "*.example.com"],
    ["*.example.com", "*.com", "*.example.com"],
    [undefined, "www.example.com", "www.example.com"],
    ["www.example.com", undefined, "www.example.com"],
    [undefined, undefined, "*"],
    ["*.example.com", "example.com", undefined], // a wildcard never matches its own suffix
    ["www.example.com", "api.example.com", undefined],
    ["*.example.com", "*.example.net", undefined],
    ["*.example.com", "notexample.com", undefined],
    ["WWW.Example.com", "www.example.COM", "www.example.com"],
  ];
  for (const [listener, route, expected] of rows) {
    assert.equal(intersectHostname(listener, route), expected, `${listener} x ${route}`);
  }
});

Deno.test("parseDuration() reads Gateway API durations (GEP-2257)", () => {
  const rows: [string, number | null][] = [
    ["10s", 10_000],
    ["500ms", 500],
    ["1m", 60_000],
    ["1h30m", 5_400_000],
    ["1m30s250ms", 90_250],
    ["0s", 0],
    ["10", null],
    ["1.5s", null],
    ["-1s", null],
    ["1d", null],
    ["1h1m1s1ms1h", null], // at most four parts
    ["", null],
  ];
  for (const [value, ms] of rows) assert.equal(parseDuration(value), ms, value);
});

Deno.test("prefixPath() and exactPath() give the routing model's path fields", () => {
  assert.deepEqual(prefixPath("/"), { pathPrefix: "/", prefixSegments: 0 });
  assert.deepEqual(prefixPath("/foo/"), { pathPrefix: "/foo", prefixSegments: 1 });
  assert.deepEqual(prefixPath("/a/b"), { pathPrefix: "/a/b", prefixSegments: 2 });
  assert.deepEqual(exactPath("/a/b/"), {
    pathPrefix: "/a/b/",
    pathKind: "exact",
    prefixSegments: 2,
  });
  assert.deepEqual(exactPath("/caf%C3%A9"), {
    pathPrefix: "/café",
    pathKind: "exact",
    prefixSegments: 1,
  });
  for (const bad of ["foo", "/a//b", "/a/../b", "/a%2Fb", "/a;b", "/a?b", "/%zz"]) {
    assert.ok("problem" in prefixPath(bad), bad);
  }
});
