/**
 * HTTPRoute rules as a user sees them: which route a request reaches in a
 * routing table built from the translation, and what that route does.
 */
import assert from "node:assert/strict";
import { LONGEST_TIMEOUT_MS } from "../../lib/gateway_api/http_rule.ts";
import { reach, routeCondition, routeId, statusOf, translate } from "./fixtures.ts";

/** An HTTPRoute in namespace shop attached to the base Gateway, with these rules. */
function httpRoute(
  name: string,
  rules: string,
  extra: { created?: string; hostnames?: string } = {},
) {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: shop
  generation: 2
  creationTimestamp: "${extra.created ?? "2024-01-01T00:00:00Z"}"
spec:
  parentRefs: [{ name: edge, namespace: infra }]
  ${extra.hostnames ?? ""}
  rules:
${rules}`;
}

Deno.test("translateGatewayApi() makes one route per rule and match, served on any host", () => {
  const result = translate(httpRoute(
    "store",
    `
    - matches:
        - path: { type: PathPrefix, value: /cart }
        - path: { type: Exact, value: /checkout }
      backendRefs: [{ name: web, port: 80 }]
    - backendRefs: [{ name: api, port: 8080 }]`,
  ));
  assert.deepEqual(result.routes.map((r) => r.id), [
    "gw-shop.store-r0-m0",
    "gw-shop.store-r0-m1",
    "gw-shop.store-r1-m0",
  ]);
  const cart = result.routes[0];
  assert.equal(cart.pathPrefix, "/cart");
  assert.equal(cart.prefixSegments, 1);
  assert.equal(cart.hosts, undefined);
  assert.equal(cart.preserveHost, true);
  assert.equal(cart.source, "kubernetes");
  assert.deepEqual(cart.backends, [{ serviceName: "web.shop:80", weight: 1 }]);
  assert.equal(cart.serviceName, "web.shop:80");
  // The rule without matches is PathPrefix "/": everything else.
  assert.equal(routeId(result.table, "http://any.host/anything"), "gw-shop.store-r1-m0");
  assert.deepEqual(routeCondition(result, "store", "Accepted"), ["True", "Accepted"]);
  assert.deepEqual(routeCondition(result, "store", "ResolvedRefs"), ["True", "ResolvedRefs"]);
});

Deno.test("translateGatewayApi() path matches: PathPrefix per element, Exact, RegularExpression", () => {
  const { table } = translate(httpRoute(
    "paths",
    `
    - matches: [{ path: { type: PathPrefix, value: /shop/ } }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: Exact, value: /healthz } }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: RegularExpression, value: "/v[0-9]+/items" } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: Exact, value: /caf%C3%A9 } }]
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  const cases: [string, string][] = [
    ["/shop", "gw-shop.paths-r0-m0"], // a trailing slash of the prefix is ignored
    ["/shop/", "gw-shop.paths-r0-m0"],
    ["/shop/cart/1", "gw-shop.paths-r0-m0"],
    ["/shopping", "404"], // element by element, never by characters
    ["/healthz", "gw-shop.paths-r1-m0"],
    ["/healthz/", "404"],
    ["/v2/items", "gw-shop.paths-r2-m0"],
    ["/v2/items/7", "404"], // the regex matches the whole path
    ["/caf%C3%A9", "gw-shop.paths-r3-m0"], // percent-encoded values match the decoded path
  ];
  for (const [path, id] of cases) {
    assert.equal(routeId(table, `http://example.com${path}`), id, path);
  }
});

