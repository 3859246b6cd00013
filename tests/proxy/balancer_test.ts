import assert from "node:assert/strict";
import { Balancer } from "../../lib/proxy/balancer.ts";
import type { Endpoint } from "../../lib/routing/table.ts";

function endpoints(count: number): Endpoint[] {
  return Array.from(
    { length: count },
    (_, i) => ({ url: `http://10.0.0.${i + 1}:80`, ready: true }),
  );
}

function picks(balancer: Balancer, list: readonly Endpoint[], count: number): string[] {
  const urls: string[] = [];
  for (let i = 0; i < count; i++) {
    const chosen = balancer.pick(list);
    assert.ok(chosen !== undefined);
    urls.push(chosen.url);
  }
  return urls;
}

/** Runs `body` with Math.random replaced, so power-of-two choices are deterministic. */
function withRandom(value: number, body: () => void): void {
  const original = Math.random;
  Math.random = () => value;
  try {
    body();
  } finally {
    Math.random = original;
  }
}

Deno.test("pick() returns undefined for no endpoints", () => {
  assert.equal(new Balancer().pick([]), undefined);
});

Deno.test("pick() alternates over idle endpoints (round robin tie-break)", async (t) => {
  await t.step("two endpoints", () => {
    const [a, b] = endpoints(2);
    assert.deepEqual(picks(new Balancer(), [a, b], 6), [a.url, b.url, a.url, b.url, a.url, b.url]);
  });
  await t.step("three endpoints", () => {
    const [a, b, c] = endpoints(3);
    assert.deepEqual(picks(new Balancer(), [a, b, c], 7), [
      a.url,
      b.url,
      c.url,
      a.url,
      b.url,
      c.url,
      a.url,
    ]);
  });
  await t.step("a single endpoint every time", () => {
    const [a] = endpoints(1);
    assert.deepEqual(picks(new Balancer(), [a], 3), [a.url, a.url, a.url]);
  });
});

Deno.test("pick() chooses the endpoint with the fewest requests in flight", () => {
  const balancer = new Balancer();
  const [a, b, c] = endpoints(3);
  balancer.begin(a.url);
  balancer.begin(a.url);
  balancer.begin(c.url);
  // b is idle, so it wins whatever the round-robin cursor says.
  assert.deepEqual(picks(balancer, [a, b, c], 4), [b.url, b.url, b.url, b.url]);

  balancer.begin(b.url);
  balancer.begin(b.url);
  // Now a: 2, b: 2, c: 1.
  assert.equal(balancer.pick([a, b, c])?.url, c.url);
});

Deno.test("begin() counts in-flight requests and its end function is idempotent", () => {
  const balancer = new Balancer();
  const [a, b] = endpoints(2);
  const endFirst = balancer.begin(a.url);
  const endSecond = balancer.begin(a.url);
  assert.equal(balancer.load(a.url), 2);
  assert.equal(balancer.load(b.url), 0);

  endFirst();
  endFirst();
  endFirst();
  assert.equal(balancer.load(a.url), 1, "ending the same request twice must not count twice");

  endSecond();
  assert.equal(balancer.load(a.url), 0);
  endSecond();
  assert.equal(balancer.load(a.url), 0, "the count never goes negative");

  // With a back to 0 a fresh request on it is counted from zero again.
  balancer.begin(a.url);
  assert.equal(balancer.load(a.url), 1);
});

Deno.test("in-flight counts follow the URL, not the Endpoint object", () => {
  const balancer = new Balancer();
  balancer.begin("http://10.0.0.1:80");
  // A new snapshot with new objects for the same addresses.
  const fresh = endpoints(2);
  assert.equal(balancer.pick(fresh)?.url, "http://10.0.0.2:80");
  assert.equal(balancer.pick(fresh)?.url, "http://10.0.0.2:80");
});

Deno.test("pick() avoids the excluded endpoint when another exists", async (t) => {
  await t.step("two endpoints", () => {
    const balancer = new Balancer();
    const [a, b] = endpoints(2);
    for (let i = 0; i < 6; i++) assert.equal(balancer.pick([a, b], a.url)?.url, b.url);
  });
  await t.step("even when the excluded one is the least loaded", () => {
    const balancer = new Balancer();
    const [a, b, c] = endpoints(3);
    balancer.begin(b.url);
    balancer.begin(c.url);
    balancer.begin(c.url);
    for (let i = 0; i < 6; i++) assert.equal(balancer.pick([a, b, c], a.url)?.url, b.url);
  });
  await t.step("a single excluded endpoint gives undefined", () => {
    const [a] = endpoints(1);
    assert.equal(new Balancer().pick([a], a.url), undefined);
  });
  await t.step("an exclude that is not in the list changes nothing", () => {
    const [a, b] = endpoints(2);
    assert.deepEqual(
      [new Balancer().pick([a, b], "http://elsewhere:80")?.url],
      [a.url],
    );
  });
});

Deno.test("pick() spreads load over more than 16 endpoints (power of two choices)", () => {
  const balancer = new Balancer();
  const list = endpoints(40);
  const counts = new Map<string, number>();
  for (const url of picks(balancer, list, 4000)) counts.set(url, (counts.get(url) ?? 0) + 1);
  assert.equal(counts.size, 40, "every endpoint is chosen at least once");
  for (const endpoint of list) {
    // 100 each on average; far from 0 and from taking everything.
    const count = counts.get(endpoint.url) ?? 0;
    assert.ok(count >= 20 && count <= 300, `${endpoint.url} chosen ${count} times`);
  }
});

Deno.test("pick() almost never chooses a heavily loaded endpoint among many", () => {
  const balancer = new Balancer();
  const list = endpoints(20);
  const busy = list[7].url;
  for (let i = 0; i < 1000; i++) balancer.begin(busy);
  const chosen = picks(balancer, list, 2000);
  const busyCount = chosen.filter((url) => url === busy).length;
  assert.ok(busyCount <= 20, `busy endpoint chosen ${busyCount} times out of 2000`);
  assert.equal(new Set(chosen).size, 19, "every other endpoint still gets traffic");
});

Deno.test("pick() never returns the excluded endpoint among many, even when it is idle", () => {
  const list = endpoints(20);
  const excluded = list[1].url;
  for (const random of [0, 0.5, 0.999]) {
    withRandom(random, () => {
      const balancer = new Balancer();
      // Everyone but the excluded endpoint is busy, so a comparison would favour it.
      for (const endpoint of list) {
        if (endpoint.url !== excluded) balancer.begin(endpoint.url);
      }
      for (let i = 0; i < list.length * 3; i++) {
        const chosen = balancer.pick(list, excluded);
        assert.ok(chosen !== undefined);
        assert.notEqual(chosen.url, excluded, `pick ${i} with Math.random() = ${random}`);
      }
    });
  }
});
