/**
 * Kubernetes discovery end to end: a real gateway watches the fake API
 * server (real list/watch protocol) through a kubeconfig, and real
 * upstreams listen on the endpoint addresses (127.0.0.2, 127.0.0.3, ...),
 * so traffic really flows where the table says.
 */
import assert from "node:assert/strict";
import { closedPort, eventually, startTestGateway, type TestGateway } from "../helpers.ts";
import {
  endpointSlice,
  type FakeApiServer,
  service,
  startFakeApiServer,
} from "./fake_apiserver.ts";

const TUNING = {
  inactivityMs: 1500,
  backoffInitialMs: 50,
  backoffMaxMs: 400,
  coalesceMs: 10,
};

/** Upstreams on 127.0.0.2..n+1, one shared port, each answering with its address. */
function pods(count: number) {
  const port = closedPort();
  const servers = Array.from({ length: count }, (_, i) => {
    const hostname = `127.0.0.${i + 2}`;
    return Deno.serve({ hostname, port, onListen() {} }, () => new Response(hostname));
  });
  return {
    port,
    address: (i: number) => `127.0.0.${i + 2}`,
    close: () => Promise.all(servers.map((server) => server.shutdown())),
  };
}

type Pods = ReturnType<typeof pods>;

function slice(
  name: string,
  serviceName: string,
  fleet: Pods,
  members: { i: number; ready?: boolean; serving?: boolean; terminating?: boolean }[],
  namespace = "default",
) {
  return endpointSlice(
    namespace,
    name,
    serviceName,
    members.map(({ i, ...conditions }) => ({ address: fleet.address(i), ...conditions })),
    [{ name: "http", port: fleet.port }],
  );
}

function httpService(name: string, annotations?: Record<string, string>, namespace = "default") {
  return service(namespace, name, { ports: [{ name: "http", port: 80 }], annotations });
}

async function gatewayFor(fake: FakeApiServer, routes = ""): Promise<TestGateway> {
  return await startTestGateway(
    `
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${fake.kubeconfigPath}
routes:
  - { id: users, path_prefix: /users, service_name: users }
${routes}`,
    { discoveryTuning: TUNING },
  );
}

/** Who answers `count` requests to `path`, by address; statuses other than 200 as "<status>". */
async function answers(gw: TestGateway, path: string, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(gw.url + path);
    const text = await response.text();
    out.push(response.status === 200 ? text : String(response.status));
  }
  return out;
}

const unique = (values: string[]) => [...new Set(values)].sort();

async function ready(gw: TestGateway): Promise<number> {
  const response = await fetch(`${gw.adminUrl}/readyz`);
  await response.body?.cancel();
  return response.status;
}

/** Waits until requests to `path` are answered by exactly `expected` (addresses or statuses). */
async function until(gw: TestGateway, path: string, expected: string[], ms = 1000) {
  const started = performance.now();
  await eventually(ms, `${path} answered by ${expected.join(", ")}`, async () => {
    const seen = unique(await answers(gw, path, Math.max(4, expected.length * 3)));
    return JSON.stringify(seen) === JSON.stringify([...expected].sort());
  });
  return performance.now() - started;
}

/**
 * The common start of most tests: Service `users` with ready pods (by
 * default one, 127.0.0.2) behind a gateway that already routes to them.
 */
async function withUsers(
  body: (setup: { fake: FakeApiServer; fleet: Pods; gw: TestGateway }) => Promise<void>,
  options: { bookmarkIntervalMs?: number; tls?: boolean; pods?: number[] } = {},
): Promise<void> {
  const { fake, fleet, close } = await setup(options);
  const pods = options.pods ?? [0];
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, pods.map((i) => ({ i }))));
  const gw = await gatewayFor(fake);
  try {
    await until(gw, "/users", pods.map((i) => fleet.address(i)), 3000);
    await body({ fake, fleet, gw });
  } finally {
    await close(gw);
  }
}

async function setup(options: { bookmarkIntervalMs?: number; tls?: boolean } = {}) {
  const fake = await startFakeApiServer({
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 300,
    tls: options.tls,
  });
  const fleet = pods(6);
  return {
    fake,
    fleet,
    async close(gw?: TestGateway) {
      await gw?.close();
      await fake.close();
      await fleet.close();
    },
  };
}