Deno.test("translateGatewayApi() header, query and method matches, most specific first", () => {
  const { table, routes } = translate(httpRoute(
    "api",
    `
    - matches: [{ path: { value: /api } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches:
        - path: { value: /api }
          headers:
            - { name: X-Canary, value: "true" }
            - { name: x-canary, value: ignored-second-entry }
            - { name: X-Version, type: RegularExpression, value: "v[2-3]" }
      backendRefs: [{ name: web-v2, port: 80 }]
    - matches:
        - path: { value: /api }
          queryParams: [{ name: Debug, value: "1" }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { value: /api }, method: DELETE }]
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  assert.deepEqual(routes[1].headers, [
    { name: "x-canary", value: "true" },
    { name: "x-version", regex: "v[2-3]" },
  ]);
  const url = "http://example.com/api/orders";
  assert.equal(routeId(table, url), "gw-shop.api-r0-m0");
  assert.equal(
    routeId(table, url, { headers: { "X-Canary": "true", "X-Version": "v3" } }),
    "gw-shop.api-r1-m0",
  );
  assert.equal(
    routeId(table, url, { headers: { "X-Canary": "true", "X-Version": "v4" } }),
    "gw-shop.api-r0-m0",
  );
  assert.equal(routeId(table, `${url}?Debug=1`), "gw-shop.api-r2-m0");
  assert.equal(
    routeId(table, `${url}?debug=1`),
    "gw-shop.api-r0-m0",
    "query names are case-sensitive",
  );
  // A method match outranks header matches (spec precedence).
  assert.equal(
    routeId(table, url, { method: "DELETE", headers: { "X-Canary": "true", "X-Version": "v2" } }),
    "gw-shop.api-r3-m0",
  );
});

Deno.test("translateGatewayApi() breaks ties by age, then namespace/name, then rule order", () => {
  const same = `
    - matches: [{ path: { value: /same } }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { value: /same } }]
      backendRefs: [{ name: api, port: 8080 }]`;
  const { table, routes } = translate([
    httpRoute("b-newer", same, { created: "2024-06-01T00:00:00Z" }),
    httpRoute("z-older", same, { created: "2024-01-01T00:00:00Z" }),
    httpRoute("a-newer", same, { created: "2024-06-01T00:00:00Z" }),
  ].join("\n---\n"));
  assert.deepEqual(routes.map((r) => r.id), [
    "gw-shop.z-older-r0-m0",
    "gw-shop.z-older-r1-m0",
    "gw-shop.a-newer-r0-m0",
    "gw-shop.a-newer-r1-m0",
    "gw-shop.b-newer-r0-m0",
    "gw-shop.b-newer-r1-m0",
  ]);
  assert.equal(routeId(table, "http://example.com/same"), "gw-shop.z-older-r0-m0");
});

Deno.test("translateGatewayApi() header modifiers become lowercase header changes", () => {
  const { routes } = translate(httpRoute(
    "headers",
    `
    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: X-Env, value: prod }]
            add: [{ name: X-Trace, value: "a,b" }]
            remove: [X-Internal]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{ name: Cache-Control, value: no-store }]
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  assert.deepEqual(routes[0].requestHeaders, {
    set: [["x-env", "prod"]],
    add: [["x-trace", "a,b"]],
    remove: ["x-internal"],
  });
  assert.deepEqual(routes[0].responseHeaders, {
    set: [["cache-control", "no-store"]],
    add: [],
    remove: [],
  });
});

Deno.test("translateGatewayApi() RequestRedirect: status 302 unless given, path kinds, no backend", () => {
  const { routes, table } = translate(httpRoute(
    "moved",
    `
    - matches: [{ path: { value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect:
            hostname: new.example.com
            path: { type: ReplacePrefixMatch, replacePrefixMatch: /new/ }
    - matches: [{ path: { type: Exact, value: /login } }]
      filters:
        - type: RequestRedirect
          requestRedirect:
            scheme: https
            port: 8443
            statusCode: 301
            path: { type: ReplaceFullPath, replaceFullPath: /auth/login }`,
  ));
  assert.deepEqual(routes[0].redirect, {
    host: "new.example.com",
    pathPrefix: "/new",
    status: 302,
  });
  assert.equal(routes[0].backends, undefined);
  assert.equal(routes[0].serviceName, "");
  assert.deepEqual(routes[1].redirect, {
    scheme: "https",
    port: 8443,
    path: "/auth/login",
    status: 301,
  });
  assert.equal(reach(table, "http://example.com/old/page")?.redirect?.pathPrefix, "/new");
});

