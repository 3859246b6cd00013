import assert from "node:assert/strict";
import {
  checkHostPattern,
  type MatchRequest,
  requestHost,
  unsafePattern,
} from "../../lib/routing/match.ts";
import { countSegments, type RouteEntry, RoutingTable } from "../../lib/routing/table.ts";

function route(id: string, extra: Partial<RouteEntry> = {}): RouteEntry {
  const pathPrefix = extra.pathPrefix ?? "/";
  return {
    id,
    pathPrefix,
    prefixSegments: extra.pathKind === "regex" ? 0 : countSegments(pathPrefix),
    serviceName: `${id}-service`,
    authRequired: false,
    forwardCredentials: false,
    stripPrefix: false,
    source: "config",
    ...extra,
  };
}

function request(
  { host, method = "GET", headers = {}, query = "" }: {
    host?: string;
    method?: string;
    headers?: Record<string, string>;
    query?: string;
  } = {},
): MatchRequest {
  return { host, method, headers: new Headers(headers), query };
}

function matched(
  routes: RouteEntry[],
  path: string,
  req: MatchRequest = request(),
): string | undefined {
  return new RoutingTable(routes, new Map()).match(path, req)?.id;
}

interface PrecedenceCase {
  rule: string;
  /** Both match the request; `winner` must win whatever order they are given in. */
  winner: RouteEntry;
  loser: RouteEntry;
  path: string;
  req: MatchRequest;
  /** Config order decides: the winner only wins when given first. */
  orderMatters?: boolean;
}

const PRECEDENCE: PrecedenceCase[] = [
  {
    rule: "an exact host beats a wildcard host",
    winner: route("exact-host", { hosts: ["a.example.com"] }),
    loser: route("wildcard", { hosts: ["*.example.com"] }),
    path: "/x",
    req: request({ host: "a.example.com" }),
  },
  {
    rule: "the longest wildcard host beats a shorter one",
    winner: route("long-wildcard", { hosts: ["*.b.example.com"] }),
    loser: route("short-wildcard", { hosts: ["*.example.com"] }),
    path: "/x",
    req: request({ host: "a.b.example.com" }),
  },
  {
    rule: "a wildcard host beats no host",
    winner: route("wildcard", { hosts: ["*.example.com"] }),
    loser: route("any-host"),
    path: "/x",
    req: request({ host: "a.example.com" }),
  },
  {
    rule: "a host match beats a longer path without host",
    winner: route("host", { hosts: ["a.example.com"], pathPrefix: "/" }),
    loser: route("long-path", { pathPrefix: "/x/y" }),
    path: "/x/y",
    req: request({ host: "a.example.com" }),
  },
  {
    rule: "an exact path beats a prefix of the same path",
    winner: route("exact", { pathKind: "exact", pathPrefix: "/x/y" }),
    loser: route("prefix", { pathPrefix: "/x/y" }),
    path: "/x/y",
    req: request(),
  },
  {
    rule: "the longest prefix beats a shorter one",
    winner: route("long", { pathPrefix: "/x/y" }),
    loser: route("short", { pathPrefix: "/x" }),
    path: "/x/y/z",
    req: request(),
  },
  {
    rule: "a prefix beats a regex",
    winner: route("prefix", { pathPrefix: "/" }),
    loser: route("regex", { pathKind: "regex", pathPrefix: "/x/[a-z]+" }),
    path: "/x/y",
    req: request(),
  },
  {
    rule: "a method match beats more header matches",
    winner: route("method", { pathPrefix: "/x", methods: ["GET"] }),
    loser: route("headers", {
      pathPrefix: "/x",
      headers: [{ name: "a", value: "1" }, { name: "b", present: true }],
    }),
    path: "/x",
    req: request({ headers: { a: "1", b: "2" } }),
  },
  {
    rule: "more header matches beat fewer",
    winner: route("two-headers", {
      pathPrefix: "/x",
      headers: [{ name: "a", value: "1" }, { name: "b", present: true }],
    }),
    loser: route("one-header", { pathPrefix: "/x", headers: [{ name: "a", value: "1" }] }),
    path: "/x",
    req: request({ headers: { a: "1", b: "2" } }),
  },
  {
    rule: "a header match beats more query matches",
    winner: route("header", { pathPrefix: "/x", headers: [{ name: "a", present: true }] }),
    loser: route("queries", {
      pathPrefix: "/x",
      query: [{ name: "p", value: "1" }, { name: "q", value: "2" }],
    }),
    path: "/x",
    req: request({ headers: { a: "1" }, query: "?p=1&q=2" }),
  },
  {
    rule: "more query matches beat fewer",
    winner: route("two-params", {
      pathPrefix: "/x",
      query: [{ name: "p", value: "1" }, { name: "q", regex: "[0-9]" }],
    }),
    loser: route("one-param", { pathPrefix: "/x", query: [{ name: "p", value: "1" }] }),
    path: "/x",
    req: request({ query: "?q=2&p=1" }),
  },
  {
    rule: "then config order",
    winner: route("first", { pathPrefix: "/x", methods: ["GET"] }),
    loser: route("second", { pathPrefix: "/x", methods: ["GET", "POST"] }),
    path: "/x",
    req: request(),
    orderMatters: true,
  },
];

