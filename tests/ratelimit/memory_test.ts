import assert from "node:assert/strict";
import { MemoryLimiter } from "../../lib/ratelimit/memory.ts";

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
