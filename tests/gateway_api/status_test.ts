/**
 * Status writing and the status Lease against the fake API server: its
 * `/status` subresource and Lease semantics as the real server has them,
 * the leader election (create, renew, stand by, take over an expired
 * lease, give it up, survive a dead server) and the writer (writes a
 * changed status once, never an unchanged one, only as leader, retries a
 * stale copy).
 */
import assert from "node:assert/strict";
import { type KubeAccess, loadKubeAccess } from "../../lib/discovery/kube_access.ts";
import { LeaderElection, STATUS_LEASE_NAME } from "../../lib/gateway_api/lease.ts";
import type { HTTPRouteStatus } from "../../lib/gateway_api/objects.ts";
import type { StatusUpdate } from "../../lib/gateway_api/result.ts";
import { canonical, StatusWriter } from "../../lib/gateway_api/status_writer.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { eventually } from "../helpers.ts";
import {
  type FakeApiServer,
  gatewayClass,
  httpRoute,
  type K8sObject,
  startFakeApiServer,
} from "../discovery/fake_apiserver.ts";

const ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

async function withFake(body: (fake: FakeApiServer, access: KubeAccess) => Promise<void>) {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const access = await loadKubeAccess({ kubeconfig: fake.kubeconfigPath, env: () => undefined });
  try {
    await body(fake, access);
  } finally {
    access.close();
    await fake.close();
  }
}

function call(
  access: KubeAccess,
  method: "POST" | "PUT" | "PATCH",
  path: string,
  body: unknown,
  contentType?: string,
): Promise<Response> {
  return access.send({ method, path, body, contentType, signal: AbortSignal.timeout(2000) });
}

async function read(access: KubeAccess, path: string): Promise<Response> {
  return await access.get(path, AbortSignal.timeout(2000));
}

function route(): K8sObject {
  return httpRoute("default", "web", {
    parent: "gw",
    rules: [{ backends: [{ name: "users", port: 80 }] }],
  });
}

const ACCEPTED: HTTPRouteStatus = {
  parents: [{
    parentRef: { name: "gw" },
    controllerName: "vanguard.io/gateway-controller",
    conditions: [{
      type: "Accepted",
      status: "True",
      reason: "Accepted",
      message: "",
      observedGeneration: 1,
      lastTransitionTime: "2024-01-01T00:00:00Z",
    }],
  }],
};

Deno.test("fake API server: a /status PUT changes only the status and bumps the version; a stale version answers 409", async () => {
  await withFake(async (fake, access) => {
    fake.apply(route());
    const before = fake.get("HTTPRoute", "default", "web")!;
    assert.equal(before.metadata.generation, 1);
    const put = await call(access, "PUT", `${ROUTES}/web/status`, {
      ...before,
      spec: { parentRefs: [{ name: "changed-by-status-write" }] },
      status: ACCEPTED,
    });
    assert.equal(put.status, 200);
    const written = await put.json();
    assert.deepEqual(written.status, ACCEPTED);
    assert.deepEqual(written.spec, before.spec, "a status write leaves the spec alone");
    assert.equal(written.metadata.generation, 1);
    assert.ok(Number(written.metadata.resourceVersion) > Number(before.metadata.resourceVersion));

    const stale = await call(access, "PUT", `${ROUTES}/web/status`, { ...before, status: {} });
    assert.equal(stale.status, 409);
    assert.equal((await stale.json()).reason, "Conflict");
    assert.deepEqual(fake.get("HTTPRoute", "default", "web")!.status, ACCEPTED);
    assert.equal(fake.statusWrites.length, 1);
    assert.equal(fake.statusWrites[0].changed, true);
  });
});

