/**
 * The batched Redis limiter against a real redis-server: exact counts when
 * many checks share one script call, fewer round trips than checks, and
 * bounded waits when Redis stops answering.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { bucketId } from "../../lib/ratelimit/limiter.ts";
import type { Decision } from "../../lib/ratelimit/limiter.ts";
import { RedisLimiter, RedisUnavailableError, storageKey } from "../../lib/ratelimit/redis.ts";
import { eventually, startRedis, type TestRedis } from "../helpers.ts";

/** How many script calls (EVALSHA and EVAL) Redis has run since the last CONFIG RESETSTAT. */
async function scriptCalls(admin: Redis): Promise<number> {
  const stats = String(await admin.info("commandstats"));
  return [...stats.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)]
    .reduce((sum, match) => sum + Number(match[1]), 0);
}

async function connectedLimiter(
  redis: TestRedis,
  options: {
    timeoutMs?: number;
    batch?: { maxSize?: number; maxInFlight?: number; maxQueued?: number };
  } = {},
): Promise<RedisLimiter> {
  const limiter = await RedisLimiter.create({
    url: redis.url,
    timeoutMs: options.timeoutMs ?? 500,
    batch: options.batch,
  });
  await limiter.firstAttempt(5000);
  assert.ok(limiter.connected, "the limiter connects to the test Redis");
  return limiter;
}

function admitted(decisions: Decision[]): number {
  return decisions.filter((d) => d.allowed).length;
}

