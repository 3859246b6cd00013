/**
 * Gateway API and Ingress end to end: real gateways watch the fake API
 * server (real list/watch) through a kubeconfig, real upstreams listen on
 * the endpoint addresses (127.0.0.2, ...), and the status the gateway
 * writes is read back from the fake's `/status` records.
 */
import assert from "node:assert/strict";
import { closedPort, eventually, startTestGateway, type TestGateway } from "../helpers.ts";
import {
  endpointSlice,
  type FakeApiServer,
  gateway,
  gatewayClass,
  httpRoute,
  ingress,
  ingressClass,
  type K8sObject,
  service,
  startFakeApiServer,
  type StatusWrite,
} from "../discovery/fake_apiserver.ts";

const CONTROLLER = "vanguard.io/gateway-controller";

const TUNING = {
  inactivityMs: 1500,
  backoffInitialMs: 50,
  backoffMaxMs: 400,
  coalesceMs: 10,
  status: { leaseDurationSeconds: 1, renewIntervalMs: 100, retryInitialMs: 50, retryMaxMs: 200 },
};

/** Upstreams on 127.0.0.2..n+1, one shared port, each answering with its address and the Host it got. */
function pods(count: number) {
  const port = closedPort();
  const servers = Array.from({ length: count }, (_, i) => {
    const hostname = `127.0.0.${i + 2}`;
    return Deno.serve(
      { hostname, port, onListen() {} },
      (request) => new Response(hostname, { headers: { "x-host": request.headers.get("host")! } }),
    );
  });
  return {
    port,
    address: (i: number) => `127.0.0.${i + 2}`,
    close: () => Promise.all(servers.map((server) => server.shutdown())),
  };
}

type Pods = ReturnType<typeof pods>;

/** Service `name` (port 80 "http") whose endpoints are pods `members`. */
function backend(fake: FakeApiServer, fleet: Pods, name: string, members: number[]): void {
  fake.apply(service("default", name, { ports: [{ name: "http", port: 80 }] }));
  fake.apply(
    endpointSlice(
      "default",
      `${name}-a`,
      name,
      members.map((i) => ({ address: fleet.address(i) })),
      [{ name: "http", port: fleet.port }],
    ),
  );
}

function gatewayConfig(kubeconfig: string): string {
  return `
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${kubeconfig}
routes: []
`;
}

async function start(
  fake: FakeApiServer,
  options: { kubeconfig?: string; pod?: string } = {},
): Promise<TestGateway> {
  const pod = options.pod ?? "pod-a";
  return await startTestGateway(gatewayConfig(options.kubeconfig ?? fake.kubeconfigPath), {
    discoveryTuning: TUNING,
    env: (name) => name === "HOSTNAME" ? pod : Deno.env.get(name),
  });
}

/** Who answers `path` (an address, or the status when not 200); `host` is sent as the Host header. */
async function answer(gw: TestGateway, path: string, host?: string): Promise<string> {
  const response = await send(gw, path, host);
  const text = await response.text();
  return response.status === 200 ? text : String(response.status);
}

/** A GET of `path`, with `host` as its Host header (fetch replaces it without allowHost). */
async function send(gw: TestGateway, path: string, host?: string): Promise<Response> {
  if (host === undefined) return await fetch(gw.url + path);
  using client = Deno.createHttpClient({ allowHost: true });
  const response = await fetch(gw.url + path, { headers: { host }, client });
  const body = await response.arrayBuffer();
  return new Response(body, { status: response.status, headers: response.headers });
}

/** Waits until `path` is answered by `expected`; returns how long it took. */
async function until(gw: TestGateway, path: string, expected: string, ms = 1000) {
  const started = performance.now();
  await eventually(ms, `${path} answered by ${expected}`, async () => {
    for (let i = 0; i < 3; i++) if (await answer(gw, path) !== expected) return false;
    return true;
  });
  return performance.now() - started;
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  observedGeneration?: number;
}

function conditionsOf(status: unknown, path: (s: Record<string, unknown>) => unknown): Condition[] {
  return (path((status ?? {}) as Record<string, unknown>) ?? []) as Condition[];
}

function writesFor(fake: FakeApiServer, kind: string, name: string): StatusWrite[] {
  return fake.statusWrites.filter((w) => w.kind === kind && w.name === name);
}

async function setup() {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const fleet = pods(4);
  fake.apply(gatewayClass("vanguard", CONTROLLER));
  fake.apply(gatewayClass("someone-else", "example.com/other-controller"));
  fake.apply(gateway("default", "gw", "vanguard"));
  fake.apply(gateway("default", "their-gw", "someone-else"));
  backend(fake, fleet, "web", [0]);
  backend(fake, fleet, "api", [1]);
  return {
    fake,
    fleet,
    async close(...gateways: TestGateway[]) {
      for (const gw of gateways) await gw.close();
      await fake.close();
      await fleet.close();
    },
  };
}