Deno.test("discovery: the start waits out failing first lists, is then ready and routes to ready endpoints only", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(httpService("users"));
  fake.apply(
    slice("users-a", "users", fleet, [{ i: 0 }, { i: 1, ready: false }, { i: 2, ready: true }]),
  );
  fake.failNext(503, 3);
  const gw = await gatewayFor(fake);
  try {
    // The first sync is part of the start: once listening, the gateway is ready.
    assert.equal(await ready(gw), 200);
    assert.deepEqual(unique(await answers(gw, "/users/x", 8)), ["127.0.0.2", "127.0.0.4"]);
    const routes = await (await fetch(`${gw.adminUrl}/routes`)).json();
    const users = routes.routes.find((r: { id: string }) => r.id === "users");
    assert.equal(users.source, "config");
    assert.equal(users.service_source, "kubernetes");
    assert.deepEqual(
      users.endpoints.map((e: { url: string; ready: boolean }) => [e.url, e.ready]),
      [
        [`http://127.0.0.2:${fleet.port}`, true],
        [`http://127.0.0.3:${fleet.port}`, false],
        [`http://127.0.0.4:${fleet.port}`, true],
      ],
    );
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^vanguard_service_endpoints\{service="users"\} 2$/m);
    assert.match(metrics, /^vanguard_discovery_connected 1$/m);
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: unready, scale up and scale down reach traffic within 1 s", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    fake.apply(slice("users-a", "users", fleet, [{ i: 0 }, { i: 1, ready: false }]));
    assert.ok(await until(gw, "/users", ["127.0.0.2"]) < 1000);
    fake.apply(slice("users-a", "users", fleet, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]));
    assert.ok(
      await until(gw, "/users", ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]) < 1000,
    );
    fake.apply(slice("users-a", "users", fleet, [{ i: 3 }]));
    assert.ok(await until(gw, "/users", ["127.0.0.5"]) < 1000);
  }, { pods: [0, 1] });
});

Deno.test("discovery: terminating-but-serving endpoints get traffic only while none is ready", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [
    { i: 0, ready: false, serving: true, terminating: true },
    { i: 1, ready: false, serving: false, terminating: true },
  ]));
  const gw = await gatewayFor(fake);
  try {
    await until(gw, "/users", ["127.0.0.2"], 3000);
    fake.apply(slice("users-a", "users", fleet, [
      { i: 0, ready: false, serving: true, terminating: true },
      { i: 2, ready: true },
    ]));
    await until(gw, "/users", ["127.0.0.4"]);
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: a service split across two slices, and a slice replaced without an empty moment", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [{ i: 0 }]));
  fake.apply(slice("users-b", "users", fleet, [{ i: 1 }, { i: 0 }]));
  const gw = await gatewayFor(fake);
  try {
    await until(gw, "/users", ["127.0.0.2", "127.0.0.3"], 3000);
    // The controller's order: the new slice appears, then the old one goes.
    let stop = false;
    const statuses: string[] = [];
    const traffic = (async () => {
      while (!stop) statuses.push(...await answers(gw, "/users", 1));
    })();
    fake.apply(slice("users-c", "users", fleet, [{ i: 4 }]));
    await new Promise((resolve) => setTimeout(resolve, 30));
    fake.remove("EndpointSlice", "default", "users-a");
    fake.remove("EndpointSlice", "default", "users-b");
    await until(gw, "/users", ["127.0.0.6"]);
    stop = true;
    await traffic;
    assert.ok(statuses.length > 5, "traffic flowed during the swap");
    assert.deepEqual(statuses.filter((s) => !s.startsWith("127.")), [], "no request failed");
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: a deleted service answers 503, and works again once re-created", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    fake.remove("EndpointSlice", "default", "users-a");
    fake.remove("Service", "default", "users");
    await until(gw, "/users", ["503"]);
    fake.apply(httpService("users"));
    fake.apply(slice("users-a", "users", fleet, [{ i: 1 }]));
    await until(gw, "/users", ["127.0.0.3"]);
  });
});

