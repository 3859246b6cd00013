/** Node names as labels stay bounded however many addresses a Redis comes back on. */
import assert from "node:assert/strict";
import { MAX_NODE_LABELS, NodeLabels } from "../../lib/ratelimit/redis_types.ts";

Deno.test("NodeLabels keeps the first MAX_NODE_LABELS node names and calls the rest other", () => {
  const labels = new NodeLabels();
  const seen = new Set<string>();
  // A Sentinel master rescheduled 100 times, each time on a new pod address.
  for (let i = 0; i < 100; i++) seen.add(labels.label(`10.0.${i}.7:6379`));
  assert.equal(seen.size, MAX_NODE_LABELS + 1);
  assert.ok(seen.has("other"));
  // A name kept once stays itself.
  assert.equal(labels.label("10.0.0.7:6379"), "10.0.0.7:6379");
  assert.equal(labels.label("10.0.99.7:6379"), "other");
});
