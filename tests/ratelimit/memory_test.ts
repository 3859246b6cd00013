import assert from "node:assert/strict";
import { Metrics } from "../../lib/admin/metrics.ts";
import { bucketBytes, MemoryLimiter } from "../../lib/ratelimit/memory.ts";

function limiterAt(start = 1000) {
  const clock = { now: start };
  const limiter = new MemoryLimiter({ now: () => clock.now });
  return { clock, limiter };
}

Deno.test("MemoryLimiter admits exactly the limit in a window, then refuses", async () => {
  const { limiter } = limiterAt();
  try {
    const decisions = [];
    for (let i = 0; i < 8; i++) {
      decisions.push(await limiter.check({ key: "k", limit: 5, windowMs: 60_000 }));
    }
    assert.deepEqual(decisions.map((d) => d.allowed), [
      true,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
    assert.deepEqual(decisions.map((d) => d.remaining), [4, 3, 2, 1, 0, 0, 0, 0]);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter frees a slot when the oldest request leaves the window, and says when", async () => {
  const { clock, limiter } = limiterAt();
  try {
    const request = { key: "k", limit: 2, windowMs: 10_000 };
    await limiter.check(request); // t=1000
    clock.now += 4000;
    await limiter.check(request); // t=5000
    clock.now += 1000;
    const refused = await limiter.check(request); // t=6000
    assert.equal(refused.allowed, false);
    assert.equal(refused.resetMs, 5000); // the first one leaves at t=11000
    clock.now = 10_999;
    assert.equal((await limiter.check(request)).allowed, false);
    clock.now = 11_000; // the window is (now - 10 s, now]: the first one has left
    const admitted = await limiter.check(request);
    assert.equal(admitted.allowed, true);
    assert.equal(admitted.remaining, 0);
    assert.equal(admitted.resetMs, 4000); // the second one leaves at t=15000
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter does not count refused requests: hammering does not extend the lockout", async () => {
  const { clock, limiter } = limiterAt();
  try {
    const request = { key: "k", limit: 3, windowMs: 1000 };
    for (let i = 0; i < 3; i++) await limiter.check(request);
    for (let i = 0; i < 100; i++) {
      clock.now += 5;
      assert.equal((await limiter.check(request)).allowed, false);
    }
    clock.now = 1000 + 1001;
    assert.equal((await limiter.check(request)).allowed, true);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter keeps buckets apart and never admits more than the limit in any window", async () => {
  const { clock, limiter } = limiterAt(0);
  try {
    const admitted: number[] = [];
    let lastB = -Infinity;
    // A request every 7 ms for 3 s against 10 per 500 ms (a) and 1 per 500 ms (b).
    for (let t = 0; t < 3000; t += 7) {
      clock.now = t;
      if ((await limiter.check({ key: "a", limit: 10, windowMs: 500 })).allowed) admitted.push(t);
      const b = (await limiter.check({ key: "b", limit: 1, windowMs: 500 })).allowed;
      assert.equal(b, t - lastB >= 500, `b at ${t}`);
      if (b) lastB = t;
    }
    for (const start of admitted) {
      const inWindow = admitted.filter((t) => t >= start && t < start + 500).length;
      assert.ok(inWindow <= 10, `${inWindow} admitted in the window from ${start}`);
    }
    assert.ok(admitted.length >= 50, `only ${admitted.length} admitted`);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter.sweep() forgets clients that went quiet", async () => {
  const { clock, limiter } = limiterAt();
  try {
    for (let i = 0; i < 100; i++) await limiter.check({ key: `c${i}`, limit: 1, windowMs: 1000 });
    assert.equal(limiter.size, 100);
    clock.now += 500;
    await limiter.check({ key: "active", limit: 1, windowMs: 1000 });
    clock.now += 600;
    limiter.sweep();
    assert.equal(limiter.size, 1);
  } finally {
    await limiter.close();
  }
});

/** A limiter whose budget holds `buckets` buckets of one-character keys, not one more. */
function boundedAt(buckets: number, timestampsEach = 1) {
  const clock = { now: 1000 };
  const metrics = new Metrics();
  const one = bucketBytes("a", timestampsEach);
  const limiter = new MemoryLimiter({
    now: () => clock.now,
    metrics,
    maxBytes: buckets * one + one - 1,
  });
  return { clock, limiter, metrics };
}

Deno.test("MemoryLimiter evicts the least recently used bucket when over its budget", async () => {
  const { limiter, metrics } = boundedAt(3);
  try {
    const check = async (key: string) =>
      (await limiter.check({ key, limit: 1, windowMs: 60_000 })).allowed;
    assert.deepEqual([await check("a"), await check("b"), await check("c")], [true, true, true]);
    assert.equal(await check("a"), false); // a refused check is a use too: order b, c, a
    assert.equal(await check("d"), true); // over budget: b goes
    assert.equal(limiter.size, 3);
    assert.equal(metrics.rateLimitEvictions.get(), 1);
    // b was forgotten, so it starts over (and pushes out c, now the oldest);
    // a was kept, so it is still refused.
    assert.equal(await check("b"), true);
    assert.equal(await check("a"), false);
    assert.equal(await check("c"), true); // c was evicted by b; d goes now
    assert.equal(await check("a"), false);
    assert.equal(await check("b"), false);
    assert.equal(metrics.rateLimitEvictions.get(), 3);
    assert.ok(limiter.bytes <= 3 * bucketBytes("a", 1), `${limiter.bytes} bytes`);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter drops buckets whose window has passed before evicting live ones", async () => {
  const { clock, limiter, metrics } = boundedAt(3);
  try {
    const long = { limit: 1, windowMs: 60_000 };
    await limiter.check({ key: "a", ...long }); // least recently used, but still counting
    await limiter.check({ key: "s", limit: 1, windowMs: 1000 });
    await limiter.check({ key: "b", ...long });
    clock.now += 2000; // s's window has passed, a's has not
    await limiter.check({ key: "n", ...long });
    assert.equal(limiter.size, 3);
    assert.equal(metrics.rateLimitEvictions.get(), 0);
    assert.equal((await limiter.check({ key: "a", ...long })).allowed, false);
    assert.equal((await limiter.check({ key: "b", ...long })).allowed, false);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter stays exact for every client while under its budget", async () => {
  const { clock, limiter, metrics } = boundedAt(1000, 3);
  try {
    const admitted = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++) {
        clock.now++;
        const key = String.fromCharCode(0x4e00 + i); // one character, as boundedAt counts
        const decision = await limiter.check({ key, limit: 3, windowMs: 60_000 });
        if (decision.allowed) admitted.set(key, (admitted.get(key) ?? 0) + 1);
        assert.equal(decision.remaining, Math.max(0, 2 - round));
      }
    }
    assert.equal(admitted.size, 1000);
    assert.ok([...admitted.values()].every((count) => count === 3));
    assert.equal(metrics.rateLimitEvictions.get(), 0);
    assert.equal(limiter.size, 1000);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter publishes its evictions, buckets and estimated bytes as metrics", async () => {
  const { limiter, metrics } = boundedAt(10);
  try {
    for (let i = 0; i < 100; i++) {
      await limiter.check({ key: String.fromCharCode(0x41 + i), limit: 5, windowMs: 60_000 });
    }
    const text = metrics.render();
    assert.match(text, /^vanguard_ratelimit_evictions_total 90$/m);
    assert.match(text, /^vanguard_ratelimit_memory_buckets 10$/m);
    assert.match(
      text,
      new RegExp(`^vanguard_ratelimit_memory_bytes ${10 * bucketBytes("a", 1)}$`, "m"),
    );
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter's estimate goes back to zero once every window has passed", async () => {
  const { clock, limiter } = limiterAt(0);
  try {
    // Long-lived buckets get compacted, short ones emptied: the estimate must follow both.
    for (let t = 0; t < 5000; t += 3) {
      clock.now = t;
      await limiter.check({ key: "busy", limit: 200, windowMs: 700 });
      if (t % 300 === 0) await limiter.check({ key: `quiet-${t}`, limit: 2, windowMs: 100 });
    }
    assert.ok(limiter.bytes > 0);
    clock.now += 1000;
    limiter.sweep();
    assert.equal(limiter.size, 0);
    assert.equal(limiter.bytes, 0);
  } finally {
    await limiter.close();
  }
});

Deno.test("MemoryLimiter: 100,000 distinct clients do not grow the heap past the budget", async () => {
  const budget = 8 * 1024 * 1024;
  const output = await new Deno.Command("deno", {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      new URL("./memory_heap_probe.ts", import.meta.url).pathname,
      String(budget),
      "100000",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  // Unbounded, the same run grows the heap by about 33 MB.
  assert.ok(result.heapGrowth <= budget, `heap grew by ${result.heapGrowth} bytes`);
  assert.ok(result.estimatedBytes <= budget);
  assert.equal(result.evictions, 100_000 - result.buckets);
  assert.ok(result.buckets > 5000, `only ${result.buckets} buckets kept`);
});
