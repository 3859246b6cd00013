/**
 * Kubernetes discovery with worker threads: the main thread watches the
 * (fake) API server and sends each new table to every worker; an endpoint
 * change reaches every worker's traffic within 1 s.
 */
import assert from "node:assert/strict";
import { closedPort, eventually, rawRequest, startTestGateway } from "../helpers.ts";
import { endpointSlice, service, startFakeApiServer } from "../discovery/fake_apiserver.ts";

/** Who answers `count` GETs, each on a fresh connection (so both workers answer some). */
async function answers(url: string, count: number): Promise<string[]> {
  return await Promise.all(Array.from({ length: count }, async () => {
    const response = await rawRequest(url);
    const body = new TextDecoder().decode(response.body);
    return response.status === 200 ? body : String(response.status);
  }));
}

Deno.test("with workers, an endpoint change from discovery reaches every worker within 1 s", async () => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const port = closedPort();
  const pods = ["127.0.0.2", "127.0.0.3"].map((hostname) =>
    Deno.serve({ hostname, port, onListen() {} }, () => new Response(hostname))
  );
  const slice = (address: string) =>
    endpointSlice("default", "users-a", "users", [{ address }], [{ name: "http", port }]);
  fake.apply(service("default", "users", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(slice("127.0.0.2"));
  const gw = await startTestGateway(
    `server:
  workers: 2
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${fake.kubeconfigPath}
routes:
  - { id: users, path_prefix: /users, service_name: users }
`,
    {
      workerLogs: "logger",
      discoveryTuning: {
        inactivityMs: 1500,
        backoffInitialMs: 50,
        backoffMaxMs: 400,
        coalesceMs: 10,
      },
    },
  );
  try {
    assert.deepEqual([...new Set(await answers(`${gw.url}/users`, 20))], ["127.0.0.2"]);
    const changed = performance.now();
    fake.apply(slice("127.0.0.3"));
    await eventually(1000, "every worker to route to 127.0.0.3", async () => {
      const seen = new Set(await answers(`${gw.url}/users`, 20));
      return seen.size === 1 && seen.has("127.0.0.3");
    });
    assert.ok(performance.now() - changed < 1000);
    await eventually(
      1000,
      "both workers in the access log",
      () =>
        [0, 1].every((worker) =>
          gw.logs.some((record) =>
            record.event === "request" && record.worker === worker &&
            String(record.upstream).includes("127.0.0.3")
          )
        ),
    );
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^vanguard_discovery_connected 1$/m, "the main thread's gauge");
  } finally {
    await gw.close();
    await fake.close();
    await Promise.all(pods.map((pod) => pod.shutdown()));
  }
});
