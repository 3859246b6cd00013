/**
 * The Redis limiter on a master found through Sentinel (one master, one
 * replica, three Sentinels, started by tests/redis_topology.ts): exact across
 * two gateway instances, and after the master is killed the gateways follow
 * the master the Sentinels promote, answering by failure_mode meanwhile.
 * Needs only redis-server (run as `redis-server sentinel.conf --sentinel`).
 */
import assert from "node:assert/strict";
import { eventually, startUpstream } from "../helpers.ts";
import { startSentinel } from "../redis_topology.ts";
import {
  bucketKey,
  burst,
  failoverLine,
  limitedYaml,
  measureFailover,
  request,
  startGateways,
  tally,
} from "./limited_gateways.ts";

const LIMIT = 20;
const TIMEOUT_MS = 100;

Deno.test({
  name: "Redis Sentinel: exact across instances; the gateways follow the promoted replica",
  async fn() {
    const sentinel = await startSentinel("mymaster");
    const upstream = startUpstream(() => new Response("ok"));
    const gateways = await startGateways(
      limitedYaml(
        `redis:
  sentinel:
    sentinels: [${sentinel.urls.join(", ")}]
    name: ${sentinel.name}
  failure_mode: closed
  timeout_ms: ${TIMEOUT_MS}`,
        upstream,
        LIMIT,
      ),
      2,
    );
    try {
      await eventually(
        10_000,
        "both gateways to reach the master",
        () => gateways.every((gw) => gw.logs.some((r) => r.event === "redis_connected")),
      );
      const clients = ["s-a", "s-b", "s-c", "s-d"];
      for (const [client, answers] of await burst(gateways, clients, LIMIT + 10)) {
        assert.deepEqual(tally(answers), { 200: LIMIT, 429: 10 }, client);
      }
      assert.equal(await sentinel.command(sentinel.master, "ZCARD", bucketKey("s-a")), LIMIT);

      const cost = await measureFailover({
        gateways,
        clients: ["f-a", "f-b", "f-c", "f-d"],
        limit: LIMIT,
        before: LIMIT / 2,
        crash: () => sentinel.master.kill(),
        recovered: async () => {
          await eventually(20_000, "the Sentinels to promote the replica", async () => {
            return await sentinel.currentMaster() === sentinel.replica.port;
          });
          await eventually(10_000, "the gateways to follow the new master", async () => {
            for (const gw of gateways) {
              if ((await request(gw, "probe")).status === 503) return false;
            }
            return true;
          });
        },
      });
      console.log(failoverLine(cost, LIMIT, "4 clients, Sentinel, master killed, replica in sync"));
      assert.ok(cost.during.some((a) => a.status === 503), "closed: 503 while no master serves");
      const slowest = Math.max(...cost.during.map((a) => a.ms));
      assert.ok(slowest <= 2 * TIMEOUT_MS + 250, `slowest answer ${slowest.toFixed(0)} ms`);
      assert.ok(cost.worst <= LIMIT);
      // Fresh buckets are exact, and counted on the promoted replica.
      for (const [client, answers] of await burst(gateways, ["n-a", "n-b"], LIMIT + 10)) {
        assert.deepEqual(tally(answers), { 200: LIMIT, 429: 10 }, client);
      }
      assert.equal(await sentinel.command(sentinel.replica, "ZCARD", bucketKey("n-a")), LIMIT);
      for (const gw of gateways) {
        assert.ok(
          gw.logs.some((r) => r.event === "redis_connected" && r.reconnect === true),
          "each gateway reconnected to the new master",
        );
        assert.equal(gw.logs.filter((r) => r.event === "redis_unavailable").length, 1);
      }
    } finally {
      await Promise.all(gateways.map((gw) => gw.close()));
      await upstream.close();
      await sentinel.stop();
    }
  },
});
