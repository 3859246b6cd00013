/**
 * The Batcher on its own: a send that answers when the test says so, and an
 * injected clock and timer, so nothing here sleeps or touches the network.
 */
import assert from "node:assert/strict";
import { Batcher, type BatcherTimers } from "../../lib/ratelimit/batcher.ts";

/** One call of the fake send, answered by the test. */
interface Call {
  readonly partition: string;
  readonly items: readonly number[];
  answer(results?: readonly (string | Error)[]): void;
  fail(error: Error): void;
}

/** A clock and timers that move only when the test advances them. */
function fakeTimers(): BatcherTimers & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let nextId = 1;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const id = nextId++;
      timers.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at);
        if (due.length === 0) break;
        const [id, timer] = due[0];
        timers.delete(id);
        now = timer.at;
        timer.callback();
      }
      now = until;
    },
    pending: () => timers.size,
  };
}

/** Lets queued microtasks run (the batcher flushes at the end of a turn). */
async function turns(count = 10): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

function setup(
  bounds: { maxBatch?: number; maxInFlight?: number; maxQueued?: number } = {},
) {
  const calls: Call[] = [];
  const timers = fakeTimers();
  const batcher = new Batcher<number, string>({
    send(partition, items) {
      const { promise, resolve, reject } = Promise.withResolvers<readonly (string | Error)[]>();
      calls.push({
        partition,
        items,
        answer: (results) => resolve(results ?? items.map((n) => `r${n}`)),
        fail: reject,
      });
      return promise;
    },
    maxBatch: bounds.maxBatch ?? 100,
    maxInFlight: bounds.maxInFlight ?? 1,
    maxQueued: bounds.maxQueued ?? 1000,
    timeoutMs: 50,
    errors: {
      timeout: () => new Error("timeout"),
      overflow: () => new Error("overflow"),
      closed: () => new Error("closed"),
    },
    timers,
  });
  return { batcher, calls, timers };
}

/** Settles `promise` into what a test compares: the value, or "!" and the error message. */
function outcome(promise: Promise<string>): Promise<string> {
  return promise.then((value) => value, (error: Error) => `!${error.message}`);
}

Deno.test("Batcher sends what arrives in one turn as one batch, in arrival order, and answers each caller", async () => {
  const { batcher, calls } = setup();
  const results = [1, 2, 3, 4].map((n) => outcome(batcher.submit("", n)));
  await turns();
  assert.deepEqual(calls.map((c) => c.items), [[1, 2, 3, 4]]);
  calls[0].answer(["a", "b", "c", "d"]);
  assert.deepEqual(await Promise.all(results), ["a", "b", "c", "d"]);
  batcher.close();
});

Deno.test("Batcher queues while maxInFlight batches are out and sends the queue as one batch when a slot frees", async () => {
  const { batcher, calls } = setup({ maxInFlight: 2 });
  const first = outcome(batcher.submit("", 1));
  await turns();
  const second = outcome(batcher.submit("", 2));
  await turns();
  assert.deepEqual(calls.map((c) => c.items), [[1], [2]], "a free slot is used at once");
  const queued = [3, 4, 5].map((n) => outcome(batcher.submit("", n)));
  await turns();
  assert.equal(calls.length, 2, "both slots taken: the rest waits");
  assert.equal(batcher.queued, 3);
  calls[1].answer();
  await turns();
  assert.deepEqual(calls[2].items, [3, 4, 5], "what waited goes as one batch");
  calls[0].answer();
  calls[2].answer();
  assert.deepEqual(await Promise.all([first, second, ...queued]), ["r1", "r2", "r3", "r4", "r5"]);
  assert.equal(batcher.inFlight, 0);
  batcher.close();
});

Deno.test("Batcher never puts more than maxBatch items in one batch", async () => {
  const { batcher, calls } = setup({ maxBatch: 3, maxInFlight: 4 });
  const results = Array.from({ length: 8 }, (_, n) => outcome(batcher.submit("", n)));
  await turns();
  assert.deepEqual(calls.map((c) => c.items), [[0, 1, 2], [3, 4, 5], [6, 7]]);
  for (const call of calls) call.answer();
  assert.equal((await Promise.all(results)).length, 8);
  batcher.close();
});

Deno.test("Batcher refuses at once beyond maxQueued, and what it accepted still completes", async () => {
  const { batcher, calls } = setup({ maxQueued: 3 });
  const inFlight = outcome(batcher.submit("", 0));
  await turns();
  const results = [1, 2, 3, 4, 5].map((n) => outcome(batcher.submit("", n)));
  assert.equal(batcher.queued, 3);
  assert.deepEqual(await Promise.all(results.slice(3)), ["!overflow", "!overflow"]);
  calls[0].answer();
  await turns();
  assert.deepEqual(calls[1].items, [1, 2, 3]);
  calls[1].answer();
  assert.deepEqual(await Promise.all([inFlight, ...results.slice(0, 3)]), ["r0", "r1", "r2", "r3"]);
  batcher.close();
});