for (const c of PRECEDENCE) {
  Deno.test(`match() precedence: ${c.rule}`, () => {
    assert.equal(matched([c.winner, c.loser], c.path, c.req), c.winner.id);
    if (c.orderMatters) {
      assert.equal(matched([c.loser, c.winner], c.path, c.req), c.loser.id);
    } else {
      assert.equal(matched([c.loser, c.winner], c.path, c.req), c.winner.id);
    }
    // The loser does match on its own: the case tests precedence, not a mismatch.
    assert.equal(matched([c.loser], c.path, c.req), c.loser.id);
  });
}

Deno.test("match() falls back to a less specific host when the specific one has no route for the path", () => {
  const routes = [
    route("exact-host", { hosts: ["a.example.com"], pathPrefix: "/only" }),
    route("wildcard", { hosts: ["*.example.com"], pathPrefix: "/wild" }),
    route("any", { pathPrefix: "/" }),
  ];
  assert.equal(matched(routes, "/only", request({ host: "a.example.com" })), "exact-host");
  assert.equal(matched(routes, "/wild", request({ host: "a.example.com" })), "wildcard");
  assert.equal(matched(routes, "/other", request({ host: "a.example.com" })), "any");
});

Deno.test("match() compares hosts exactly, or by wildcard with one or more labels but never the apex", () => {
  const routes = [
    route("exact", { hosts: ["api.example.com"], pathPrefix: "/" }),
    route("wild", { hosts: ["*.example.com"], pathPrefix: "/" }),
  ];
  const at = (host: string | undefined) => matched(routes, "/", request({ host }));
  assert.equal(at("api.example.com"), "exact");
  assert.equal(at("web.example.com"), "wild");
  assert.equal(at("a.b.c.example.com"), "wild");
  assert.equal(at("example.com"), undefined);
  assert.equal(at("api.example.org"), undefined);
  assert.equal(at("notexample.com"), undefined);
  assert.equal(at(undefined), undefined);
});

Deno.test("requestHost() lowercases the authority and drops the port and a trailing dot", () => {
  const cases: [string, string | undefined][] = [
    ["http://API.Example.COM/x", "api.example.com"],
    ["http://api.example.com:8443/x?y", "api.example.com"],
    ["https://api.example.com.:443", "api.example.com"],
    ["http://api.example.com?q=1", "api.example.com"],
    ["http://[::1]:8000/", "[::1]"],
    ["http://[::1]/", "[::1]"],
    ["http://127.0.0.1:80/", "127.0.0.1"],
  ];
  for (const [url, host] of cases) assert.equal(requestHost(url), host, url);
});

Deno.test("match() with an uppercase Host and a port finds the host's route", () => {
  const routes = [route("api", { hosts: ["api.example.com"] })];
  const host = requestHost("http://API.EXAMPLE.com:8000/users");
  assert.equal(matched(routes, "/users", request({ host })), "api");
});

Deno.test("match() path_exact matches that path only; path_regex the whole path", () => {
  const routes = [
    route("exact", { pathKind: "exact", pathPrefix: "/healthz" }),
    route("regex", { pathKind: "regex", pathPrefix: "/v[0-9]+/users" }),
  ];
  assert.equal(matched(routes, "/healthz"), "exact");
  assert.equal(matched(routes, "/healthz/x"), undefined);
  assert.equal(matched(routes, "/healthz/"), undefined);
  assert.equal(matched(routes, "/v2/users"), "regex");
  assert.equal(matched(routes, "/v2/users/7"), undefined, "anchored at the end");
  assert.equal(matched(routes, "/x/v2/users"), undefined, "anchored at the start");
  // A user-written ^...$ is the same thing.
  assert.equal(
    matched(
      [route("anchored", { pathKind: "regex", pathPrefix: "^/v[0-9]+/users$" })],
      "/v10/users",
    ),
    "anchored",
  );
});

Deno.test("match() requires one of the listed methods", () => {
  const routes = [route("writes", { pathPrefix: "/x", methods: ["POST", "PUT"] })];
  assert.equal(matched(routes, "/x", request({ method: "POST" })), "writes");
  assert.equal(matched(routes, "/x", request({ method: "PUT" })), "writes");
  assert.equal(matched(routes, "/x", request({ method: "GET" })), undefined);
});

Deno.test("match() requires every header: by value, by whole-value regex, or present", () => {
  const routes = [route("canary", {
    pathPrefix: "/",
    headers: [
      { name: "x-canary", value: "true" },
      { name: "x-version", regex: "v[0-9]+" },
      { name: "x-user", present: true },
    ],
  })];
  const all = { "X-Canary": "true", "X-Version": "v2", "X-User": "" };
  assert.equal(matched(routes, "/", request({ headers: all })), "canary");
  assert.equal(
    matched(routes, "/", request({ headers: { ...all, "X-Canary": "TRUE" } })),
    undefined,
  );
  assert.equal(
    matched(routes, "/", request({ headers: { ...all, "X-Version": "v2x" } })),
    undefined,
  );
  const { "X-User": _, ...withoutUser } = all;
  assert.equal(matched(routes, "/", request({ headers: withoutUser })), undefined);
});