Deno.test("translateGatewayApi() URLRewrite and RequestMirror", () => {
  const { routes } = translate(httpRoute(
    "rewrite",
    `
    - matches: [{ path: { value: /legacy } }]
      filters:
        - type: URLRewrite
          urlRewrite:
            hostname: internal.shop.svc
            path: { type: ReplacePrefixMatch, replacePrefixMatch: "" }
        - type: RequestMirror
          requestMirror:
            backendRef: { name: web-v2, port: 80 }
            fraction: { numerator: 1, denominator: 4 }
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { value: /full } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /index.html } }
        - type: RequestMirror
          requestMirror: { backendRef: { name: api, port: 8080 } }
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { value: /tenth } }]
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: api, port: 8080 }, percent: 10 }
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  // An empty ReplacePrefixMatch strips the prefix ("/legacy/x" -> "/x").
  assert.deepEqual(routes[0].rewrite, { host: "internal.shop.svc", pathPrefix: "/" });
  assert.deepEqual(routes[0].mirror, { serviceName: "web-v2.shop:80", percent: 25 });
  assert.deepEqual(routes[1].rewrite, { path: "/index.html" });
  assert.deepEqual(routes[1].mirror, { serviceName: "api.shop:8080", percent: 100 });
  assert.deepEqual(routes[2].mirror, { serviceName: "api.shop:8080", percent: 10 });
});

Deno.test("translateGatewayApi() weights split traffic; weight defaults to 1", () => {
  const { table } = translate(httpRoute(
    "canary",
    `
    - backendRefs:
        - { name: web, port: 80, weight: 90 }
        - { name: web-v2, port: 80, weight: 10 }
        - { name: api, port: 8080 }
        - { name: api, port: 9090, weight: 0 }`,
  ));
  assert.deepEqual(reach(table, "http://example.com/")?.backends, [
    { serviceName: "web.shop:80", weight: 90 },
    { serviceName: "web-v2.shop:80", weight: 10 },
    { serviceName: "api.shop:8080", weight: 1 },
    { serviceName: "api.shop:9090", weight: 0 },
  ]);
  // Every name a backend uses is one the table knows.
  for (const backend of reach(table, "http://example.com/")!.backends!) {
    assert.ok(table.service(backend.serviceName), backend.serviceName);
  }
});

Deno.test("translateGatewayApi() unresolvable backendRefs answer 500 for their share", () => {
  const cases: { ref: string; reason: string; message: RegExp }[] = [
    {
      ref: "{ name: gone, port: 80 }",
      reason: "BackendNotFound",
      message: /Service shop\/gone does not exist/,
    },
    { ref: "{ name: web, port: 81 }", reason: "BackendNotFound", message: /has no port 81/ },
    { ref: "{ name: web }", reason: "BackendNotFound", message: /needs a port/ },
    {
      ref: "{ name: bucket, kind: S3Bucket, group: storage.example.com, port: 80 }",
      reason: "InvalidKind",
      message: /S3Bucket\.storage\.example\.com/,
    },
    {
      ref: "{ name: db, namespace: data, port: 5432 }",
      reason: "RefNotPermitted",
      message: /no ReferenceGrant in namespace data/,
    },
  ];
  for (const { ref, reason, message } of cases) {
    const result = translate(httpRoute(
      "broken",
      `
    - backendRefs:
        - { name: web, port: 80 }
        - ${ref}`,
    ));
    const backends = result.routes[0].backends!;
    assert.deepEqual(backends[0], { serviceName: "web.shop:80", weight: 1 });
    assert.match(backends[1].unresolved ?? "", message, ref);
    assert.equal(backends[1].weight, 1);
    assert.deepEqual(routeCondition(result, "broken", "ResolvedRefs"), ["False", reason], ref);
    // The route itself is still accepted: its other backend serves.
    assert.deepEqual(routeCondition(result, "broken", "Accepted"), ["True", "Accepted"], ref);
  }
});

Deno.test("translateGatewayApi() a cross-namespace backendRef needs a ReferenceGrant", () => {
  const yaml = httpRoute(
    "cross",
    `
    - backendRefs: [{ name: db, namespace: data, port: 5432 }]`,
  ) + `
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: data }
spec: { ports: [{ port: 5432 }] }`;
  const grant = `
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: shop-to-db, namespace: data }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop }]
  to: [{ group: "", kind: Service, name: db }]`;
  const denied = translate(yaml);
  assert.match(denied.routes[0].backends![0].unresolved ?? "", /not permitted/);
  assert.deepEqual(routeCondition(denied, "cross", "ResolvedRefs"), ["False", "RefNotPermitted"]);
  const granted = translate(yaml + grant);
  assert.deepEqual(granted.routes[0].backends, [{ serviceName: "db.data:5432", weight: 1 }]);
  assert.deepEqual(routeCondition(granted, "cross", "ResolvedRefs"), ["True", "ResolvedRefs"]);
});

Deno.test("translateGatewayApi() a rule without a backend answers 500; so does an ExtensionRef", () => {
  const result = translate(httpRoute(
    "empty",
    `
    - matches: [{ path: { value: /nothing } }]
    - matches: [{ path: { value: /zero } }]
      backendRefs: [{ name: web, port: 80, weight: 0 }]
    - matches: [{ path: { value: /ext } }]
      filters: [{ type: ExtensionRef, extensionRef: { group: example.com, kind: Auth, name: a } }]
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  const [nothing, zero, ext] = result.routes;
  assert.match(nothing.backends![0].unresolved ?? "", /no backendRefs/);
  assert.match(zero.backends![0].unresolved ?? "", /weight 0/);
  assert.equal(zero.backends!.length, 1);
  assert.match(
    ext.backends![0].unresolved ?? "",
    /ExtensionRef Auth\.example\.com a is not supported/,
  );
  assert.deepEqual(routeCondition(result, "empty", "ResolvedRefs"), ["False", "InvalidKind"]);
});