function webRoute(options: { prefix?: string; to?: string } = {}): K8sObject {
  return httpRoute("default", "web", {
    parent: "gw",
    rules: [{
      pathPrefix: options.prefix ?? "/web",
      backends: [{ name: options.to ?? "web", port: 80 }],
    }],
  });
}

Deno.test("Gateway API: an HTTPRoute reaches traffic within 1 s of its creation, change and deletion", async () => {
  const { fake, fleet, close } = await setup();
  const gw = await start(fake);
  try {
    assert.equal(await answer(gw, "/web"), "404", "no route before the HTTPRoute exists");
    fake.apply(webRoute());
    const created = await until(gw, "/web", fleet.address(0));
    assert.ok(created < 1000, `created: ${created} ms`);
    // The upstream receives the client's Host (contract section 10).
    const response = await send(gw, "/web", "shop.example.com");
    await response.body?.cancel();
    assert.equal(response.headers.get("x-host"), "shop.example.com");

    fake.apply(webRoute({ to: "api" }));
    const changed = await until(gw, "/web", fleet.address(1));
    assert.ok(changed < 1000, `changed: ${changed} ms`);

    fake.remove("HTTPRoute", "default", "web");
    const deleted = await until(gw, "/web", "404");
    assert.ok(deleted < 1000, `deleted: ${deleted} ms`);

    // An endpoint change of a Service only an HTTPRoute names reaches traffic too.
    fake.apply(webRoute());
    await until(gw, "/web", fleet.address(0));
    backend(fake, fleet, "web", [2]);
    await until(gw, "/web", fleet.address(2));
  } finally {
    await close(gw);
  }
});

