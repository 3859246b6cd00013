/**
 * The provider side of the Gateway API and Ingress: what the snapshot makes
 * of Services for backendRefs (port-qualified names), how config,
 * annotation, HTTPRoute and Ingress routes end up in one table, and what the
 * watches hold (TLS Secrets only, a kind the cluster lacks counted as empty).
 */
import assert from "node:assert/strict";
import {
  buildSnapshot,
  type KubeEndpointSlice,
  type KubeObjects,
  type KubeService,
  translateRouting,
} from "../../lib/discovery/snapshot.ts";
import { loadKubeAccess } from "../../lib/discovery/kube_access.ts";
import { RoutingWatches } from "../../lib/gateway_api/provider.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { configFrom, eventually } from "../helpers.ts";
import { startFakeApiServer, tlsSecret } from "../discovery/fake_apiserver.ts";
import type {
  Gateway,
  GatewayClass,
  GatewayStatus,
  HTTPRoute,
} from "../../lib/gateway_api/objects.ts";

const CONFIG = configFrom(`
discovery:
  kubernetes: { enabled: true, namespace: default }
routes:
  - { id: users, path_prefix: /users, service_name: users }
`);

function svc(
  name: string,
  ports: { name?: string; port: number }[],
  annotations?: Record<string, string>,
): KubeService {
  return { metadata: { name, namespace: "default", annotations }, spec: { ports } };
}

function slice(service: string, ports: { name?: string; port: number }[]): KubeEndpointSlice {
  return {
    metadata: {
      name: `${service}-x`,
      namespace: "default",
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true } }],
    ports: ports.map((p) => ({ name: p.name ?? "", port: p.port })),
  };
}

function urls(table: ReturnType<typeof buildSnapshot>["table"], name: string): string[] {
  return (table.service(name)?.ready ?? []).map((e) => e.url);
}

Deno.test("buildSnapshot() names every Service port as name.namespace:port, on the slice port of the same name", () => {
  const { table, warnings } = buildSnapshot(CONFIG, {
    services: [
      svc("multi", [{ name: "grpc", port: 90 }, { name: "admin", port: 81 }]),
      svc("single", [{ port: 80 }]),
      svc("users", [{ name: "http", port: 80 }, { name: "metrics", port: 9090 }]),
    ],
    slices: [
      slice("multi", [{ name: "grpc", port: 9000 }, { name: "admin", port: 8001 }]),
      slice("single", [{ port: 8080 }]),
      slice("users", [{ name: "http", port: 8080 }, { name: "metrics", port: 9100 }]),
    ],
  }, 1);
  assert.deepEqual(urls(table, "multi.default:90"), ["http://10.0.0.1:9000"]);
  assert.deepEqual(urls(table, "multi.default:81"), ["http://10.0.0.1:8001"]);
  assert.deepEqual(urls(table, "single.default:80"), ["http://10.0.0.1:8080"]);
  assert.deepEqual(urls(table, "users.default:9090"), ["http://10.0.0.1:9100"]);
  // The plain names keep their rule: the port named http, else the only one.
  assert.deepEqual(urls(table, "users"), ["http://10.0.0.1:8080"]);
  assert.deepEqual(urls(table, "single"), ["http://10.0.0.1:8080"]);
  assert.equal(table.service("multi"), undefined);
  assert.deepEqual(warnings.map((w) => w.service), ["default/multi"]);
  assert.equal(table.service("multi.default:91"), undefined, "no such Service port");
});

const CLASS: GatewayClass = {
  metadata: { name: "vanguard", generation: 1 },
  spec: { controllerName: "vanguard.io/gateway-controller" },
};

const GATEWAY: Gateway = {
  metadata: { name: "gw", namespace: "default", generation: 1 },
  spec: {
    gatewayClassName: "vanguard",
    listeners: [{ name: "http", port: 8000, protocol: "HTTP" }],
  },
};

const ROUTE: HTTPRoute = {
  metadata: { name: "shop", namespace: "default", generation: 1 },
  spec: {
    parentRefs: [{ name: "gw" }],
    rules: [{
      matches: [{ path: { type: "PathPrefix", value: "/shop" } }],
      backendRefs: [{ name: "shop", port: 80 }],
    }],
  },
};

function everything(): KubeObjects {
  return {
    services: [
      svc("users", [{ name: "http", port: 80 }]),
      svc("orders", [{ name: "http", port: 80 }], { "vanguard.io/path-prefix": "/orders" }),
      svc("shop", [{ name: "http", port: 80 }]),
    ],
    slices: [
      slice("users", [{ name: "http", port: 8080 }]),
      slice("orders", [{ name: "http", port: 8080 }]),
      slice("shop", [{ name: "http", port: 8080 }]),
    ],
    gatewayApi: { gatewayClasses: [CLASS], gateways: [GATEWAY], httpRoutes: [ROUTE] },
    ingress: {
      ingressClasses: [{
        metadata: { name: "vanguard" },
        spec: { controller: "vanguard.io/ingress-controller" },
      }],
      ingresses: [{
        metadata: { name: "legacy", namespace: "default", generation: 1 },
        spec: {
          ingressClassName: "vanguard",
          rules: [{
            http: {
              paths: [{
                path: "/legacy",
                pathType: "Prefix",
                backend: { service: { name: "users", port: { number: 80 } } },
              }],
            },
          }],
        },
      }],
    },
  };
}