Deno.test("fake API server: a merge PATCH of /status, a no-op write bumps nothing, generation follows the spec", async () => {
  await withFake(async (fake, access) => {
    fake.apply(gatewayClass("ours", "vanguard.io/gateway-controller"));
    const path = "/apis/gateway.networking.k8s.io/v1/gatewayclasses/ours/status";
    const conditions = [{ type: "Accepted", status: "True", reason: "Accepted", message: "" }];
    const patch = await call(
      access,
      "PATCH",
      path,
      { status: { conditions } },
      "application/merge-patch+json",
    );
    assert.equal(patch.status, 200);
    const rv = fake.resourceVersion;
    const again = await call(
      access,
      "PATCH",
      path,
      { status: { conditions } },
      "application/merge-patch+json",
    );
    assert.equal(again.status, 200);
    assert.equal(fake.resourceVersion, rv, "a write that changes nothing is not stored");
    assert.deepEqual(fake.statusWrites.map((w) => w.changed), [true, false]);
    const json = await call(access, "PATCH", path, { status: {} }, "application/json-patch+json");
    assert.equal(json.status, 415);
    await json.body?.cancel();

    // A spec change bumps the generation and keeps the status; a label change does neither.
    fake.apply({
      ...gatewayClass("ours", "vanguard.io/gateway-controller"),
      spec: { controllerName: "x" },
    });
    const changed = fake.get("GatewayClass", "", "ours")!;
    assert.equal(changed.metadata.generation, 2);
    assert.deepEqual(changed.status, { conditions });
    const one = await (await read(access, "/apis/gateway.networking.k8s.io/v1/gatewayclasses/ours"))
      .json();
    assert.equal(one.kind, "GatewayClass");
    assert.equal(one.metadata.namespace, undefined, "cluster-scoped");
  });
});

Deno.test("fake API server: Leases are created once (409 AlreadyExists after) and updated with the current version only", async () => {
  await withFake(async (fake, access) => {
    const lease = { metadata: { name: "l" }, spec: { holderIdentity: "a" } };
    const created = await call(access, "POST", LEASES, lease);
    assert.equal(created.status, 201);
    const body = await created.json();
    const twice = await call(access, "POST", LEASES, lease);
    assert.equal(twice.status, 409);
    assert.equal((await twice.json()).reason, "AlreadyExists");
    const update = { ...body, spec: { holderIdentity: "b" } };
    const ok = await call(access, "PUT", `${LEASES}/l`, update);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const stale = await call(access, "PUT", `${LEASES}/l`, {
      ...update,
      spec: { holderIdentity: "c" },
    });
    assert.equal(stale.status, 409);
    await stale.body?.cancel();
    assert.equal(
      (fake.get("Lease", "default", "l")!.spec as { holderIdentity: string }).holderIdentity,
      "b",
    );
  });
});

const FAST = { leaseDurationSeconds: 1, renewIntervalMs: 100, requestTimeoutMs: 1000 };

function election(access: KubeAccess, identity: string, tuning: Partial<typeof FAST> = FAST) {
  const logger = memoryLogger();
  const changes: boolean[] = [];
  const elected = new LeaderElection({
    access,
    namespace: "default",
    identity,
    logger,
    tuning,
    onChange: (leader) => changes.push(leader),
  });
  return { elected, logger, changes };
}

function holder(fake: FakeApiServer): string | undefined {
  const lease = fake.get("Lease", "default", STATUS_LEASE_NAME);
  return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
}

Deno.test("LeaderElection: the first replica creates the Lease and keeps renewing it; a second one stands by", async () => {
  await withFake(async (fake, access) => {
    const a = election(access, "pod-a");
    const b = election(access, "pod-b");
    a.elected.start();
    try {
      await eventually(2000, "pod-a to lead", () => a.elected.isLeader);
      b.elected.start();
      const lease = fake.get("Lease", "default", STATUS_LEASE_NAME)!;
      assert.equal((lease.spec as { leaseDurationSeconds: number }).leaseDurationSeconds, 1);
      // Three lease durations: the holder renews, the other never takes over.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(a.elected.isLeader, true);
      assert.equal(b.elected.isLeader, false);
      assert.equal(holder(fake), "pod-a");
      assert.deepEqual(b.changes, []);
      const renewals = fake.requests.filter((r) =>
        r.method === "PUT" && r.path.endsWith(STATUS_LEASE_NAME)
      );
      assert.ok(renewals.length >= 20, `${renewals.length} renewals in 3 s at 100 ms`);
    } finally {
      await a.elected.stop();
      await b.elected.stop();
    }
  });
});

