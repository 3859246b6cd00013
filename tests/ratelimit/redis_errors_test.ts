/**
 * What an operator sees when the configured Redis cannot be used: one clear
 * line at start naming its address (never the password), the gateway
 * serving under failure_mode, and no ioredis message repeated per request.
 */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/admin/metrics.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { FailoverLimiter } from "../../lib/ratelimit/failover.ts";
import type { Limiter } from "../../lib/ratelimit/limiter.ts";
import { MemoryLimiter } from "../../lib/ratelimit/memory.ts";
import { describeRedisError } from "../../lib/ratelimit/redis.ts";
import { redisAddress } from "../../lib/ratelimit/redis_connection.ts";
import { closedPort, startTestGateway, startUpstream } from "../helpers.ts";

const PASSWORD = "s3cret-redis-pass";

Deno.test("Redis on a closed port: redis_unavailable at start with host:port, never the password; the gateway serves", async () => {
  const upstream = startUpstream(() => new Response("ok"));
  const port = closedPort();
  const gw = await startTestGateway(`
redis:
  url: redis://vanguard:${PASSWORD}@127.0.0.1:${port}/2
  failure_mode: local
  timeout_ms: 100
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: limited
    path_prefix: /
    service_name: app
    rate_limit: { requests_per_period: 3, period_seconds: 60, client_identifier: IP }
`);
  try {
    const started = gw.logs.findIndex((r) => r.event === "gateway_started");
    const outage = gw.logs.findIndex((r) => r.event === "redis_unavailable");
    assert.ok(
      outage !== -1 && outage < started,
      "redis_unavailable is logged before gateway_started",
    );
    const line = gw.logs[outage];
    assert.equal(line.level, "warn");
    assert.equal(line.address, `127.0.0.1:${port}`);
    assert.equal(line.reason, "connection refused");
    assert.equal(line.failure_mode, "local");
    assert.match(
      String(line.message),
      new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} is unavailable`),
    );

    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${gw.url}/x`);
      await response.body?.cancel();
      codes.push(response.status);
    }
    // failure_mode local: this instance limits on its own.
    assert.deepEqual(codes, [200, 200, 200, ...Array(17).fill(429)]);
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    await ready.body?.cancel();
    assert.equal(ready.status, 200, "a Redis outage does not take the gateway out of rotation");

    assert.equal(gw.logs.filter((r) => r.event === "redis_unavailable").length, 1);
    const text = gw.logs.map((r) => JSON.stringify(r));
    assert.deepEqual(text.filter((l) => l.includes(PASSWORD)), [], "no line holds the password");
    assert.deepEqual(text.filter((l) => /redis:\/\//.test(l)), [], "no line holds the URL");
    assert.deepEqual(text.filter((l) => /Stream isn't writeable/.test(l)), []);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

/** A limiter whose every check fails as ioredis does while disconnected. */
function brokenRedis(): Limiter & { fail: boolean } {
  const fallback = new MemoryLimiter();
  return {
    fail: true,
    check(request) {
      if (this.fail) {
        return Promise.reject(new Error("not connected (reconnecting in the background)"));
      }
      return fallback.check(request);
    },
    close: () => fallback.close(),
  };
}

Deno.test("FailoverLimiter logs an outage once, reminds at most once a minute with the count, and logs the end", async () => {
  const logger = memoryLogger();
  let now = 0;
  const primary = brokenRedis();
  const limiter = new FailoverLimiter({
    primary,
    fallback: new MemoryLimiter(),
    mode: "open",
    logger,
    metrics: new Metrics(),
    address: "10.0.0.7:6379",
    now: () => now,
  });
  const request = { key: "k", limit: 10, windowMs: 1000 };
  const events = () => logger.records.map((r) => r.event);
  for (let i = 0; i < 100; i++) assert.equal(await limiter.check(request), "admit");
  assert.deepEqual(events(), ["redis_unavailable"]);
  assert.equal(logger.records[0].reason, "not connected (reconnecting in the background)");
  assert.equal(logger.records[0].address, "10.0.0.7:6379");

  now = 59_000;
  await limiter.check(request);
  assert.deepEqual(events(), ["redis_unavailable"], "no reminder within the minute");
  now = 61_000;
  for (let i = 0; i < 50; i++) await limiter.check(request);
  assert.deepEqual(events(), ["redis_unavailable", "redis_still_unavailable"]);
  assert.equal(logger.records[1].failed_checks, 101);
  assert.equal(logger.records[1].down_seconds, 61);

  primary.fail = false;
  now = 70_000;
  const decision = await limiter.check(request);
  assert.notEqual(typeof decision, "string");
  assert.deepEqual(events(), ["redis_unavailable", "redis_still_unavailable", "redis_recovered"]);
  await limiter.close();
});

Deno.test("describeRedisError() turns ioredis messages into what happened", () => {
  const coded = (message: string, code: string) => Object.assign(new Error(message), { code });
  const rows: [unknown, string][] = [
    [
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      "not connected (reconnecting in the background)",
    ],
    [new Error("Connection is closed."), "not connected (reconnecting in the background)"],
    [new Error("Command timed out"), "no answer within 50 ms (redis.timeout_ms)"],
    [coded("connect ECONNREFUSED 127.0.0.1:6379", "ECONNREFUSED"), "connection refused"],
    [coded("connect ETIMEDOUT", "ETIMEDOUT"), "connect timed out"],
    [coded("getaddrinfo ENOTFOUND redis.internal", "ENOTFOUND"), "its host name does not resolve"],
    [
      new Error("WRONGPASS invalid username-password pair or user is disabled."),
      "authentication failed: WRONGPASS invalid username-password pair or user is disabled.",
    ],
    [new Error("odd failure at redis://user:pw@host:1\nstack"), "odd failure at redis://host:1"],
  ];
  for (const [error, expected] of rows) assert.equal(describeRedisError(error, 50), expected);
});

Deno.test("redisAddress() is host:port without credentials or database", () => {
  assert.equal(redisAddress(`redis://:${PASSWORD}@10.1.2.3:6380/4`), "10.1.2.3:6380");
  assert.equal(redisAddress(`rediss://user:${PASSWORD}@cache.internal`), "cache.internal:6379");
  assert.equal(redisAddress("redis://[::1]:7000"), "[::1]:7000");
  assert.equal(redisAddress("not a url"), "an unparsable Redis URL");
});
