/**
 * FailoverLimiter on a Redis Cluster (`byNode`): each node has its own
 * outage, logged once when it starts and once when it ends, and checks on
 * the other nodes neither end it nor start new ones.
 */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/admin/metrics.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { FailoverLimiter } from "../../lib/ratelimit/failover.ts";
import type { Decision, Limiter, LimitRequest } from "../../lib/ratelimit/limiter.ts";
import { RedisUnavailableError } from "../../lib/ratelimit/redis.ts";

const ALLOWED: Decision = { allowed: true, remaining: 1, resetMs: 0 };

/** A primary whose checks for buckets starting "a" fail on node A while `aDown`; the rest pass. */
function cluster() {
  const state = { aDown: true };
  const primary: Limiter = {
    check(request: LimitRequest): Promise<Decision> {
      if (request.key.startsWith("a") && state.aDown) {
        return Promise.reject(
          new RedisUnavailableError("connection closed", { node: "10.0.0.1:6379" }),
        );
      }
      return Promise.resolve(ALLOWED);
    },
    close: () => Promise.resolve(),
  };
  const fallback: Limiter = {
    check: () => Promise.resolve({ allowed: true, remaining: 0, resetMs: 0 }),
    close: () => Promise.resolve(),
  };
  return { state, primary, fallback };
}

const check = (key: string) => ({ key, limit: 10, windowMs: 1000 });

Deno.test("FailoverLimiter byNode: a node's outage is logged once, outlives successes on other nodes, and ends when the node answers or is gone", async () => {
  for (const how of ["answered", "gone"] as const) {
    const { primary, fallback } = cluster();
    const logger = memoryLogger();
    let now = 0;
    const limiter = new FailoverLimiter({
      primary,
      fallback,
      mode: "closed",
      logger,
      metrics: new Metrics(),
      address: "Redis Cluster via 10.0.0.1:6379",
      byNode: true,
      now: () => now,
      reminderIntervalMs: 60_000,
    });
    const events = () => logger.records.map((r) => [r.event, r.node ?? ""]);

    // Node A fails (closed: refused); node B keeps serving, in between and after.
    for (let i = 0; i < 5; i++) {
      assert.equal(await limiter.check(check("a-client")), "refuse");
      assert.deepEqual(await limiter.check(check("b-client")), ALLOWED);
      now += 1000;
    }
    assert.deepEqual(events(), [["redis_unavailable", "10.0.0.1:6379"]]);
    assert.match(String(logger.records[0].message), /buckets in its slots answer 503/);

    // A reminder after a minute, with the count of checks failed meanwhile.
    now += 60_000;
    assert.equal(await limiter.check(check("a-client")), "refuse");
    assert.deepEqual(events().at(-1), ["redis_still_unavailable", "10.0.0.1:6379"]);
    assert.equal(logger.records.at(-1)!.failed_checks, 5);

    limiter.reportAvailable("10.0.0.1:6379", how);
    assert.deepEqual(events().at(-1), ["redis_recovered", "10.0.0.1:6379"]);
    const reason = logger.records.at(-1)!.reason;
    assert.equal(reason, how === "gone" ? "its slots are served by other nodes now" : undefined);
    // Once only.
    limiter.reportAvailable("10.0.0.1:6379", how);
    assert.equal(logger.records.filter((r) => r.event === "redis_recovered").length, 1);
  }
});

Deno.test("FailoverLimiter without byNode: one outage for Redis as a whole, ended by the next success", async () => {
  const { state, primary, fallback } = cluster();
  const logger = memoryLogger();
  const limiter = new FailoverLimiter({
    primary,
    fallback,
    mode: "local",
    logger,
    metrics: new Metrics(),
  });
  assert.deepEqual(await limiter.check(check("a-client")), {
    allowed: true,
    remaining: 0,
    resetMs: 0,
  });
  assert.deepEqual(await limiter.check(check("a-client")), {
    allowed: true,
    remaining: 0,
    resetMs: 0,
  });
  state.aDown = false;
  assert.deepEqual(await limiter.check(check("a-client")), ALLOWED);
  assert.deepEqual(logger.records.map((r) => [r.event, r.node]), [
    ["redis_unavailable", undefined],
    ["redis_recovered", undefined],
  ]);
});