Deno.test("buildSnapshot() serves config, annotation, HTTPRoute and Ingress routes from one table", () => {
  const { table } = buildSnapshot(CONFIG, everything(), 1);
  const byPath = (path: string, host = "example.com") =>
    table.match(path, { host, method: "GET", headers: new Headers(), query: "" });
  assert.equal(byPath("/users/1")?.source, "config");
  assert.equal(byPath("/orders/1")?.id, "k8s-default-orders");
  assert.equal(byPath("/shop/cart")?.serviceName, "shop.default:80");
  assert.equal(byPath("/shop/cart")?.preserveHost, true);
  assert.equal(byPath("/legacy/x")?.serviceName, "users.default:80");
  assert.deepEqual(urls(table, "shop.default:80"), ["http://10.0.0.1:8080"]);
});

Deno.test("translateRouting() wants status only for our objects and takes Vanguard's port from the config", () => {
  const other: GatewayClass = {
    metadata: { name: "other", generation: 1 },
    spec: { controllerName: "example.com/other" },
  };
  const objects = everything();
  const on8000 = translateRouting(CONFIG, {
    ...objects,
    gatewayApi: { ...objects.gatewayApi!, gatewayClasses: [CLASS, other] },
  }, { now: "2024-01-01T00:00:00Z" });
  assert.deepEqual(
    on8000.statuses.map((s) => `${s.kind}/${s.name}`).sort(),
    ["Gateway/gw", "GatewayClass/vanguard", "HTTPRoute/shop", "Ingress/legacy"],
  );
  const elsewhere = configFrom(`
server: { port: 9000 }
discovery:
  kubernetes: { enabled: true, namespace: default }
routes: []
`);
  const on9000 = translateRouting(elsewhere, objects, { now: "2024-01-01T00:00:00Z" });
  assert.equal(on9000.routes.filter((r) => r.id.startsWith("gw-")).length, 0);
  const gw = on9000.statuses.find((s) => s.kind === "Gateway")!;
  const listener = (gw.status as GatewayStatus).listeners![0];
  assert.equal(listener.conditions.find((c) => c.type === "Programmed")?.status, "False");
});

Deno.test("RoutingWatches: only kubernetes.io/tls Secrets are listed, and a kind the server lacks counts as empty", async () => {
  const fake = await startFakeApiServer({ without: ["HTTPRoute"] });
  const access = await loadKubeAccess({ kubeconfig: fake.kubeconfigPath, env: () => undefined });
  const logger = memoryLogger();
  let changes = 0;
  const watches = new RoutingWatches({
    access,
    namespaces: ["default"],
    logger,
    onChange: () => changes++,
    tuning: { backoffInitialMs: 20, backoffMaxMs: 200 },
  });
  fake.apply(tlsSecret("default", "site", "-----BEGIN CERTIFICATE-----\n", "k"));
  fake.apply({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "password", namespace: "default" },
    type: "Opaque",
    data: { password: btoa("hunter2") },
  });
  try {
    for (const watch of watches.watches) watch.start();
    await Promise.all(watches.watches.map((w) => w.firstSync));
    const objects = watches.objects();
    assert.deepEqual(objects.gatewayApi.secrets!.map((s) => s.metadata.name), ["site"]);
    assert.ok(
      fake.requests.some((r) =>
        r.path.endsWith("/secrets") && r.query.fieldSelector === "type=kubernetes.io/tls"
      ),
    );
    assert.deepEqual(objects.gatewayApi.httpRoutes, []);
    const absent = watches.watches.filter((w) => w.absent).map((w) => w.name);
    assert.deepEqual(absent, ["httproutes in default"]);
    // Asked again now and then, logged once.
    const asked = () => fake.requests.filter((r) => r.path.endsWith("/httproutes")).length;
    await eventually(2000, "a second look", () => asked() >= 3);
    assert.equal(logger.records.filter((r) => r.event === "discovery_kind_absent").length, 1);
    // A change of a present kind still arrives.
    const before = changes;
    fake.apply(tlsSecret("default", "other", "-----BEGIN CERTIFICATE-----\n", "k"));
    await eventually(
      2000,
      "the new Secret",
      () => watches.objects().gatewayApi.secrets!.length === 2,
    );
    assert.ok(changes > before);
  } finally {
    await Promise.all(watches.watches.map((w) => w.stop()));
    access.close();
    await fake.close();
  }
});
