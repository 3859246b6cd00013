/**
 * The Redis limiter on a real Redis Cluster (3 masters, one replica each,
 * started by tests/redis_topology.ts): exact limits across two gateway
 * instances with buckets on every master, redirects followed during a slot
 * migration, and what a master's crash costs: answers within the timeout by
 * failure_mode while it fails over, exact again once its replica serves, and
 * the admissions lost with counts it had not replicated, measured and
 * printed. Skipped, with the reason printed, only where redis-cli is missing.
 */
import assert from "node:assert/strict";
import { keySlot } from "../../lib/ratelimit/key_slot.ts";
import { eventually, metricValue, startUpstream, type TestGateway } from "../helpers.ts";
import {
  redisCliMissing,
  type RedisNode,
  startCluster,
  type TestCluster,
} from "../redis_topology.ts";
import {
  type Answer,
  bucketKey,
  burst,
  clientsWhere,
  failoverLine,
  limitedYaml,
  measureFailover,
  request,
  startGateways,
  stream,
  tally,
} from "./limited_gateways.ts";

const unavailable = await redisCliMissing();
if (unavailable !== undefined) console.log(`Redis Cluster tests skipped: ${unavailable}`);

const LIMIT = 20;
const TIMEOUT_MS = 100;
/** Most a request may wait on Redis (a free call, then its answer), plus the gateway's own time. */
const ANSWER_BOUND_MS = 2 * TIMEOUT_MS + 250;

function clusterSection(cluster: TestCluster, mode: "open" | "closed" | "local"): string {
  return `redis:
  cluster:
    nodes: [${cluster.urls.join(", ")}]
  failure_mode: ${mode}
  timeout_ms: ${TIMEOUT_MS}`;
}

async function connected(gateways: readonly TestGateway[]): Promise<void> {
  await eventually(
    10_000,
    "every gateway to connect to the cluster",
    () => gateways.every((gw) => gw.logs.some((r) => r.event === "redis_connected")),
  );
}

async function closeAll(gateways: readonly TestGateway[]): Promise<void> {
  await Promise.all(gateways.map((gw) => gw.close()));
}

async function metric(gw: TestGateway, series: string): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return metricValue(text, series) ?? 0;
}

/** Clients whose buckets live on `master` in the slot map `owner`. */
function clientsOn(
  owner: (slot: number) => RedisNode,
  master: RedisNode,
  prefix: string,
  count: number,
): string[] {
  return clientsWhere(prefix, count, (key) => owner(keySlot(key)) === master);
}

/** Script calls a node has run since its last CONFIG RESETSTAT. */
async function scriptCalls(cluster: TestCluster, node: RedisNode): Promise<number> {
  const stats = String(await cluster.command(node, "INFO", "commandstats"));
  return [...stats.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)]
    .reduce((sum, match) => sum + Number(match[1]), 0);
}

/**
 * Waits until the cluster serves every slot again and every gateway answers
 * for `clients` from Redis (not by its failure mode): the replica serves.
 */
async function servedAgain(
  cluster: TestCluster,
  gateways: readonly TestGateway[],
  clients: readonly string[],
): Promise<void> {
  await cluster.settled();
  await eventually(15_000, "the gateways to reach the promoted replica", async () => {
    for (const gw of gateways) {
      for (const client of clients) {
        if ((await request(gw, client)).status === 503) return false;
      }
    }
    return true;
  });
}

