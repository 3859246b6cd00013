/**
 * What a rate-limit check on Redis costs the gateway: `concurrency` loops
 * call RedisLimiter.check() back to back for `seconds` on 10,000 buckets
 * (as bench/bench.ts's Redis scenario does), against a redis-server of its
 * own; prints checks per second, the process's CPU time per check and how
 * many script calls Redis saw, as JSON. Not a test: run it by hand.
 *
 * @example
 * ```sh
 * deno run -A tests/ratelimit/redis_batch_probe.ts 50 3
 * ```
 */
import process from "node:process";
import { Redis } from "ioredis";
import { bucketId } from "../../lib/ratelimit/limiter.ts";
import { RedisLimiter } from "../../lib/ratelimit/redis.ts";
import { startRedis } from "../helpers.ts";

const concurrency = Number(Deno.args[0] ?? 50);
const seconds = Number(Deno.args[1] ?? 3);

const redis = await startRedis();
const admin = new Redis(redis.url);
const limiter = await RedisLimiter.create({ url: redis.url, timeoutMs: 50 });
try {
  await limiter.firstAttempt(2000);
  const run = async (ms: number) => {
    const until = performance.now() + ms;
    let checks = 0;
    let failed = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const client = String(1 + Math.floor(Math.random() * 10_000));
        try {
          await limiter.check({
            key: bucketId("limited", client),
            limit: 100_000,
            windowMs: 60_000,
          });
        } catch {
          failed++;
        }
        checks++;
      }
    }));
    return { checks, failed };
  };
  await run(1000); // JIT, connection, script load
  await admin.config("SET", "appendonly", "no");
  await admin.call("CONFIG", "RESETSTAT");
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const { checks, failed } = await run(seconds * 1000);
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const stats = String(await admin.info("commandstats"));
  const calls = [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)]
    .reduce((sum, match) => sum + Number(match[1]), 0);
  console.log(JSON.stringify({
    concurrency,
    checks_per_second: Math.round(checks / elapsed),
    cpu_us_per_check: Math.round((cpu.user + cpu.system) / checks * 10) / 10,
    script_calls: calls,
    checks_per_call: Math.round(checks / Math.max(1, calls) * 10) / 10,
    failed,
  }));
} finally {
  admin.disconnect();
  await limiter.close();
  await redis.stop();
}