Deno.test("LeaderElection: a Lease nobody renews is taken over after its duration, not before", async () => {
  await withFake(async (fake, access) => {
    const now = new Date().toISOString();
    fake.apply({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: STATUS_LEASE_NAME, namespace: "default" },
      spec: {
        holderIdentity: "dead-pod",
        leaseDurationSeconds: 1,
        renewTime: now,
        acquireTime: now,
        leaseTransitions: 3,
      },
    });
    const b = election(access, "pod-b");
    const started = performance.now();
    b.elected.start();
    try {
      await eventually(3000, "pod-b to take over", () => b.elected.isLeader);
      const waited = performance.now() - started;
      assert.ok(waited >= 900, `took over after ${waited} ms, before the 1 s lease expired`);
      const spec = fake.get("Lease", "default", STATUS_LEASE_NAME)!.spec as Record<string, unknown>;
      assert.equal(spec.holderIdentity, "pod-b");
      assert.equal(spec.leaseTransitions, 4);
      assert.match(String(spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    } finally {
      await b.elected.stop();
    }
  });
});

Deno.test("LeaderElection: a stopping holder gives the Lease up and the other replica takes it at once", async () => {
  await withFake(async (fake, access) => {
    const slow = { ...FAST, leaseDurationSeconds: 30 };
    const a = election(access, "pod-a", slow);
    const b = election(access, "pod-b", slow);
    a.elected.start();
    await eventually(2000, "pod-a to lead", () => a.elected.isLeader);
    b.elected.start();
    try {
      await a.elected.stop();
      assert.deepEqual(a.changes, [true, false]);
      // Well within the 30 s lease: the lease was released, not left to expire.
      await eventually(2000, "pod-b to lead", () => b.elected.isLeader);
      assert.equal(holder(fake), "pod-b");
    } finally {
      await b.elected.stop();
    }
  });
});

Deno.test("LeaderElection: with the API server gone the holder steps down before the lease expires, and stop() does not hang", async () => {
  await withFake(async (fake, access) => {
    const a = election(access, "pod-a", { ...FAST, leaseDurationSeconds: 2 });
    a.elected.start();
    try {
      await eventually(2000, "pod-a to lead", () => a.elected.isLeader);
      const lost = performance.now();
      await fake.stop();
      await eventually(3000, "pod-a to step down", () => !a.elected.isLeader);
      const after = performance.now() - lost;
      assert.ok(after < 2000, `stepped down after ${after} ms (the lease lasts 2 s)`);
      assert.ok(a.logger.records.some((r) => r.event === "lease_unavailable"));
      await fake.restart();
      await eventually(3000, "pod-a to lead again", () => a.elected.isLeader);
      assert.ok(a.logger.records.some((r) => r.event === "lease_recovered"));
      await fake.stop();
    } finally {
      const stopping = performance.now();
      await a.elected.stop();
      assert.ok(performance.now() - stopping < 1500, "stop() is bounded");
    }
  });
});

/** A writer over the fake whose "watch copy" is the fake's stored object. */
function writer(fake: FakeApiServer, access: KubeAccess, leader: { on: boolean }) {
  const logger = memoryLogger();
  const statusWriter = new StatusWriter({
    access,
    logger,
    isLeader: () => leader.on,
    current: (update) =>
      fake.get(update.kind, "namespace" in update ? update.namespace : "", update.name),
    tuning: { retryInitialMs: 20, retryMaxMs: 100 },
  });
  return { statusWriter, logger };
}

function routeStatus(message: string): StatusUpdate {
  return {
    kind: "HTTPRoute",
    namespace: "default",
    name: "web",
    status: {
      parents: [{
        ...ACCEPTED.parents[0],
        conditions: [{ ...ACCEPTED.parents[0].conditions[0], message }],
      }],
    },
  };
}

Deno.test("StatusWriter: writes a changed status once through /status, and an unchanged one never", async () => {
  await withFake(async (fake, access) => {
    fake.apply(route());
    const { statusWriter } = writer(fake, access, { on: true });
    try {
      statusWriter.sync([routeStatus("one")]);
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 1);
      assert.equal(fake.statusWrites[0].method, "PUT");
      assert.equal(
        canonical(fake.get("HTTPRoute", "default", "web")!.status),
        canonical(routeStatus("one").status),
      );
      for (let i = 0; i < 3; i++) {
        statusWriter.sync([routeStatus("one")]);
        await statusWriter.idle();
      }
      assert.equal(fake.statusWrites.length, 1, "an unchanged status is not written again");
      statusWriter.sync([routeStatus("two")]);
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 2);
      // An object that is gone is skipped, not an error.
      fake.remove("HTTPRoute", "default", "web");
      statusWriter.sync([routeStatus("three")]);
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 2);
    } finally {
      await statusWriter.stop();
    }
  });
});