Deno.test("discovery: annotated Services get routes; a config route wins; a bad annotation is skipped", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(httpService("orders", {
    "vanguard.io/path-prefix": "/orders",
    "vanguard.io/rate-limit": "2/60s",
  }));
  fake.apply(slice("orders-a", "orders", fleet, [{ i: 0 }]));
  fake.apply(httpService("private", {
    "vanguard.io/path-prefix": "/private",
    "vanguard.io/auth-required": "true",
  }));
  fake.apply(slice("private-a", "private", fleet, [{ i: 1 }]));
  fake.apply(httpService("impostor", { "vanguard.io/path-prefix": "/users" }));
  fake.apply(slice("impostor-a", "impostor", fleet, [{ i: 2 }]));
  fake.apply(httpService("broken", { "vanguard.io/path-prefix": "no-slash" }));
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [{ i: 3 }]));
  const gw = await gatewayFor(fake);
  try {
    await until(gw, "/users", ["127.0.0.5"], 3000);
    const orders = await fetch(`${gw.url}/orders/1`);
    assert.equal(await orders.text(), "127.0.0.2");
    assert.equal(orders.headers.get("ratelimit-policy"), '"k8s-default-orders";q=2;w=60');
    await answers(gw, "/orders/1", 1);
    assert.deepEqual(await answers(gw, "/orders/1", 1), ["429"]);
    assert.deepEqual(await answers(gw, "/private", 1), ["401"]);
    const routes = (await (await fetch(`${gw.adminUrl}/routes`)).json()).routes;
    assert.deepEqual(
      routes.map((r: { id: string; source: string }) => `${r.id}:${r.source}`).sort(),
      ["k8s-default-orders:kubernetes", "k8s-default-private:kubernetes", "users:config"],
    );
    assert.ok(
      gw.logs.some((r) =>
        r.event === "discovery_service_skipped" && String(r.problem).includes("default/broken")
      ),
    );
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: watches the server closes are resumed from the last version, without a relist", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    const lists = () => fake.requests.filter((r) => !r.query.watch).length;
    const before = lists();
    for (let round = 0; round < 4; round++) {
      fake.closeWatches();
      fake.apply(slice("users-a", "users", fleet, [{ i: round % 2 === 0 ? 1 : 0 }]));
      await until(gw, "/users", [round % 2 === 0 ? "127.0.0.3" : "127.0.0.2"]);
    }
    assert.equal(lists(), before, "no LIST after a clean close");
    const rewatches = fake.requests.filter((r) => r.query.watch && r.query.resourceVersion);
    assert.ok(rewatches.every((r) => Number(r.query.resourceVersion) >= 1000));
  });
});

Deno.test("discovery: a bookmark's resourceVersion is where the next watch starts", async () => {
  const { fake, fleet, close } = await setup({ bookmarkIntervalMs: 100 });
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [{ i: 0 }]));
  fake.apply(httpService("elsewhere", undefined, "other-ns"));
  const gw = await gatewayFor(fake);
  try {
    await until(gw, "/users", ["127.0.0.2"], 3000);
    // Changes in a namespace nobody watches move the global version on.
    for (let i = 0; i < 5; i++) fake.apply(httpService("elsewhere", { n: String(i) }, "other-ns"));
    const target = fake.resourceVersion;
    await new Promise((resolve) => setTimeout(resolve, 400)); // a few bookmarks
    const count = fake.requests.length;
    fake.closeWatches();
    await eventually(
      2000,
      "re-watches",
      () => fake.requests.slice(count).filter((r) => r.query.watch).length >= 2,
    );
    for (const request of fake.requests.slice(count).filter((r) => r.query.watch)) {
      assert.equal(Number(request.query.resourceVersion), target, request.path);
    }
  } finally {
    await close(gw);
  }
});

for (const mode of ["event", "http"] as const) {
  Deno.test(`discovery: 410 Gone as ${mode === "event" ? "an ERROR event" : "an HTTP status"} relists and applies what changed, deletions included`, async () => {
    const { fake, fleet, close } = await setup();
    fake.apply(httpService("users"));
    fake.apply(slice("users-a", "users", fleet, [{ i: 0 }]));
    fake.apply(slice("users-b", "users", fleet, [{ i: 1 }]));
    const gw = await gatewayFor(fake);
    try {
      await until(gw, "/users", ["127.0.0.2", "127.0.0.3"], 3000);
      await fake.stop();
      fake.remove("EndpointSlice", "default", "users-a");
      fake.apply(slice("users-b", "users", fleet, [{ i: 1 }, { i: 2 }]));
      await fake.restart();
      fake.sendGone(mode);
      await until(gw, "/users", ["127.0.0.3", "127.0.0.4"], 3000);
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.match(metrics, /vanguard_discovery_events_total\{kind="RELIST"\} [1-9]/);
    } finally {
      await close(gw);
    }
  });
}