Deno.test("RedisLimiter: 500 concurrent checks on one bucket with limit 100 admit exactly 100, in far fewer script calls than checks", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const limiter = await connectedLimiter(redis);
  try {
    await admin.call("CONFIG", "RESETSTAT");
    const request = { key: bucketId("route", "client"), limit: 100, windowMs: 60_000 };
    const decisions = await Promise.all(Array.from({ length: 500 }, () => limiter.check(request)));
    assert.equal(admitted(decisions), 100);
    // In arrival order: the first 100 are admitted, counting down, the rest refused.
    assert.deepEqual(
      decisions.map((d) => d.allowed),
      [...Array(100).fill(true), ...Array(400).fill(false)],
    );
    assert.deepEqual(
      decisions.slice(0, 100).map((d) => d.remaining),
      Array.from({ length: 100 }, (_, i) => 99 - i),
    );
    assert.ok(decisions.every((d) => d.resetMs > 59_000 && d.resetMs <= 60_000));
    const calls = await scriptCalls(admin);
    assert.ok(calls >= 1 && calls <= 5, `${calls} script calls for 500 checks`);
    assert.equal(
      await admin.zcard(storageKey(request.key)),
      100,
      "only admitted requests are logged",
    );
  } finally {
    admin.disconnect();
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: two instances batching concurrently on one bucket admit exactly the limit together", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const a = await connectedLimiter(redis, { batch: { maxSize: 16 } });
  const b = await connectedLimiter(redis, { batch: { maxSize: 16 } });
  try {
    const request = { key: bucketId("route", "shared"), limit: 100, windowMs: 60_000 };
    const decisions = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).check(request)),
    );
    assert.equal(admitted(decisions), 100);
    // Members are unique across instances, even within one batch's single TIME.
    assert.equal(await admin.zcard(storageKey(request.key)), 100);
  } finally {
    admin.disconnect();
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: mixed buckets in one batch each get their exact count, in arrival order", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const limiter = await connectedLimiter(redis);
  try {
    const policies = [
      { key: bucketId("route", "a"), limit: 3, windowMs: 60_000 },
      { key: bucketId("route", "b"), limit: 5, windowMs: 10_000 },
      { key: bucketId("other", "a"), limit: 1, windowMs: 1_000 },
    ];
    await admin.call("CONFIG", "RESETSTAT");
    // Interleaved: a, b, c, a, b, c, ... ten of each, all in one turn.
    const pending = Array.from({ length: 30 }, (_, i) => limiter.check(policies[i % 3]));
    const decisions = await Promise.all(pending);
    assert.equal(await scriptCalls(admin), 1, "one script call for the whole turn");
    for (const [index, policy] of policies.entries()) {
      const own = decisions.filter((_, i) => i % 3 === index);
      assert.deepEqual(
        own.map((d) => d.allowed),
        Array.from({ length: 10 }, (_, i) => i < policy.limit),
        `bucket ${index}`,
      );
      assert.deepEqual(
        own.map((d) => d.remaining),
        Array.from({ length: 10 }, (_, i) => Math.max(0, policy.limit - 1 - i)),
      );
      assert.ok(
        own.every((d) => d.resetMs > policy.windowMs - 1000 && d.resetMs <= policy.windowMs),
      );
      assert.equal(await admin.zcard(storageKey(policy.key)), policy.limit);
      const ttl = await admin.pttl(storageKey(policy.key));
      assert.ok(
        ttl > 0 && ttl <= policy.windowMs,
        `PTTL ${ttl} for a ${policy.windowMs} ms window`,
      );
    }
  } finally {
    admin.disconnect();
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: a bucket key holding the wrong type fails that check alone; the rest of its batch is counted", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const limiter = await connectedLimiter(redis);
  try {
    const broken = { key: bucketId("route", "broken"), limit: 5, windowMs: 60_000 };
    const fine = { key: bucketId("route", "fine"), limit: 2, windowMs: 60_000 };
    await admin.set(storageKey(broken.key), "not a sorted set");
    const results = await Promise.allSettled([
      limiter.check(fine),
      limiter.check(broken),
      limiter.check(fine),
      limiter.check(fine),
    ]);
    assert.deepEqual(results.map((r) => r.status), [
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
    ]);
    const failure = (results[1] as PromiseRejectedResult).reason;
    assert.ok(failure instanceof RedisUnavailableError);
    assert.match(failure.message, /^WRONGTYPE/);
    const allowed = results.filter((r) => r.status === "fulfilled").map((r) => r.value.allowed);
    assert.deepEqual(allowed, [true, true, false]);
    assert.equal(await admin.get(storageKey(broken.key)), "not a sorted set", "left as it was");
  } finally {
    admin.disconnect();
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: after SCRIPT FLUSH (NOSCRIPT) checks still work and still count exactly", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const limiter = await connectedLimiter(redis);
  try {
    const request = { key: bucketId("route", "flushed"), limit: 3, windowMs: 60_000 };
    assert.equal(admitted(await Promise.all([limiter.check(request), limiter.check(request)])), 2);
    // The next one goes as EVALSHA (the script is known on this connection).
    assert.equal((await limiter.check(request)).allowed, true);
    await admin.script("FLUSH");
    await admin.call("CONFIG", "RESETSTAT");
    const after = await Promise.all(Array.from({ length: 4 }, () => limiter.check(request)));
    assert.deepEqual(after.map((d) => d.allowed), [false, false, false, false]);
    const errors = String(await admin.info("errorstats"));
    assert.match(errors, /errorstat_NOSCRIPT:count=1\b/, "Redis answered NOSCRIPT once");
    const other = { key: bucketId("route", "fresh"), limit: 2, windowMs: 60_000 };
    const fresh = await Promise.all(Array.from({ length: 3 }, () => limiter.check(other)));
    assert.deepEqual(fresh.map((d) => d.allowed), [true, true, false]);
    assert.equal(await admin.zcard(storageKey(request.key)), 3, "nothing counted twice");
  } finally {
    admin.disconnect();
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: with Redis hung (SIGSTOP) every check rejects within timeout_ms plus a margin, and the queue bound holds", async () => {
  const redis = await startRedis();
  const timeoutMs = 200;
  const limiter = await connectedLimiter(redis, {
    timeoutMs,
    batch: { maxSize: 50, maxInFlight: 2, maxQueued: 200 },
  });
  const outcomes: { wave: number; ms: number; error: unknown }[] = [];
  const wave = (index: number, count: number, client: string) =>
    Array.from({ length: count }, () => {
      const started = performance.now();
      return limiter.check({ key: bucketId("route", client), limit: 1000, windowMs: 60_000 }).then(
        () => outcomes.push({ wave: index, ms: performance.now() - started, error: undefined }),
        (error) => outcomes.push({ wave: index, ms: performance.now() - started, error }),
      );
    });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    redis.pause();
    // 1: 100 go out in two batches and 100 wait for a slot; 200 over the bound.
    const pending = wave(1, 400, "a");
    await sleep(80);
    // 2: while both batches are out, 100 more wait (the bound again), 50 refused.
    pending.push(...wave(2, 150, "b"));
    await sleep(200);
    // 3: after the first batches were given up on, Redis still hung.
    pending.push(...wave(3, 60, "c"));
    await Promise.all(pending);

    assert.equal(outcomes.length, 610, "every check settled");
    assert.ok(outcomes.every((o) => o.error instanceof RedisUnavailableError), "and was refused");
    const message = (o: { error: unknown }) => (o.error as Error).message;
    const overflowed = outcomes.filter((o) => /checks are already waiting/.test(message(o)));
    assert.equal(overflowed.length, 250, "200 of the first wave and 50 of the second");
    assert.deepEqual([...new Set(overflowed.map((o) => o.wave))].sort(), [1, 2]);
    assert.ok(overflowed.every((o) => o.ms < 50), "refused at once, not after a wait");
    const timedOut = outcomes.filter((o) => !overflowed.includes(o));
    assert.ok(
      timedOut.every((o) => message(o) === `no answer within ${timeoutMs} ms (redis.timeout_ms)`),
      [...new Set(timedOut.map(message))].join(", "),
    );
    const worst = Math.max(...timedOut.map((o) => o.ms));
    assert.ok(worst < timeoutMs + 120, `the slowest check waited ${worst.toFixed(0)} ms`);
    assert.ok(Math.min(...timedOut.map((o) => o.ms)) >= timeoutMs - 100);

    redis.resume();
    await eventually(5000, "checks to pass again", async () => {
      try {
        return (await limiter.check({ key: bucketId("route", "d"), limit: 10, windowMs: 1000 }))
          .allowed;
      } catch {
        return false;
      }
    });
  } finally {
    redis.resume();
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter: with Redis gone, a batch's checks reject at once with the reason", async () => {
  const redis = await startRedis();
  const limiter = await connectedLimiter(redis, { timeoutMs: 1000 });
  try {
    await redis.kill();
    await eventually(2000, "the limiter to notice", () => !limiter.connected);
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from(
        { length: 20 },
        () => limiter.check({ key: bucketId("route", "x"), limit: 5, windowMs: 1000 }),
      ),
    );
    assert.ok(performance.now() - started < 200, "no wait for the 1000 ms timeout");
    for (const result of results) {
      assert.equal(result.status, "rejected");
      assert.equal(result.reason.message, "not connected (reconnecting in the background)");
    }
  } finally {
    await limiter.close();
    await redis.stop();
  }
});

Deno.test("RedisLimiter.close() refuses later checks and leaves no timer behind", async () => {
  const redis = await startRedis();
  const limiter = await connectedLimiter(redis);
  try {
    await limiter.check({ key: bucketId("route", "x"), limit: 5, windowMs: 1000 });
  } finally {
    await limiter.close();
    await redis.stop();
  }
  await assert.rejects(
    limiter.check({ key: bucketId("route", "x"), limit: 5, windowMs: 1000 }),
    (error: Error) => error instanceof RedisUnavailableError && /closed/.test(error.message),
  );
});
