/**
 * Rate limiting through real gateways: in memory, and on a real
 * redis-server shared by two gateway instances.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { sha256Hex } from "../../lib/auth/api_keys.ts";
import {
  eventually,
  startRedis,
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestRedis,
  type TestServer,
} from "../helpers.ts";

const API_KEY = "vg_rate-limited-client-key-0123456789";

function limitedConfig(
  upstream: TestServer,
  options: { limit: number; period: number; redis?: string; identifier?: string },
): string {
  return `
${options.redis ?? ""}
auth:
  api_key:
    keys:
      - { id: client, sha256: "${sha256Hex(API_KEY)}" }
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: limited
    path_prefix: /limited
    service_name: app
    rate_limit:
      requests_per_period: ${options.limit}
      period_seconds: ${options.period}
      client_identifier: ${options.identifier ?? "IP"}
  - id: open
    path_prefix: /open
    service_name: app
`;
}

function redisSection(redis: TestRedis, mode = "local"): string {
  return `redis:
  url: ${redis.url}
  failure_mode: ${mode}
  timeout_ms: 100`;
}

async function statuses(
  gateways: TestGateway[],
  count: number,
  headers: Record<string, string> = {},
): Promise<number[]> {
  const responses = await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        fetch(`${gateways[i % gateways.length].url}/limited/x`, { headers }).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        }),
    ),
  );
  return responses;
}

function tally(codes: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const code of codes) out[code] = (out[code] ?? 0) + 1;
  return out;
}

Deno.test("in memory: N+10 concurrent requests admit exactly N, with RateLimit headers", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(limitedConfig(upstream, { limit: 20, period: 60 }));
  try {
    assert.deepEqual(tally(await statuses([gw], 30)), { 200: 20, 429: 10 });
    const refused = await fetch(`${gw.url}/limited/x`);
    const body = await refused.json();
    assert.equal(refused.status, 429);
    assert.equal(body.error, "rate_limited");
    assert.equal(refused.headers.get("ratelimit-policy"), '"limited";q=20;w=60');
    assert.match(refused.headers.get("ratelimit")!, /^"limited";r=0;t=(59|60)$/);
    const retryAfter = Number(refused.headers.get("retry-after"));
    assert.ok(retryAfter >= 59 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const unlimited = await fetch(`${gw.url}/open/x`);
    await unlimited.body?.cancel();
    assert.equal(unlimited.status, 200);
    assert.equal(unlimited.headers.get("ratelimit-policy"), null);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("in memory: an admitted response carries the remaining quota", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(limitedConfig(upstream, { limit: 3, period: 10 }));
  try {
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${gw.url}/limited/x`);
      await response.body?.cancel();
      seen.push(response.headers.get("ratelimit"));
    }
    assert.equal(seen[0], '"limited";r=2;t=10');
    assert.equal(seen[2], '"limited";r=0;t=10');
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a header identifier limits each client separately; without the header, by address", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(
    limitedConfig(upstream, { limit: 2, period: 60, identifier: "X-Client" }),
  );
  try {
    assert.deepEqual(tally(await statuses([gw], 3, { "x-client": "a" })), { 200: 2, 429: 1 });
    assert.deepEqual(tally(await statuses([gw], 3, { "x-client": "b" })), { 200: 2, 429: 1 });
    assert.deepEqual(tally(await statuses([gw], 3)), { 200: 2, 429: 1 });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("Redis: two gateway instances sharing one Redis admit exactly N of N+10 concurrent requests", async () => {
  const redis = await startRedis();
  const upstream = startUpstream(() => new Response("ok"));
  const yaml = limitedConfig(upstream, { limit: 50, period: 60, redis: redisSection(redis) });
  const a = await startTestGateway(yaml);
  const b = await startTestGateway(yaml);
  try {
    await eventually(
      5000,
      "both gateways to connect",
      () => [a, b].every((gw) => gw.logs.some((r) => r.event === "redis_connected")),
    );
    assert.deepEqual(tally(await statuses([a, b], 60)), { 200: 50, 429: 10 });
    assert.equal(a.logs.some((r) => r.event === "redis_unavailable"), false);
  } finally {
    await a.close();
    await b.close();
    await upstream.close();
    await redis.stop();
  }
});

Deno.test("Redis: a burst at a window's end and the next start never exceeds N in any window", async () => {
  const redis = await startRedis();
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(
    limitedConfig(upstream, { limit: 5, period: 2, redis: redisSection(redis) }),
  );
  const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
  try {
    await eventually(5000, "Redis", () => gw.logs.some((r) => r.event === "redis_connected"));
    const start = Date.now();
    assert.deepEqual(tally(await statuses([gw], 5)), { 200: 5 });
    // A fixed-window limiter would admit a second burst here, at the "next" window.
    await sleepUntil(start + 1500);
    assert.deepEqual(tally(await statuses([gw], 5)), { 429: 5 });
    await sleepUntil(start + 2600);
    assert.deepEqual(tally(await statuses([gw], 7)), { 200: 5, 429: 2 });
  } finally {
    await gw.close();
    await upstream.close();
    await redis.stop();
  }
});

Deno.test("Redis: sustained refused traffic keeps at most N entries, with an expiry, and no plaintext key", async () => {
  const redis = await startRedis();
  const client = new Redis(redis.url);
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(
    limitedConfig(upstream, {
      limit: 5,
      period: 30,
      redis: redisSection(redis),
      identifier: "API-Key",
    }),
  );
  try {
    await eventually(5000, "Redis", () => gw.logs.some((r) => r.event === "redis_connected"));
    for (let round = 0; round < 4; round++) {
      await statuses([gw], 25, { "API-Key": API_KEY });
    }
    const keys = await client.keys("*");
    assert.equal(keys.length, 1);
    assert.ok(!keys[0].includes(API_KEY) && !keys[0].includes("rate-limited-client"), keys[0]);
    assert.match(keys[0], /^vanguard:rl:\{limited:[A-Za-z0-9_-]+\}$/);
    assert.equal(await client.zcard(keys[0]), 5);
    const ttl = await client.pttl(keys[0]);
    assert.ok(ttl > 0 && ttl <= 30_000, `PTTL ${ttl}`);
  } finally {
    client.disconnect();
    await gw.close();
    await upstream.close();
    await redis.stop();
  }
});

for (const mode of ["open", "closed", "local"] as const) {
  Deno.test(`Redis killed with failure_mode ${mode}: answers at once as documented, recovers after restart`, async () => {
    const redis = await startRedis();
    const upstream = startUpstream(() => new Response("ok"));
    const gw = await startTestGateway(
      limitedConfig(upstream, { limit: 3, period: 60, redis: redisSection(redis, mode) }),
    );
    try {
      await eventually(5000, "Redis", () => gw.logs.some((r) => r.event === "redis_connected"));
      assert.deepEqual(tally(await statuses([gw], 1)), { 200: 1 });
      await redis.kill();

      const started = performance.now();
      const during = await statuses([gw], 5);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1000, `took ${elapsed} ms with Redis down`);
      const expected = { open: { 200: 5 }, closed: { 503: 5 }, local: { 200: 3, 429: 2 } }[mode];
      assert.deepEqual(tally(during), expected);
      const outages = gw.logs.filter((r) => r.event === "redis_unavailable");
      assert.equal(outages.length, 1, "the outage is logged once");
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.match(metrics, /^vanguard_redis_errors_total [1-9]/m);

      await redis.restart();
      await eventually(
        8000,
        "the gateway to reconnect",
        () => gw.logs.some((r) => r.event === "redis_connected" && r.reconnect === true),
      );
      const admin = new Redis(redis.url);
      try {
        await admin.script("FLUSH");
      } finally {
        admin.disconnect();
      }
      // A fresh Redis knows nothing: exactly the limit again, nothing counted twice.
      assert.deepEqual(tally(await statuses([gw], 5)), { 200: 3, 429: 2 });
      assert.ok(gw.logs.some((r) => r.event === "redis_recovered"));
    } finally {
      await gw.close();
      await upstream.close();
      await redis.stop();
    }
  });
}

Deno.test("Redis hung (SIGSTOP): every response arrives within the timeout, and limiting resumes", async () => {
  const redis = await startRedis();
  const upstream = startUpstream(() => new Response("ok"));
  const gw = await startTestGateway(
    limitedConfig(upstream, { limit: 100, period: 60, redis: redisSection(redis, "closed") }),
  );
  try {
    await eventually(5000, "Redis", () => gw.logs.some((r) => r.event === "redis_connected"));
    assert.deepEqual(tally(await statuses([gw], 2)), { 200: 2 });
    redis.pause();
    const started = performance.now();
    assert.deepEqual(tally(await statuses([gw], 5)), { 503: 5 });
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1000, `took ${elapsed} ms with Redis hung (timeout 100 ms)`);
    redis.resume();
    await eventually(
      5000,
      "Redis to answer again",
      async () => (await statuses([gw], 1))[0] === 200,
    );
  } finally {
    redis.resume();
    await gw.close();
    await upstream.close();
    await redis.stop();
  }
});
