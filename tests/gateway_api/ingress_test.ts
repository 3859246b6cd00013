/** Ingress v1 as a user sees it: which Ingresses Vanguard serves, and where each request goes. */
import assert from "node:assert/strict";
import { translateIngress } from "../../lib/gateway_api/ingress.ts";
import { base64, manifest, PAIRS, reach, routeId, statusOf, tableOf } from "./fixtures.ts";

const CLASSES = `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: vanguard }
spec: { controller: vanguard.io/ingress-controller }
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: nginx }
spec: { controller: k8s.io/ingress-nginx }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { ports: [{ name: grpc, port: 9000 }, { name: rest, port: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: fallback, namespace: shop }
spec: { ports: [{ port: 80 }] }`;

const DEFAULT_VANGUARD = `
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: vanguard-default
  annotations: { ingressclass.kubernetes.io/is-default-class: "true" }
spec: { controller: vanguard.io/ingress-controller }`;

function ingress(
  name: string,
  spec: string,
  extra: { created?: string; annotations?: string } = {},
) {
  return `
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  namespace: shop
  creationTimestamp: "${extra.created ?? "2024-01-01T00:00:00Z"}"
  annotations: ${extra.annotations ?? "{}"}
spec:
${spec}`;
}

function run(yaml: string, addresses = ["10.0.0.9"]) {
  const objects = manifest(CLASSES, yaml);
  const result = translateIngress(objects, { addresses, services: objects.services });
  return { ...result, table: tableOf(result.routes, objects.services) };
}

const SIMPLE = `
  rules:
    - http:
        paths:
          - { path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }`;

Deno.test("translateIngress() serves the Ingresses of our classes only", () => {
  const cases: {
    what: string;
    spec: string;
    annotations?: string;
    classes?: string;
    served: boolean;
  }[] = [
    { what: "our class", spec: "  ingressClassName: vanguard" + SIMPLE, served: true },
    {
      what: "another controller's class",
      spec: "  ingressClassName: nginx" + SIMPLE,
      served: false,
    },
    { what: "an unknown class", spec: "  ingressClassName: missing" + SIMPLE, served: false },
    { what: "no class, no default", spec: SIMPLE, served: false },
    { what: "no class, ours is default", spec: SIMPLE, classes: DEFAULT_VANGUARD, served: true },
    {
      what: "the legacy annotation",
      spec: SIMPLE,
      annotations: "{ kubernetes.io/ingress.class: vanguard }",
      served: true,
    },
  ];
  for (const { what, spec, annotations, classes, served } of cases) {
    const result = run((classes ?? "") + ingress("site", spec, { annotations }));
    assert.equal(result.routes.length, served ? 1 : 0, what);
    assert.equal(statusOf(result.statuses, "Ingress", "site") !== undefined, served, what);
  }
});

Deno.test("translateIngress() path types: Exact, Prefix per element, ImplementationSpecific as Prefix", () => {
  const { table, routes } = run(ingress(
    "paths",
    `
  ingressClassName: vanguard
  rules:
    - http:
        paths:
          - { path: /login, pathType: Exact, backend: { service: { name: api, port: { number: 8080 } } } }
          - { path: /docs/, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }
          - { path: /static, pathType: ImplementationSpecific, backend: { service: { name: web, port: { name: http } } } }`,
  ));
  assert.deepEqual(routes.map((r) => [r.id, r.pathPrefix, r.pathKind]), [
    ["ing-shop.paths-r0-p0", "/login", "exact"],
    ["ing-shop.paths-r0-p1", "/docs", undefined],
    ["ing-shop.paths-r0-p2", "/static", undefined],
  ]);
  const cases: [string, string][] = [
    ["/login", "ing-shop.paths-r0-p0"],
    ["/login/", "404"],
    ["/login/x", "404"],
    ["/docs", "ing-shop.paths-r0-p1"], // "/docs/" as Prefix matches "/docs" too
    ["/docs/guide", "ing-shop.paths-r0-p1"],
    ["/docsy", "404"],
    ["/static/app.js", "ing-shop.paths-r0-p2"],
  ];
  for (const [path, id] of cases) {
    assert.equal(routeId(table, `http://example.com${path}`), id, path);
  }
  assert.ok(routes.every((r) => r.preserveHost === true && r.source === "kubernetes"));
});