Deno.test("translateGatewayApi() timeouts: backendRequest, else request; 0s means none", () => {
  const cases: [string, number | undefined][] = [
    ["{ request: 10s }", 10_000],
    ["{ request: 10s, backendRequest: 500ms }", 500],
    ["{ request: 1m30s }", 90_000],
    ["{ backendRequest: 1h }", 3_600_000],
    ["{ request: 0s }", LONGEST_TIMEOUT_MS],
    ["{}", undefined],
  ];
  for (const [timeouts, ms] of cases) {
    const { routes } = translate(httpRoute(
      "slow",
      `
    - timeouts: ${timeouts}
      backendRefs: [{ name: web, port: 80 }]`,
    ));
    assert.equal(routes[0].timeoutMs, ms, timeouts);
  }
  const bad = translate(httpRoute(
    "slow",
    `
    - timeouts: { request: "10" }
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  assert.equal(bad.routes.length, 0);
  assert.deepEqual(routeCondition(bad, "slow", "Accepted"), ["False", "UnsupportedValue"]);
});

Deno.test("translateGatewayApi() refuses what it cannot serve exactly: the route or the rule", () => {
  const unsafe = translate(httpRoute(
    "regex",
    `
    - matches: [{ path: { type: RegularExpression, value: "/(a+)+$" } }]
      backendRefs: [{ name: web, port: 80 }]`,
  ));
  assert.equal(unsafe.routes.length, 0);
  assert.deepEqual(routeCondition(unsafe, "regex", "Accepted"), ["False", "UnsupportedValue"]);
  const parent = statusOf(unsafe.statuses, "HTTPRoute", "regex")!.status.parents[0];
  assert.match(
    parent.conditions.find((c) => c.type === "Accepted")!.message,
    /rules\[0\]\.matches\[0\]\.path: regular expression "\/\(a\+\)\+\$" must not repeat a group/,
  );

  const cases = [
    ["a CORS filter", `filters: [{ type: CORS, cors: {} }]`],
    [
      "a prefix rewrite on an Exact match",
      `matches: [{ path: { type: Exact, value: /x } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /y } }`,
    ],
    [
      "an unsafe header regex",
      `matches: [{ headers: [{ name: a, type: RegularExpression, value: "(x|y)*" }] }]`,
    ],
    [
      "a forged consumer header",
      `filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Vanguard-Consumer, value: admin }] }`,
    ],
    [
      "a filter on a backendRef",
      `backendRefs:
        - name: web
          port: 80
          filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { remove: [a] } }]`,
    ],
  ];
  for (const [what, rule] of cases) {
    const result = translate(httpRoute(
      "mixed",
      `
    - matches: [{ path: { value: /good } }]
      backendRefs: [{ name: web, port: 80 }]
    - ${rule}`,
    ));
    assert.deepEqual(result.routes.map((r) => r.id), ["gw-shop.mixed-r0-m0"], what);
    assert.deepEqual(routeCondition(result, "mixed", "Accepted"), ["True", "Accepted"], what);
    assert.deepEqual(routeCondition(result, "mixed", "PartiallyInvalid"), [
      "True",
      "UnsupportedValue",
    ], what);
    const message = statusOf(result.statuses, "HTTPRoute", "mixed")!.status.parents[0].conditions
      .find((c) => c.type === "PartiallyInvalid")!.message;
    assert.match(message, /^Dropped Rule 1: rules\[1\]/, what);
  }
});