Deno.test("discovery: with the API server down traffic keeps flowing; restarted with new state, it converges", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    await fake.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(unique(await answers(gw, "/users", 6)), ["127.0.0.2", "127.0.0.3"]);
    assert.equal(await ready(gw), 200, "stays ready through an API outage");
    assert.ok(gw.logs.some((r) => r.event === "discovery_unavailable"));
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^vanguard_discovery_connected 0$/m);
    await fake.restart({ reset: true });
    fake.apply(httpService("users"));
    fake.apply(slice("users-z", "users", fleet, [{ i: 5 }]));
    await until(gw, "/users", ["127.0.0.7"], 5000);
  }, { pods: [0, 1] });
});

Deno.test("discovery: a stalled watch is noticed and replaced", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    fake.stall(true);
    fake.apply(slice("users-a", "users", fleet, [{ i: 1 }]));
    fake.stall(false);
    // Silent watches never deliver; only the inactivity timeout (1.5 s here) recovers.
    await until(gw, "/users", ["127.0.0.3"], 4000);
    assert.ok(gw.logs.some((r) => r.event === "discovery_watch_stalled"));
  });
});

Deno.test("discovery: 401 keeps the last table, and converges once the token works again", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    fake.setToken("rotated");
    fake.closeWatches();
    fake.apply(slice("users-a", "users", fleet, [{ i: 1 }]));
    await eventually(
      2000,
      "a 401",
      () =>
        fake.requests.some((r) => r.query.watch && r.authorization === "Bearer test-token") &&
        gw.logs.some((r) => r.event === "discovery_unavailable"),
    );
    assert.deepEqual(unique(await answers(gw, "/users", 4)), ["127.0.0.2"]);
    fake.setToken("test-token");
    await until(gw, "/users", ["127.0.0.3"], 3000);
  });
});

Deno.test("discovery: 429 and 5xx back off and recover", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    fake.failNext(429, 2, { "retry-after": "1" });
    fake.failNext(500, 2);
    fake.closeWatches();
    fake.apply(slice("users-a", "users", fleet, [{ i: 2 }]));
    await until(gw, "/users", ["127.0.0.4"], 5000);
  });
});

Deno.test("discovery: 1000 events in 100 ms converge with a handful of rebuilds", async () => {
  await withUsers(async ({ fake, fleet, gw }) => {
    const swapsBefore = gw.logs.filter((r) => r.event === "routing_table_swapped").length;
    const started = performance.now();
    for (let n = 0; n < 1000; n++) {
      fake.apply(slice("users-a", "users", fleet, [{ i: n % 5 }]));
      if (n % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(performance.now() - started < 500, "the events went out fast");
    await until(gw, "/users", ["127.0.0.6"]);
    const swaps = gw.logs.filter((r) => r.event === "routing_table_swapped").length - swapsBefore;
    assert.ok(swaps <= 30, `${swaps} rebuilds for 1000 events`);
  });
});

Deno.test("discovery: a Service in another namespace is reached as name.namespace", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [{ i: 0 }]));
  fake.apply(httpService("billing", undefined, "finance"));
  fake.apply(slice("billing-a", "billing", fleet, [{ i: 1 }], "finance"));
  const gw = await gatewayFor(
    fake,
    "  - { id: billing, path_prefix: /billing, service_name: billing.finance }",
  );
  try {
    await until(gw, "/billing", ["127.0.0.3"], 3000);
    await until(gw, "/users", ["127.0.0.2"]);
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: over HTTPS with the kubeconfig's CA and a bearer token", async () => {
  const { fake, fleet, close } = await setup({ tls: true });
  fake.apply(httpService("users"));
  fake.apply(slice("users-a", "users", fleet, [{ i: 0 }]));
  const gw = await gatewayFor(fake);
  try {
    assert.ok(fake.url.startsWith("https://"));
    await until(gw, "/users", ["127.0.0.2"], 3000);
    assert.ok(fake.requests.every((r) => r.authorization === "Bearer test-token"));
  } finally {
    await close(gw);
  }
});

Deno.test("discovery: a kubeconfig that cannot be loaded stops the start with a clear error", async () => {
  await assert.rejects(
    startTestGateway(`
discovery:
  kubernetes: { enabled: true, kubeconfig: ${Deno.cwd()}/tests/fixtures/broken.yaml }
routes: []
`),
    /cluster|kubeconfig|Kubernetes/i,
  );
});
