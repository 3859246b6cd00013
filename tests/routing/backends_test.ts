import assert from "node:assert/strict";
import {
  closedPort,
  eventually,
  rawRequest,
  startUpstream,
  type TestServer,
  withGateway,
} from "../helpers.ts";

/** An upstream that answers with its own name. */
function named(name: string): TestServer {
  return startUpstream(() => new Response(name));
}

/** Counts which upstream served each of `n` requests (sent 20 at a time). */
async function tally(
  url: string,
  n: number,
  headers: (i: number) => Record<string, string> = () => ({}),
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let start = 0; start < n; start += 20) {
    const batch = Array.from({ length: Math.min(20, n - start) }, async (_, j) => {
      const response = await fetch(url, { headers: headers(start + j) });
      const body = await response.text();
      const key = response.status === 200 ? body : String(response.status);
      counts[key] = (counts[key] ?? 0) + 1;
    });
    await Promise.all(batch);
  }
  return counts;
}

Deno.test("a 70/30 split serves within 5% of its weights over 1,000 requests; weight 0 gets nothing", async () => {
  const v1 = named("v1");
  const v2 = named("v2");
  const off = named("off");
  const yaml = `services:
  v1: { urls: [${v1.url}] }
  v2: { urls: [${v2.url}] }
  off: { urls: [${off.url}] }
routes:
  - id: split
    path_prefix: /
    backends:
      - { service_name: v1, weight: 70 }
      - { service_name: v2, weight: 30 }
      - { service_name: off, weight: 0 }
`;
  await withGateway([v1, v2, off], yaml, async (gw) => {
    const counts = await tally(`${gw.url}/x`, 1000);
    assert.equal(counts.off, undefined, `weight 0 served: ${JSON.stringify(counts)}`);
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), 1000, JSON.stringify(counts));
    const share = (counts.v1 ?? 0) / 1000;
    assert.ok(Math.abs(share - 0.7) <= 0.05, `v1 share ${share}, counts ${JSON.stringify(counts)}`);
  });
});

Deno.test("a backend without a ready endpoint is skipped while another can serve; 503 only when none can", async () => {
  const live = named("live");
  const yaml = `services:
  live: { urls: [${live.url}] }
  empty: { urls: [] }
routes:
  - id: some
    path_prefix: /some
    backends:
      - { service_name: empty, weight: 90 }
      - { service_name: live, weight: 10 }
  - id: none
    path_prefix: /none
    backends:
      - { service_name: empty, weight: 50 }
      - { service_name: missing, weight: 50 }
`;
  await withGateway(live, yaml, async (gw) => {
    assert.deepEqual(await tally(`${gw.url}/some`, 100), { live: 100 });
    const response = await fetch(`${gw.url}/none`);
    assert.equal(response.status, 503);
    assert.equal((await response.json()).error, "no_healthy_upstream");
  });
});

Deno.test("sticky by header or cookie keeps a user on one backend; requests without it are split", async () => {
  const a = named("a");
  const b = named("b");
  const yaml = `services:
  a: { urls: [${a.url}] }
  b: { urls: [${b.url}] }
routes:
  - id: by-header
    path_prefix: /h
    backends: [{ service_name: a, weight: 50 }, { service_name: b, weight: 50 }]
    sticky: { header: X-User }
  - id: by-cookie
    path_prefix: /c
    backends: [{ service_name: a, weight: 50 }, { service_name: b, weight: 50 }]
    sticky: { cookie: user }
`;
  await withGateway([a, b], yaml, async (gw) => {
    const seen = new Set<string>();
    for (let user = 0; user < 20; user++) {
      const header = await tally(`${gw.url}/h`, 20, () => ({ "x-user": `user-${user}` }));
      assert.equal(
        Object.keys(header).length,
        1,
        `user-${user} flapped: ${JSON.stringify(header)}`,
      );
      const cookie = await tally(`${gw.url}/c`, 20, () => ({
        cookie: `theme=dark; user=user-${user}; lang=en`,
      }));
      assert.equal(
        Object.keys(cookie).length,
        1,
        `user-${user} flapped: ${JSON.stringify(cookie)}`,
      );
      // The same value hashes the same way through either source.
      assert.deepEqual(Object.keys(cookie), Object.keys(header));
      seen.add(Object.keys(header)[0]);
    }
    assert.deepEqual([...seen].sort(), ["a", "b"], "20 users all landed on one backend");
    const anonymous = await tally(`${gw.url}/h`, 200);
    assert.ok((anonymous.a ?? 0) > 50 && (anonymous.b ?? 0) > 50, JSON.stringify(anonymous));
  });
});

Deno.test("the access log names the host and the backend chosen; /routes shows the weights", async () => {
  const v1 = named("v1");
  const v2 = named("v2");
  const yaml = `services:
  v1: { urls: [${v1.url}] }
  v2: { urls: [${v2.url}] }
routes:
  - id: split
    hosts: [api.example.com]
    path_prefix: /
    backends: [{ service_name: v1, weight: 1 }, { service_name: v2, weight: 0 }]
`;
  await withGateway([v1, v2], yaml, async (gw) => {
    const response = await rawRequest(`${gw.url}/x`, { headers: { host: "API.example.com:8443" } });
    assert.equal(new TextDecoder().decode(response.body), "v1");
    const record = gw.logs.find((line) => line.event === "request");
    assert.equal(record?.host, "api.example.com");
    assert.equal(record?.backend, "v1");
    assert.equal(record?.route, "split");

    const routes = await (await fetch(`${gw.adminUrl}/routes`)).json();
    assert.deepEqual(routes.routes[0].backends, [
      { service_name: "v1", weight: 1, ready_endpoints: 1 },
      { service_name: "v2", weight: 0, ready_endpoints: 1 },
    ]);
    assert.equal(routes.routes[0].filters, null);
  });
});

Deno.test("a backend whose endpoints fail their health checks is skipped while another is healthy", async () => {
  const live = named("live");
  const yaml = `services:
  live: { urls: [${live.url}] }
  broken:
    urls: [http://127.0.0.1:${closedPort()}]
    health_check: { path: /healthz, interval_ms: 50, timeout_ms: 50, unhealthy_threshold: 1 }
routes:
  - id: split
    path_prefix: /
    backends: [{ service_name: live, weight: 50 }, { service_name: broken, weight: 50 }]
`;
  await withGateway(live, yaml, async (gw) => {
    await eventually(2000, "the broken endpoint marked down", async () => {
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return /vanguard_health_check_failures_total\{[^}]*\} [1-9]/.test(metrics);
    });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`${gw.url}/x`);
      const key = response.status === 200 ? await response.text() : String(response.status);
      if (response.status !== 200) await response.body?.cancel();
      counts[key] = (counts[key] ?? 0) + 1;
    }
    assert.deepEqual(counts, { live: 40 });
  });
});