Deno.test({
  name: "Redis Cluster: exact limits across instances, redirects followed, failovers measured",
  ignore: unavailable !== undefined,
  async fn(t) {
    const cluster = await startCluster({ nodeTimeoutMs: 1000 });
    const upstream = startUpstream(() => new Response("ok"));
    try {
      await t.step(
        "two gateways admit exactly N of N+10 concurrent requests per bucket, with buckets on every master",
        async () => {
          const gateways = await startGateways(
            limitedYaml(clusterSection(cluster, "closed"), upstream, LIMIT),
            2,
          );
          try {
            await connected(gateways);
            const owner = await cluster.owners();
            const clients = cluster.masters.flatMap((master) =>
              clientsOn(owner, master, `spread-${master.port}`, 4)
            );
            for (const client of clients) {
              const key = bucketKey(client);
              assert.equal(
                await cluster.command(cluster.masters[0], "CLUSTER", "KEYSLOT", key),
                keySlot(key),
                `keySlot(${key}) is the slot Redis computes`,
              );
            }
            for (const master of cluster.masters) {
              await cluster.command(master, "CONFIG", "RESETSTAT");
            }
            const answers = await burst(gateways, clients, LIMIT + 10);
            for (const [client, list] of answers) {
              assert.deepEqual(tally(list), { 200: LIMIT, 429: 10 }, client);
            }
            for (const client of clients) {
              const key = bucketKey(client);
              const master = owner(keySlot(key));
              assert.equal(
                await cluster.command(master, "ZCARD", key),
                LIMIT,
                `${key} on its master`,
              );
            }
            // Each master got 4 buckets x 30 checks; the checks of a bucket share script calls.
            for (const master of cluster.masters) {
              const calls = await scriptCalls(cluster, master);
              assert.ok(calls >= 4 && calls < 120, `${calls} script calls on ${master.address}`);
            }
            assert.ok(
              gateways.every((gw) => !gw.logs.some((r) => r.event === "redis_unavailable")),
            );
          } finally {
            await closeAll(gateways);
          }
        },
      );

      await t.step(
        "a slot migrated by hand: ASK, then MOVED, are followed and counted; the bucket stays exact",
        async () => {
          const gateways = await startGateways(
            limitedYaml(clusterSection(cluster, "closed"), upstream, LIMIT),
            2,
          );
          try {
            await connected(gateways);
            const owner = await cluster.owners();
            const source = cluster.masters[2];
            const target = cluster.masters[1];
            const [client] = clientsOn(owner, source, "migrated", 1);
            const key = bucketKey(client);
            const slot = String(keySlot(key));
            // A client on the same master in another slot, in the same bursts: its bucket stays
            // exact while its neighbour's slot moves.
            const neighbour = clientsOn(owner, source, "neighbour", 10)
              .find((c) => String(keySlot(bucketKey(c))) !== slot)!;
            assert.deepEqual(tally([...(await burst(gateways, [client], 5)).values()].flat()), {
              200: 5,
            });
            const sourceId = String(await cluster.command(source, "CLUSTER", "MYID"));
            const targetId = String(await cluster.command(target, "CLUSTER", "MYID"));
            assert.equal(
              await cluster.command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId),
              "OK",
            );
            assert.equal(
              await cluster.command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", targetId),
              "OK",
            );
            const [host, port] = target.address.split(":");
            assert.equal(
              await cluster.command(source, "MIGRATE", host, port, "", "0", "5000", "KEYS", key),
              "OK",
            );
            // The key has left the source, which still owns the slot: it answers ASK.
            const asked = await burst(gateways, [client, neighbour], 4);
            assert.deepEqual(tally(asked.get(client)!), { 200: 4 });
            assert.deepEqual(tally(asked.get(neighbour)!), { 200: 4 });
            for (const node of [target, source, cluster.masters[0]]) {
              await cluster.command(node, "CLUSTER", "SETSLOT", slot, "NODE", targetId);
            }
            // The gateways' slot maps still name the source: it answers MOVED.
            const moved = await burst(gateways, [client, neighbour], 20);
            assert.deepEqual(tally(moved.get(client)!), { 200: LIMIT - 9, 429: 9 });
            assert.deepEqual(tally(moved.get(neighbour)!), { 200: LIMIT - 4, 429: 4 });
            assert.equal(await cluster.command(target, "ZCARD", key), LIMIT);
            const redirects = async (kind: string) => {
              let sum = 0;
              for (const gw of gateways) {
                sum += await metric(
                  gw,
                  `vanguard_redis_redirects_total{node="${target.address}",kind="${kind}"}`,
                );
              }
              return sum;
            };
            assert.ok(await redirects("ask") >= 2, "every gateway followed an ASK");
            assert.ok(await redirects("moved") >= 1, "a MOVED was followed");
          } finally {
            await closeAll(gateways);
          }
        },
      );

      await t.step(
        "a master killed: its buckets answer by failure_mode within the timeout, the rest are served, and limits are exact after promotion",
        async () => {
          const owner = await cluster.owners();
          const victim = cluster.masters[0];
          const redis = (mode: "open" | "closed" | "local") =>
            limitedYaml(clusterSection(cluster, mode), upstream, LIMIT);
          const closed = await startGateways(redis("closed"), 2);
          const [open] = await startGateways(redis("open"), 1);
          const [local] = await startGateways(redis("local"), 1);
          const all = [...closed, open, local];
          try {
            await connected(all);
            const measured = clientsOn(owner, victim, "crash", 6);
            const others = cluster.masters.slice(1).flatMap((master) =>
              clientsOn(owner, master, `control-${master.port}`, 1)
            );
            const openClients = clientsOn(owner, victim, "open", 2);
            const localClients = clientsOn(owner, victim, "local", 2);
            const control = stream(closed, others);
            const openTraffic = stream([open], openClients);
            const localTraffic = stream([local], localClients);
            let ready: number[] = [];
            let cost;
            let controlled: Map<string, Answer[]>;
            let opened: Map<string, Answer[]>;
            let localized: Map<string, Answer[]>;
            try {
              cost = await measureFailover({
                gateways: closed,
                clients: measured,
                limit: LIMIT,
                before: LIMIT / 2,
                crash: async () => {
                  await victim.kill();
                  await new Promise((resolve) => setTimeout(resolve, 300));
                  ready = await Promise.all(all.map(async (gw) => {
                    const response = await fetch(`${gw.adminUrl}/readyz`);
                    await response.body?.cancel();
                    return response.status;
                  }));
                },
                recovered: () => servedAgain(cluster, closed, measured),
              });
            } finally {
              controlled = await control.stop();
              opened = await openTraffic.stop();
              localized = await localTraffic.stop();
            }
            console.log(failoverLine(
              cost,
              LIMIT,
              `${measured.length} clients, Redis Cluster, master killed, replica in sync`,
            ));
            assert.deepEqual(ready, [200, 200, 200, 200], "/readyz stays 200 during the failover");
            const answers: Answer[] = [
              ...cost.during,
              ...[...controlled.values(), ...opened.values(), ...localized.values()].flat(),
            ];
            const slowest = Math.max(...answers.map((a) => a.ms));
            assert.ok(slowest <= ANSWER_BOUND_MS, `slowest answer ${slowest.toFixed(0)} ms`);
            assert.ok(cost.during.some((a) => a.status === 503), "closed: its buckets answer 503");
            assert.ok(cost.during.every((a) => [200, 429, 503].includes(a.status)));
            const controlAnswers = [...controlled.values()].flat();
            assert.ok(
              controlAnswers.every((a) => a.status !== 503),
              `the other masters' buckets are served: ${JSON.stringify(tally(controlAnswers))}`,
            );
            const openAnswers = [...opened.values()].flat();
            assert.ok(openAnswers.every((a) => a.status !== 503));
            assert.ok(
              openAnswers.some((a) => a.status === 200 && !a.counted),
              "open: admitted uncounted while the master was down",
            );
            assert.ok([...localized.values()].flat().every((a) => a.status !== 503));
            assert.ok(cost.worst <= LIMIT, "at most one window's extra admissions");

            // One outage line per gateway for the node, not one per request; and its end.
            for (const gw of closed) {
              const lines = gw.logs.filter((r) => r.node === victim.address);
              assert.equal(
                lines.filter((r) => r.event === "redis_unavailable").length,
                1,
                JSON.stringify(lines),
              );
              assert.ok(lines.some((r) => r.event === "redis_recovered"), JSON.stringify(lines));
              assert.ok(
                await metric(gw, `vanguard_redis_node_errors_total{node="${victim.address}"}`) > 0,
              );
            }

            // Exact again: fresh buckets on the promoted replica, through every mode's gateways.
            const promoted = (await cluster.owners())(keySlot(bucketKey(measured[0])));
            assert.notEqual(promoted, victim);
            const fresh = clientsOn(await cluster.owners(), promoted, "fresh", 3);
            for (const [client, list] of await burst(closed, fresh, LIMIT + 10)) {
              assert.deepEqual(tally(list), { 200: LIMIT, 429: 10 }, client);
            }
            for (const gw of [open, local]) {
              const mine = clientsOn(await cluster.owners(), promoted, `fresh-${gw.url}`, 2);
              for (const [client, list] of await burst([gw], mine, LIMIT + 10)) {
                assert.deepEqual(tally(list), { 200: LIMIT, 429: 10 }, client);
              }
            }
          } finally {
            await closeAll(all);
          }
        },
      );

      await t.step(
        "a master killed while its replica lags: the counts it had not replicated are lost, at most one window per client (measured)",
        async () => {
          const owner = await cluster.owners();
          const victim = cluster.masters[1];
          const replica = cluster.replicas[1];
          const gateways = await startGateways(
            limitedYaml(clusterSection(cluster, "closed"), upstream, LIMIT),
            2,
          );
          try {
            await connected(gateways);
            const clients = clientsOn(owner, victim, "lagging", 6);
            const cost = await measureFailover({
              gateways,
              clients,
              limit: LIMIT,
              before: LIMIT / 2,
              crash: async () => {
                // The replica stops hearing from its master: what the master
                // admits from now on exists only there.
                replica.pause();
                await cluster.command(victim, "CLIENT", "KILL", "TYPE", "replica");
                await new Promise((resolve) => setTimeout(resolve, 400));
                await victim.kill();
                replica.resume();
              },
              recovered: () => servedAgain(cluster, gateways, clients),
            });
            console.log(failoverLine(
              cost,
              LIMIT,
              `${clients.length} clients, Redis Cluster, master killed 400 ms after its replica ` +
                "stopped hearing from it",
            ));
            assert.ok(cost.extra > 0, "what the old master admitted alone is lost");
            assert.ok(cost.worst <= LIMIT, "at most one window's extra admissions per client");
            const slowest = Math.max(...cost.during.map((a) => a.ms));
            assert.ok(slowest <= ANSWER_BOUND_MS, `slowest answer ${slowest.toFixed(0)} ms`);
          } finally {
            await closeAll(gateways);
          }
        },
      );
    } finally {
      await upstream.close();
      await cluster.stop();
    }
  },
});