Deno.test("Gateway API: status goes through /status with observedGeneration and controllerName, and an unchanged one is not written again", async () => {
  const { fake, fleet, close } = await setup();
  const gw = await start(fake);
  try {
    fake.apply(webRoute());
    await until(gw, "/web", fleet.address(0));
    await eventually(
      2000,
      "the route's status",
      () => writesFor(fake, "HTTPRoute", "web").length > 0,
    );
    const route = fake.get("HTTPRoute", "default", "web")!;
    const parents = (route.status as { parents: Record<string, unknown>[] }).parents;
    assert.equal(parents.length, 1);
    assert.equal(parents[0].controllerName, CONTROLLER);
    assert.deepEqual(parents[0].parentRef, { name: "gw" });
    const conditions = parents[0].conditions as Condition[];
    assert.deepEqual(
      conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
      [["Accepted", "True", "Accepted", 1], ["ResolvedRefs", "True", "ResolvedRefs", 1]],
    );

    await eventually(
      2000,
      "the Gateway's and the class's status",
      () =>
        fake.get("Gateway", "default", "gw")?.status !== undefined &&
        fake.get("GatewayClass", "", "vanguard")?.status !== undefined,
    );
    const gatewayStatus = fake.get("Gateway", "default", "gw")!.status as {
      conditions: Condition[];
      listeners: { name: string; attachedRoutes: number }[];
    };
    assert.deepEqual(
      gatewayStatus.conditions.map((c) => [c.type, c.status, c.observedGeneration]),
      [["Accepted", "True", 1], ["Programmed", "True", 1]],
    );
    await eventually(
      2000,
      "attachedRoutes 1",
      () =>
        (fake.get("Gateway", "default", "gw")!.status as typeof gatewayStatus).listeners[0]
          .attachedRoutes === 1,
    );
    const classStatus = conditionsOf(
      fake.get("GatewayClass", "", "vanguard")!.status,
      (s) => s.conditions,
    );
    assert.deepEqual(classStatus.map((c) => [c.type, c.status]), [["Accepted", "True"]]);

    // Another controller's class and Gateway are not ours to write.
    assert.equal(fake.get("GatewayClass", "", "someone-else")!.status, undefined);
    assert.equal(fake.get("Gateway", "default", "their-gw")!.status, undefined);
    assert.equal(writesFor(fake, "GatewayClass", "someone-else").length, 0);
    assert.equal(writesFor(fake, "Gateway", "their-gw").length, 0);

    // Events that change nothing the status says (endpoints, a label) write nothing.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const writes = fake.statusWrites.length;
    backend(fake, fleet, "web", [0, 3]);
    fake.apply({ ...webRoute(), metadata: { ...webRoute().metadata, labels: { team: "a" } } });
    await eventually(1000, "both endpoints", async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add(await answer(gw, "/web"));
      return seen.size === 2;
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(fake.statusWrites.length, writes, "no status write for an unchanged status");

    // A spec change is a new generation: the status follows it.
    fake.apply(webRoute({ to: "missing" }));
    await eventually(2000, "observedGeneration 2", () => {
      const status = fake.get("HTTPRoute", "default", "web")!.status as typeof route.status;
      const now = conditionsOf(
        status,
        (s) => (s.parents as { conditions: unknown }[])[0].conditions,
      );
      return now.every((c) => c.observedGeneration === 2);
    });
    const after = conditionsOf(
      fake.get("HTTPRoute", "default", "web")!.status,
      (s) => (s.parents as { conditions: unknown }[])[0].conditions,
    );
    const resolved = after.find((c) => c.type === "ResolvedRefs")!;
    assert.equal(resolved.status, "False");
    assert.equal(resolved.reason, "BackendNotFound");
    // The unresolved backend answers 500 for its share (all of it here).
    assert.equal(await answer(gw, "/web"), "500");
  } finally {
    await close(gw);
  }
});

Deno.test("Gateway API: of two gateway instances only the Lease holder writes status; when it stops, the other takes over", async () => {
  const { fake, fleet, close } = await setup();
  const secondKubeconfig = await fake.addToken("token-b");
  const a = await start(fake, { pod: "pod-a" });
  await eventually(
    2000,
    "pod-a to hold the lease",
    () =>
      (fake.get("Lease", "default", "vanguard-gateway-status")?.spec as { holderIdentity?: string })
        ?.holderIdentity === "pod-a",
  );
  const b = await start(fake, { pod: "pod-b", kubeconfig: secondKubeconfig });
  try {
    fake.apply(webRoute());
    await until(a, "/web", fleet.address(0));
    await until(b, "/web", fleet.address(0));
    await eventually(
      2000,
      "the route's status",
      () => writesFor(fake, "HTTPRoute", "web").length > 0,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(fake.statusWrites.length > 0);
    assert.ok(
      fake.statusWrites.every((w) => w.authorization === "Bearer test-token"),
      "every status write came from pod-a",
    );

    await a.close();
    await eventually(
      3000,
      "pod-b to hold the lease",
      () =>
        (fake.get("Lease", "default", "vanguard-gateway-status")?.spec as {
          holderIdentity?: string;
        })
          ?.holderIdentity === "pod-b",
    );
    const before = fake.statusWrites.length;
    fake.apply(webRoute({ to: "missing" }));
    await eventually(3000, "pod-b's write", () => fake.statusWrites.length > before);
    assert.ok(fake.statusWrites.slice(before).every((w) => w.authorization === "Bearer token-b"));
  } finally {
    await close(b);
  }
});

Deno.test("Ingress: an Ingress of the vanguard class routes traffic; one of another class does not", async () => {
  const { fake, fleet, close } = await setup();
  fake.apply(ingressClass("vanguard", "vanguard.io/ingress-controller"));
  fake.apply(ingressClass("nginx", "k8s.io/ingress-nginx"));
  const gw = await start(fake);
  try {
    fake.apply(ingress("default", "shop", {
      className: "vanguard",
      host: "shop.example.com",
      paths: [{ path: "/shop", service: "web", port: 80 }],
    }));
    fake.apply(ingress("default", "theirs", {
      className: "nginx",
      paths: [{ path: "/theirs", service: "api", port: 80 }],
    }));
    const started = performance.now();
    await eventually(
      1000,
      "the Ingress route",
      async () => await answer(gw, "/shop", "shop.example.com") === fleet.address(0),
    );
    assert.ok(performance.now() - started < 1000);
    assert.equal(await answer(gw, "/shop", "other.example.com"), "404", "host rule");
    assert.equal(await answer(gw, "/theirs"), "404", "another class is not ours");
    // Its status is written (status.loadBalancer), the other class's is not.
    await eventually(
      2000,
      "the Ingress status",
      () => writesFor(fake, "Ingress", "shop").length > 0,
    );
    assert.equal(writesFor(fake, "Ingress", "theirs").length, 0);
  } finally {
    await close(gw);
  }
});

Deno.test("Gateway API: a cluster without the Gateway API CRDs starts, says so once, and serves Services and Ingresses", async () => {
  const fake = await startFakeApiServer({
    bookmarkIntervalMs: 300,
    without: ["GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"],
  });
  const fleet = pods(1);
  backend(fake, fleet, "web", [0]);
  fake.apply(ingressClass("vanguard", "vanguard.io/ingress-controller", true));
  fake.apply(ingress("default", "shop", { paths: [{ path: "/", service: "web", port: 80 }] }));
  const gw = await start(fake);
  try {
    await until(gw, "/anything", fleet.address(0));
    const absent = gw.logs.filter((r) => r.event === "discovery_kind_absent").map((r) => r.watch);
    assert.deepEqual(
      absent.sort(),
      [
        "gatewayclasses",
        "gateways in default",
        "httproutes in default",
        "referencegrants in default",
      ],
    );
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(
      metrics,
      /vanguard_discovery_connected 1/,
      "an absent kind is not a lost connection",
    );
  } finally {
    await gw.close();
    await fake.close();
    await fleet.close();
  }
});