Deno.test("Batcher: a failed batch fails its items and those queued behind it, not later ones", async () => {
  const { batcher, calls } = setup();
  const sent = [1, 2].map((n) => outcome(batcher.submit("", n)));
  await turns();
  const queued = [3, 4].map((n) => outcome(batcher.submit("", n)));
  await turns();
  calls[0].fail(new Error("connection reset"));
  assert.deepEqual(await Promise.all([...sent, ...queued]), [
    "!connection reset",
    "!connection reset",
    "!connection reset",
    "!connection reset",
  ]);
  assert.equal(calls.length, 1, "the queued ones were never sent");
  const later = outcome(batcher.submit("", 5));
  await turns();
  calls[1].answer();
  assert.equal(await later, "r5");
  batcher.close();
});

Deno.test("Batcher: an Error in place of a result fails that item alone", async () => {
  const { batcher, calls } = setup();
  const results = [1, 2, 3].map((n) => outcome(batcher.submit("", n)));
  await turns();
  calls[0].answer(["a", new Error("wrong type"), "c"]);
  assert.deepEqual(await Promise.all(results), ["a", "!wrong type", "c"]);
  batcher.close();
});

Deno.test("Batcher: a batch answered with the wrong number of results fails, it is not misattributed", async () => {
  const { batcher, calls } = setup();
  const results = [1, 2].map((n) => outcome(batcher.submit("", n)));
  await turns();
  calls[0].answer(["a"]);
  assert.deepEqual(await Promise.all(results), [
    "!A batch of 2 got 1 results",
    "!A batch of 2 got 1 results",
  ]);
  batcher.close();
});

Deno.test("Batcher: an item waiting longer than timeoutMs for a slot fails and is never sent", async () => {
  const { batcher, calls, timers } = setup();
  const sent = outcome(batcher.submit("", 1));
  await turns();
  timers.advance(30);
  const waiting = outcome(batcher.submit("", 2));
  await turns();
  // The batch in flight is given up on at 50 ms; the waiting item fails with it.
  timers.advance(20);
  assert.deepEqual(await Promise.all([sent, waiting]), ["!timeout", "!timeout"]);
  assert.equal(batcher.queued, 0);
  assert.equal(batcher.inFlight, 1, "the unanswered batch keeps its slot until it settles");
  let settled = false;
  const next = outcome(batcher.submit("", 3)).finally(() => settled = true);
  await turns();
  assert.equal(calls.length, 1, "no slot yet");
  timers.advance(49);
  await turns();
  assert.equal(settled, false, "still within its timeout");
  timers.advance(1);
  assert.equal(await next, "!timeout", "waited its whole timeout for a slot");
  calls[0].answer();
  await turns();
  assert.equal(calls.length, 1, "items that timed out are not sent late");
  assert.equal(batcher.inFlight, 0);
  assert.equal(timers.pending(), 0, "no timer is left once nothing waits");
  batcher.close();
});

Deno.test("Batcher: a batch gets timeoutMs from when it is sent, however long its items waited", async () => {
  const { batcher, calls, timers } = setup();
  const first = outcome(batcher.submit("", 1));
  await turns();
  timers.advance(10);
  const second = outcome(batcher.submit("", 2));
  await turns();
  timers.advance(30);
  calls[0].answer();
  await turns();
  assert.deepEqual(calls[1].items, [2], "sent at 40 ms, after 30 ms of waiting");
  timers.advance(45);
  calls[1].answer();
  assert.deepEqual(await Promise.all([first, second]), ["r1", "r2"]);
  batcher.close();
});

Deno.test("Batcher keeps partitions apart: separate batches and separate slots", async () => {
  const { batcher, calls } = setup();
  const results = [["a", 1], ["b", 2], ["a", 3], ["b", 4]].map(([partition, n]) =>
    outcome(batcher.submit(partition as string, n as number))
  );
  await turns();
  assert.deepEqual(calls.map((c) => [c.partition, c.items]), [["a", [1, 3]], ["b", [2, 4]]]);
  for (const call of calls) call.answer();
  assert.deepEqual(await Promise.all(results), ["r1", "r2", "r3", "r4"]);
  batcher.close();
});

Deno.test("Batcher.close() fails everything pending and clears its timer; later submits fail at once", async () => {
  const { batcher, calls, timers } = setup();
  const sent = outcome(batcher.submit("", 1));
  await turns();
  const queued = outcome(batcher.submit("", 2));
  batcher.close();
  assert.deepEqual(await Promise.all([sent, queued]), ["!closed", "!closed"]);
  assert.equal(timers.pending(), 0);
  assert.equal(await outcome(batcher.submit("", 3)), "!closed");
  calls[0].answer();
  await turns();
  assert.equal(calls.length, 1);
});

Deno.test("Batcher refuses bounds that are not positive integers", () => {
  const options = {
    send: () => Promise.resolve([]),
    maxBatch: 1,
    maxInFlight: 1,
    maxQueued: 1,
    timeoutMs: 1,
    errors: { timeout: () => new Error(), overflow: () => new Error(), closed: () => new Error() },
  };
  assert.throws(() => new Batcher({ ...options, maxBatch: 0 }), /maxBatch must be a positive/);
  assert.throws(() => new Batcher({ ...options, maxQueued: 1.5 }), /maxQueued must be a positive/);
  assert.throws(() => new Batcher({ ...options, timeoutMs: 0 }), /timeoutMs must be positive/);
});
