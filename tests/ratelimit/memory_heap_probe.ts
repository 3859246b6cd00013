/**
 * Measures what 100,000 distinct clients leave on the heap of a MemoryLimiter
 * with the budget given as the first argument, and prints it as JSON. Run by
 * memory_test.ts in its own process (`--v8-flags=--expose-gc`), so nothing
 * else the test runner holds blurs the measurement.
 */
import { Metrics } from "../../lib/admin/metrics.ts";
import { MemoryLimiter } from "../../lib/ratelimit/memory.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("Run with --v8-flags=--expose-gc");
const maxBytes = Number(Deno.args[0]);
const clients = Number(Deno.args[1] ?? 100_000);

function heapUsed(): number {
  for (let i = 0; i < 4; i++) gc!();
  return Deno.memoryUsage().heapUsed;
}

const metrics = new Metrics();
const clock = { now: 0 };
const limiter = new MemoryLimiter({ maxBytes, metrics, now: () => clock.now });
// Keys shaped like the gateway's (vanguard:rl:{<route>:<22 characters of hash>}).
const keyOf = (i: number) => `vanguard:rl:{user-service-route:${i.toString(36).padStart(22, "0")}}`;
// Warm up the code paths first, so the measurement sees buckets, not compiled code.
for (let i = 0; i < 1000; i++) await limiter.check({ key: `warm-${i}`, limit: 100, windowMs: 1 });
clock.now = 10;
limiter.sweep();
const before = heapUsed();
for (let i = 0; i < clients; i++) {
  clock.now++;
  await limiter.check({ key: keyOf(i), limit: 100, windowMs: 3_600_000 });
}
const growth = heapUsed() - before;
const result = {
  heapGrowth: growth,
  buckets: limiter.size,
  estimatedBytes: limiter.bytes,
  evictions: metrics.rateLimitEvictions.get(),
};
await limiter.close();
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(result) + "\n"));