Deno.test("StatusWriter: only the leader writes; becoming leader writes what is due", async () => {
  await withFake(async (fake, access) => {
    fake.apply(route());
    const leader = { on: false };
    const { statusWriter } = writer(fake, access, leader);
    try {
      statusWriter.sync([routeStatus("one")]);
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 0);
      leader.on = true;
      statusWriter.kick();
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 1);
    } finally {
      await statusWriter.stop();
    }
  });
});

Deno.test("StatusWriter: a write on a stale copy gets 409 and is retried on the newer one", async () => {
  await withFake(async (fake, access) => {
    fake.apply(route());
    let copy = fake.get("HTTPRoute", "default", "web")!;
    const logger = memoryLogger();
    const statusWriter = new StatusWriter({
      access,
      logger,
      isLeader: () => true,
      current: () => copy,
      tuning: { retryInitialMs: 20, retryMaxMs: 100 },
    });
    try {
      // Someone else changes the object after our copy was taken.
      fake.apply({ ...route(), metadata: { ...route().metadata, labels: { moved: "on" } } });
      statusWriter.sync([routeStatus("one")]);
      await statusWriter.idle();
      assert.equal(fake.statusWrites.length, 0, "the stale write was refused");
      assert.ok(
        fake.requests.some((r) => r.method === "PUT" && r.path.endsWith("/web/status")),
      );
      copy = fake.get("HTTPRoute", "default", "web")!; // the watch brings the newer object
      await eventually(2000, "the retried write", () => fake.statusWrites.length === 1);
    } finally {
      await statusWriter.stop();
    }
  });
});

Deno.test("StatusWriter: an unreachable API server is logged once, retried with backoff, and stop() does not hang", async () => {
  await withFake(async (fake, access) => {
    fake.apply(route());
    const copy = fake.get("HTTPRoute", "default", "web")!;
    const logger = memoryLogger();
    const statusWriter = new StatusWriter({
      access,
      logger,
      isLeader: () => true,
      current: () => copy,
      tuning: { retryInitialMs: 20, retryMaxMs: 100, requestTimeoutMs: 500 },
    });
    try {
      await fake.stop();
      statusWriter.sync([routeStatus("one")]);
      await eventually(
        2000,
        "a few tries",
        () =>
          fake.requests.length === 0 &&
          logger.records.some((r) => r.event === "status_write_failed"),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(logger.records.filter((r) => r.event === "status_write_failed").length, 1);
      await fake.restart();
      // The server records the write before the writer has its answer and logs the recovery:
      // wait for both, then check there was exactly one write.
      await eventually(
        3000,
        "the write after recovery, and its log line",
        () =>
          fake.statusWrites.length >= 1 &&
          logger.records.some((r) => r.event === "status_write_recovered"),
      );
      assert.equal(fake.statusWrites.length, 1);
    } finally {
      await statusWriter.stop();
    }
  });
});
