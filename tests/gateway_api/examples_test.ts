/**
 * The manifests in examples/kubernetes/ do what their comments say: every
 * object is accepted, every reference resolves (given the Services they
 * name), nothing is dropped with a warning, and requests reach the
 * backends the comments promise. The Ingress objects are also checked
 * against the Kubernetes OpenAPI schema (npm kubernetes-models).
 */
import assert from "node:assert/strict";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { IngressClass } from "kubernetes-models/networking.k8s.io/v1/IngressClass";
import { parseAllDocuments } from "yaml";
import { translateIngress } from "../../lib/gateway_api/ingress.ts";
import { translateGatewayApi } from "../../lib/gateway_api/translate.ts";
import {
  base64,
  conditionOf,
  manifest,
  options,
  PAIRS,
  reach,
  routeCondition,
  statusOf,
  tableOf,
} from "./fixtures.ts";

const read = (name: string) => Deno.readTextFileSync(`examples/kubernetes/${name}`);

/** The Services and namespaces the examples expect to exist in the cluster. */
const CLUSTER = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { gateway-access: edge } }
---
apiVersion: v1
kind: Namespace
metadata: { name: payments }
---
apiVersion: v1
kind: Namespace
metadata: { name: default }
${
  [["shop", "shop-api", 8080], ["shop", "shop-api-canary", 8080], ["shop", "shop-web", 80], [
    "payments",
    "payments",
    80,
  ]].map(([ns, name, port]) =>
    `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec: { ports: [{ name: http, port: ${port} }] }`
  ).join("\n")
}`;

Deno.test("examples/kubernetes/gateway-api.yaml: accepted, resolved, and routed as its comments say", () => {
  const objects = manifest(CLUSTER, read("gateway-api.yaml"));
  const result = translateGatewayApi(objects, options({}, objects.services));
  assert.deepEqual(result.warnings, []);
  for (const route of ["shop", "checkout"]) {
    assert.deepEqual(routeCondition(result, route, "Accepted"), ["True", "Accepted"], route);
    assert.deepEqual(
      routeCondition(result, route, "ResolvedRefs"),
      ["True", "ResolvedRefs"],
      route,
    );
  }
  const gateway = statusOf(result.statuses, "Gateway", "edge")!.status;
  assert.equal(conditionOf(gateway.conditions, "Programmed")?.status, "True");
  assert.equal(gateway.listeners![0].attachedRoutes, 2);

  const table = tableOf(result.routes, objects.services);
  const backendsOf = (url: string, init?: Parameters<typeof reach>[2]) =>
    reach(table, url, init)?.backends?.map((b) => [b.serviceName, b.weight]);
  assert.deepEqual(backendsOf("http://shop.example.com/api/items"), [
    ["shop-api.shop:8080", 90],
    ["shop-api-canary.shop:8080", 10],
  ]);
  assert.deepEqual(
    backendsOf("http://shop.example.com/api/items", { headers: { "x-canary": "always" } }),
    [["shop-api-canary.shop:8080", 1]],
  );
  assert.equal(
    reach(table, "http://shop.example.com/catalog.html")?.redirect?.status,
    301,
  );
  assert.deepEqual(backendsOf("http://shop.example.com/checkout", { method: "POST" }), [
    ["payments.payments:80", 1],
  ]);
  // GET /checkout is not the checkout route's: the catch-all rule of "shop" takes it.
  assert.deepEqual(backendsOf("http://shop.example.com/checkout"), [["shop-web.shop:80", 1]]);
  // Another host under the listener's wildcard has no route.
  assert.equal(reach(table, "http://blog.example.com/"), undefined);
});

Deno.test("examples/kubernetes/gateway-api.yaml: without the ReferenceGrant the cross-namespace backend is refused and answers 500", () => {
  const objects = manifest(CLUSTER, read("gateway-api.yaml"));
  const result = translateGatewayApi(
    { ...objects, referenceGrants: [] },
    options({}, objects.services),
  );
  assert.deepEqual(routeCondition(result, "checkout", "ResolvedRefs"), [
    "False",
    "RefNotPermitted",
  ]);
  const table = tableOf(result.routes, objects.services);
  const route = reach(table, "http://shop.example.com/checkout", { method: "POST" });
  assert.equal(route?.backends?.[0].unresolved !== undefined, true);
});

Deno.test("examples/kubernetes/ingress.yaml: valid against the Kubernetes schema, served by host and path, wildcard one label deep", () => {
  for (const doc of parseAllDocuments(read("ingress.yaml"))) {
    const object = doc.toJS();
    if (object.kind === "Ingress") new Ingress(object).validate();
    else if (object.kind === "IngressClass") new IngressClass(object).validate();
    else assert.fail(`unexpected kind ${object.kind}`);
  }
  const secret = `
---
apiVersion: v1
kind: Secret
metadata: { name: shop-example-com-tls, namespace: shop }
type: kubernetes.io/tls
data: { tls.crt: ${base64(PAIRS.one.certPem)}, tls.key: ${base64(PAIRS.one.keyPem)} }`;
  const objects = manifest(CLUSTER, read("ingress.yaml"), secret);
  const result = translateIngress(objects, {
    addresses: ["10.0.0.9"],
    services: objects.services,
  });
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(result.certificates.map((c) => c.hostnames), [["shop.example.com"]]);
  const table = tableOf(result.routes, objects.services);
  const serviceOf = (url: string) => reach(table, url)?.backends?.[0].serviceName ?? "404";
  assert.equal(serviceOf("http://shop.example.com/api/cart"), "shop-api.shop:8080");
  assert.equal(serviceOf("http://shop.example.com/healthz"), "shop-web.shop:80");
  assert.equal(serviceOf("http://shop.example.com/healthz/deep"), "shop-web.shop:80");
  assert.equal(serviceOf("http://eu.shop.example.com/x"), "shop-web.shop:80");
  // Two labels under the wildcard: not that rule's; the default backend answers.
  const deep = reach(table, "http://a.eu.shop.example.com/x");
  assert.equal(deep?.id.endsWith("-default"), true, String(deep?.id));
  assert.deepEqual(statusOf(result.statuses, "Ingress", "shop")?.status, {
    loadBalancer: { ingress: [{ ip: "10.0.0.9" }] },
  });
});