Deno.test("match() requires every query parameter: by value, by regex, or present", () => {
  const routes = [route("v2", {
    pathPrefix: "/",
    query: [
      { name: "version", value: "2" },
      { name: "id", regex: "[0-9]+" },
      { name: "debug", present: true },
    ],
  })];
  assert.equal(matched(routes, "/", request({ query: "?version=2&id=17&debug" })), "v2");
  assert.equal(matched(routes, "/", request({ query: "?version=3&id=17&debug" })), undefined);
  assert.equal(matched(routes, "/", request({ query: "?version=2&id=17a&debug" })), undefined);
  assert.equal(matched(routes, "/", request({ query: "?version=2&id=17" })), undefined);
  assert.equal(matched(routes, "/", request({ query: "?Version=2&id=1&debug" })), undefined);
});

Deno.test("match() on a conditional table without the request only finds routes that need none", () => {
  const t = new RoutingTable([
    route("host", { hosts: ["a.example"], pathPrefix: "/" }),
    route("plain", { pathPrefix: "/p" }),
  ], new Map());
  assert.equal(t.conditional, true);
  assert.equal(t.match("/p/1")?.id, "plain");
  assert.equal(t.match("/q"), undefined);
});

Deno.test("a table of plain prefixes is not conditional", () => {
  assert.equal(new RoutingTable([route("a", { pathPrefix: "/a" })], new Map()).conditional, false);
});

Deno.test("match() on a conditional table keeps case-insensitive prefixes and exact paths", () => {
  const routes = [
    route("folded", { pathPrefix: "/admin", caseInsensitive: true }),
    route("exact", { pathKind: "exact", pathPrefix: "/Status", caseInsensitive: true }),
    route("host", { hosts: ["h.example"], pathPrefix: "/other" }),
  ];
  assert.equal(matched(routes, "/ADMIN/x"), "folded");
  assert.equal(matched(routes, "/status"), "exact");
});

Deno.test("RoutingTable.fromData() of a structured clone matches like the original, config order included", () => {
  const original = new RoutingTable(
    [
      route("z-second", { pathPrefix: "/x", methods: ["GET"] }),
      route("a-first", { pathPrefix: "/x", methods: ["GET"], hosts: ["h.example"] }),
      route("b-order", { pathPrefix: "/same", headers: [{ name: "a", present: true }] }),
      route("a-order", { pathPrefix: "/same", headers: [{ name: "a", regex: "[0-9]+" }] }),
      route("regex", { pathKind: "regex", pathPrefix: "/r/[a-z]+" }),
      route("exact", { pathKind: "exact", pathPrefix: "/e" }),
    ],
    new Map(),
    3,
  );
  const copy = RoutingTable.fromData(structuredClone(original.toData()));
  assert.equal(copy.conditional, true);
  const cases: [string, MatchRequest][] = [
    ["/x", request({ host: "h.example" })],
    ["/x", request({ host: "other" })],
    ["/same", request({ headers: { a: "1" } })],
    ["/r/abc", request()],
    ["/e", request()],
    ["/nothing", request()],
  ];
  for (const [path, req] of cases) {
    assert.equal(copy.match(path, req)?.id, original.match(path, req)?.id, path);
  }
  assert.equal(copy.match("/same", request({ headers: { a: "1" } }))?.id, "b-order");
  assert.equal(copy.match("/r/abc", request())?.id, "regex");
});

Deno.test("checkHostPattern() lowercases names and allows a wildcard only as the first label", () => {
  assert.deepEqual(checkHostPattern("API.Example.com"), { host: "api.example.com" });
  assert.deepEqual(checkHostPattern("*.example.com"), { host: "*.example.com" });
  for (
    const bad of ["api.*.com", "a*.example.com", "*", "example.com:8080", "*.", "a..b", "-a.b"]
  ) {
    assert.ok("problem" in checkHostPattern(bad), bad);
  }
});

Deno.test("unsafePattern() refuses patterns that can backtrack catastrophically, and long ones", () => {
  for (
    const bad of [
      "(a+)+",
      "(a*)*b",
      "(?:a|a)*",
      "(a|b)+",
      "((ab)*)+",
      "(x+x+)+y",
      "(a+){2,}",
      "(.*a){12}",
      "(a)\\1",
      "(?<n>a)\\k<n>",
      "(?=a)a",
      "(?!a)b",
      "(?<=a)b",
      "(?<!a)b",
      "a".repeat(257),
    ]
  ) {
    assert.notEqual(unsafePattern(bad), undefined, bad);
  }
  for (
    const good of [
      "^/v[0-9]+/users$",
      "/users/[^/]+/orders/[0-9]{1,10}",
      "/(v1|v2)/x",
      "/(?:ab)?c",
      "/(?<version>v[0-9]+)/x",
      "[(+)*]+",
      "/a\\+b+",
    ]
  ) {
    assert.equal(unsafePattern(good), undefined, good);
  }
});
