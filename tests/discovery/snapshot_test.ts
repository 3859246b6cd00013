import assert from "node:assert/strict";
import {
  buildSnapshot,
  fingerprint,
  type KubeEndpointSlice,
  type KubeService,
  parseRateLimit,
} from "../../lib/discovery/snapshot.ts";
import { CONSUMER_IDENTIFIER } from "../../lib/middleware/rate_limit.ts";
import { configFrom } from "../helpers.ts";

function svc(
  name: string,
  options: {
    namespace?: string;
    ports?: { name?: string; port: number }[];
    annotations?: Record<string, string>;
  } = {},
): KubeService {
  return {
    metadata: { name, namespace: options.namespace ?? "default", annotations: options.annotations },
    spec: { ports: options.ports ?? [{ name: "http", port: 80 }] },
  };
}

function slice(
  service: string,
  endpoints: { address: string; ready?: boolean; serving?: boolean; terminating?: boolean }[],
  options: { name?: string; namespace?: string; ports?: { name?: string; port: number }[] } = {},
): KubeEndpointSlice {
  return {
    metadata: {
      name: options.name ?? `${service}-abc`,
      namespace: options.namespace ?? "default",
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    endpoints: endpoints.map(({ address, ...conditions }) => ({
      addresses: [address],
      conditions,
    })),
    ports: options.ports ?? [{ name: "http", port: 8080 }],
  };
}

const CONFIG = configFrom(`
discovery:
  kubernetes: { enabled: true, namespace: default }
services:
  static-only: { urls: [http://127.0.0.1:9000] }
  users: { urls: [http://127.0.0.1:9999] }
routes:
  - { id: users, path_prefix: /users, service_name: users }
  - { id: other, path_prefix: /other, service_name: users.other }
`);

function ready(table: ReturnType<typeof buildSnapshot>["table"], name: string): string[] {
  return (table.service(name)?.ready ?? []).map((e) => e.url);
}

Deno.test("buildSnapshot() sends traffic to ready endpoints only (absent ready counts as ready)", () => {
  const { table } = buildSnapshot(CONFIG, {
    services: [svc("users")],
    slices: [slice("users", [
      { address: "10.0.0.1", ready: true },
      { address: "10.0.0.2", ready: false },
      { address: "10.0.0.3" },
    ])],
  }, 2);
  assert.deepEqual(ready(table, "users"), ["http://10.0.0.1:8080", "http://10.0.0.3:8080"]);
  assert.equal(table.service("users")?.endpoints.length, 3);
  assert.equal(table.service("users")?.source, "kubernetes");
  assert.equal(table.version, 2);
});

Deno.test("buildSnapshot() unions and deduplicates a service's slices", () => {
  const { table } = buildSnapshot(CONFIG, {
    services: [svc("users")],
    slices: [
      slice("users", [{ address: "10.0.0.1" }, { address: "10.0.0.2" }], { name: "a" }),
      slice("users", [{ address: "10.0.0.2" }, { address: "10.0.0.3" }], { name: "b" }),
      slice("someone-else", [{ address: "10.9.9.9" }], { name: "c" }),
    ],
  }, 1);
  assert.deepEqual(ready(table, "users"), [
    "http://10.0.0.1:8080",
    "http://10.0.0.2:8080",
    "http://10.0.0.3:8080",
  ]);
});

Deno.test("buildSnapshot() uses terminating-but-serving endpoints only when none is ready", () => {
  const rollout = buildSnapshot(CONFIG, {
    services: [svc("users")],
    slices: [slice("users", [
      { address: "10.0.0.1", ready: false, serving: true, terminating: true },
      { address: "10.0.0.2", ready: false, serving: false, terminating: true },
    ])],
  }, 1);
  assert.deepEqual(ready(rollout.table, "users"), ["http://10.0.0.1:8080"]);
  const mixed = buildSnapshot(CONFIG, {
    services: [svc("users")],
    slices: [slice("users", [
      { address: "10.0.0.1", ready: false, serving: true, terminating: true },
      { address: "10.0.0.3", ready: true },
    ])],
  }, 1);
  assert.deepEqual(ready(mixed.table, "users"), ["http://10.0.0.3:8080"]);
});

Deno.test("buildSnapshot() picks the port named http, else the only port, else vanguard.io/port", () => {
  const { table, warnings } = buildSnapshot(CONFIG, {
    services: [
      svc("a", { ports: [{ name: "grpc", port: 90 }, { name: "http", port: 80 }] }),
      svc("b", { ports: [{ name: "web", port: 80 }] }),
      svc("c", {
        ports: [{ name: "grpc", port: 90 }, { name: "admin", port: 81 }],
        annotations: { "vanguard.io/port": "admin" },
      }),
      svc("d", {
        ports: [{ name: "grpc", port: 90 }, { name: "admin", port: 81 }],
        annotations: { "vanguard.io/port": "90" },
      }),
      svc("e", { ports: [{ name: "grpc", port: 90 }, { name: "admin", port: 81 }] }),
    ],
    slices: ["a", "b", "c", "d", "e"].map((name) =>
      slice(name, [{ address: "10.0.0.1" }], {
        ports: [
          { name: "grpc", port: 9090 },
          { name: "http", port: 8080 },
          { name: "web", port: 8081 },
          { name: "admin", port: 8082 },
        ],
      })
    ),
  }, 1);
  assert.deepEqual(ready(table, "a"), ["http://10.0.0.1:8080"]);
  assert.deepEqual(ready(table, "b"), ["http://10.0.0.1:8081"]);
  assert.deepEqual(ready(table, "c"), ["http://10.0.0.1:8082"]);
  assert.deepEqual(ready(table, "d"), ["http://10.0.0.1:9090"]);
  assert.equal(table.service("e"), undefined);
  assert.deepEqual(warnings.map((w) => w.service), ["default/e"]);
});

Deno.test("buildSnapshot() resolves bare names in the default namespace and name.namespace elsewhere; Kubernetes beats static", () => {
  const { table } = buildSnapshot(CONFIG, {
    services: [svc("users"), svc("users", { namespace: "other" })],
    slices: [
      slice("users", [{ address: "10.0.0.1" }]),
      slice("users", [{ address: "10.1.0.1" }], { namespace: "other" }),
    ],
  }, 1);
  assert.deepEqual(ready(table, "users"), ["http://10.0.0.1:8080"]);
  assert.deepEqual(ready(table, "users.default"), ["http://10.0.0.1:8080"]);
  assert.deepEqual(ready(table, "users.other"), ["http://10.1.0.1:8080"]);
  assert.deepEqual(ready(table, "static-only"), ["http://127.0.0.1:9000"]);
  assert.equal(table.service("static-only")?.source, "config");
});

Deno.test("buildSnapshot() makes annotation routes, and a config route wins for the same prefix", () => {
  const { table, warnings } = buildSnapshot(CONFIG, {
    services: [
      svc("orders", {
        annotations: {
          "vanguard.io/path-prefix": "/orders/",
          "vanguard.io/auth-required": "true",
          "vanguard.io/rate-limit": "100/1m",
        },
      }),
      svc("shadow", { annotations: { "vanguard.io/path-prefix": "/users" } }),
      svc("broken", { annotations: { "vanguard.io/path-prefix": "/a/../b" } }),
      svc("badlimit", {
        annotations: { "vanguard.io/path-prefix": "/x", "vanguard.io/rate-limit": "lots" },
      }),
    ],
    slices: [],
  }, 1);
  const orders = table.match("/orders/1");
  assert.equal(orders?.id, "k8s-default-orders");
  assert.equal(orders?.pathPrefix, "/orders");
  assert.equal(orders?.serviceName, "orders.default");
  assert.equal(orders?.authRequired, true);
  assert.equal(orders?.source, "kubernetes");
  assert.deepEqual(orders?.rateLimit, {
    requestsPerPeriod: 100,
    periodSeconds: 60,
    clientIdentifier: CONSUMER_IDENTIFIER,
  });
  assert.equal(table.match("/users/1")?.id, "users");
  assert.equal(table.match("/users/1")?.source, "config");
  assert.equal(table.match("/a/b"), undefined);
  assert.equal(table.match("/x"), undefined);
  assert.deepEqual(warnings.map((w) => w.service).sort(), ["default/badlimit", "default/broken"]);
});

Deno.test("parseRateLimit() reads N/Ms, N/Mm and N/Mh and refuses the rest", () => {
  assert.deepEqual(parseRateLimit("100/60s"), { requestsPerPeriod: 100, periodSeconds: 60 });
  assert.deepEqual(parseRateLimit(" 5 / 2m "), { requestsPerPeriod: 5, periodSeconds: 120 });
  assert.deepEqual(parseRateLimit("1000/1h"), { requestsPerPeriod: 1000, periodSeconds: 3600 });
  for (const bad of ["", "100", "0/60s", "10/0s", "10/2d", "ten/60s", "10/100000h"]) {
    assert.equal(parseRateLimit(bad), undefined, bad);
  }
});

Deno.test("fingerprint() is equal for equal inputs and differs when an endpoint changes", () => {
  const input = () => ({
    services: [svc("users")],
    slices: [slice("users", [{ address: "10.0.0.1" }])],
  });
  const a = buildSnapshot(CONFIG, input(), 1).table;
  const b = buildSnapshot(CONFIG, input(), 2).table;
  assert.equal(fingerprint(a), fingerprint(b));
  const c = buildSnapshot(CONFIG, {
    services: [svc("users")],
    slices: [slice("users", [{ address: "10.0.0.1", ready: false }])],
  }, 3).table;
  assert.notEqual(fingerprint(a), fingerprint(c));
});