Deno.test("translateIngress() host rules: exact before wildcard, defaultBackend for the rest", () => {
  const backend = (svc: string, port: number) =>
    `{ service: { name: ${svc}, port: { number: ${port} } } }`;
  const result = run(
    ingress(
      "later",
      `
  ingressClassName: vanguard
  defaultBackend: ${backend("fallback", 80)}
  rules:
    - host: "*.example.com"
      http: { paths: [{ path: /, pathType: Prefix, backend: ${backend("web", 80)} }] }`,
      {
        created: "2024-05-01T00:00:00Z",
      },
    ) +
      ingress(
        "earlier",
        `
  ingressClassName: vanguard
  rules:
    - host: API.example.com
      http: { paths: [{ path: /, pathType: Prefix, backend: ${backend("api", 8080)} }] }
    - http: { paths: [{ path: /health, pathType: Exact, backend: ${backend("api", 8080)} }] }`,
      ),
  );
  // Rules of every Ingress first (older first), default backends last.
  assert.deepEqual(result.routes.map((r) => r.id), [
    "ing-shop.earlier-r0-p0",
    "ing-shop.earlier-r1-p0",
    "ing-shop.later-r0-p0",
    "ing-shop.later-default",
  ]);
  const cases: [string, string][] = [
    ["http://api.example.com/x", "ing-shop.earlier-r0-p0"],
    ["http://www.example.com/x", "ing-shop.later-r0-p0"],
    ["http://example.com/x", "ing-shop.later-default"],
    ["http://other.org/health", "ing-shop.earlier-r1-p0"],
    ["http://other.org/", "ing-shop.later-default"],
    // An Ingress wildcard covers exactly one label: a deeper name is the default backend's.
    ["http://a.b.example.com/", "ing-shop.later-default"],
  ];
  for (const [url, id] of cases) assert.equal(routeId(result.table, url), id, url);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(reach(result.table, "http://other.org/")?.backends, [{
    serviceName: "fallback.shop:80",
    weight: 1,
  }]);
});

Deno.test("an Ingress one-label wildcard keeps path precedence with a Gateway API wildcard on the same suffix", () => {
  const result = run(ingress(
    "root",
    `
  ingressClassName: vanguard
  rules:
    - host: "*.example.com"
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }`,
  ));
  const [root] = result.routes;
  assert.equal(root.oneLabelWildcard, true);
  // A route with the same wildcard that covers deeper names too (as an HTTPRoute's does), on /api.
  const api = {
    ...root,
    id: "any-depth-api",
    pathPrefix: "/api",
    prefixSegments: 1,
    oneLabelWildcard: undefined,
  };
  const objects = manifest(CLASSES);
  const table = tableOf([api, root], objects.services);
  const cases: [string, string][] = [
    // The longer path wins whichever wildcard kind each route has.
    ["http://a.example.com/api/x", "any-depth-api"],
    ["http://a.example.com/shop", root.id],
    // Two labels deep: only the route whose wildcard covers them.
    ["http://a.b.example.com/api/x", "any-depth-api"],
    ["http://a.b.example.com/shop", "404"],
  ];
  for (const [url, id] of cases) assert.equal(routeId(table, url), id, url);
});

Deno.test("translateIngress() backend ports by number or by name; unresolvable ones answer 500", () => {
  const path = (p: string, backend: string) =>
    `          - { path: ${p}, pathType: Prefix, backend: ${backend} }`;
  const { routes, warnings } = run(ingress(
    "ports",
    `
  ingressClassName: vanguard
  rules:
    - http:
        paths:
${path("/rest", "{ service: { name: api, port: { name: rest } } }")}
${path("/grpc", "{ service: { name: api, port: { number: 9000 } } }")}
${path("/nope", "{ service: { name: api, port: { name: soap } } }")}
${path("/gone", "{ service: { name: gone, port: { number: 80 } } }")}
${path("/wrong", "{ service: { name: web, port: { number: 81 } } }")}
${path("/bucket", "{ resource: { apiGroup: example.com, kind: Bucket, name: b } }")}`,
  ));
  assert.deepEqual(routes.map((r) => r.backends![0]), [
    { serviceName: "api.shop:8080", weight: 1 },
    { serviceName: "api.shop:9000", weight: 1 },
    { serviceName: "api.shop:", weight: 1, unresolved: "Service shop/api has no port named soap" },
    { serviceName: "gone.shop:80", weight: 1, unresolved: "Service shop/gone does not exist" },
    { serviceName: "web.shop:81", weight: 1, unresolved: "Service shop/web has no port 81" },
    {
      serviceName: "",
      weight: 1,
      unresolved: "a Bucket backend is not supported: Vanguard routes to Services",
    },
  ]);
  assert.equal(warnings.length, 4);
  assert.match(warnings[0], /^Ingress shop\/ports: rules\[0\]\.http\.paths\[2\]\.backend: /);
});

Deno.test("translateIngress() TLS Secrets become certificates; status lists Vanguard's addresses", () => {
  const result = run(
    ingress(
      "secure",
      `
  ingressClassName: vanguard
  tls:
    - { hosts: [Shop.example.com], secretName: shop-tls }
    - { hosts: [missing.example.com], secretName: nowhere }
${SIMPLE}`,
    ) + `
---
apiVersion: v1
kind: Secret
metadata: { name: shop-tls, namespace: shop }
type: kubernetes.io/tls
data: { tls.crt: ${base64(PAIRS.one.certPem)}, tls.key: ${base64(PAIRS.one.keyPem)} }`,
    ["10.0.0.9", "lb.example.com"],
  );
  assert.deepEqual(result.certificates, [{
    hostnames: ["shop.example.com"],
    certPem: PAIRS.one.certPem,
    keyPem: PAIRS.one.keyPem,
  }]);
  assert.deepEqual(result.warnings, [
    "Ingress shop/secure: tls[1]: Secret shop/nowhere does not exist",
  ]);
  assert.deepEqual(statusOf(result.statuses, "Ingress", "secure")?.status, {
    loadBalancer: { ingress: [{ ip: "10.0.0.9" }, { hostname: "lb.example.com" }] },
  });
});
