/**
 * The connection pool on its own, over real loopback sockets: what it hands
 * out, what it refuses to hand out, and the per-origin limit with its queue.
 */
import assert from "node:assert/strict";
import { type Claim, type Connection, ConnectionPool } from "../../lib/proxy/pool.ts";
import { serveTcp, type TestServer, within, writeAll } from "../helpers.ts";

/** A TCP upstream that accepts, never answers, and lets the test write on its side. */
interface Upstream extends TestServer {
  /** Server sides of the accepted connections, in order. */
  readonly accepted: Deno.Conn[];
}

function startUpstream(): Upstream {
  const accepted: Deno.Conn[] = [];
  const server = serveTcp(async (conn) => {
    accepted.push(conn);
    const buffer = new Uint8Array(1024);
    while ((await conn.read(buffer)) !== null) {
      // requests are not answered here
    }
  });
  return { ...server, accepted };
}

/** A request that never gives up. */
const PATIENT: Claim = { abandoned: false, interrupted: new Promise<never>(() => {}) };

/** A request that gives up when `giveUp` is called. */
function impatient(): Claim & { giveUp(error: Error): void } {
  let giveUp!: (error: Error) => void;
  const interrupted = new Promise<never>((_, reject) => giveUp = reject);
  return { abandoned: false, interrupted, giveUp };
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  for (const started = performance.now(); !check();) {
    if (performance.now() - started > 2000) assert.fail(`Never happened: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Whether `promise` is still pending once everything already under way has run. */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 20));
  return !settled;
}

async function withPool(
  options: Partial<ConstructorParameters<typeof ConnectionPool>[0]>,
  run: (pool: ConnectionPool, upstream: Upstream, open: Connection[]) => Promise<void>,
): Promise<void> {
  const upstream = startUpstream();
  const pool = new ConnectionPool({
    maxIdlePerOrigin: 256,
    maxConnectionsPerOrigin: 1024,
    idleTimeoutMs: 4000,
    ...options,
  });
  const open: Connection[] = [];
  try {
    await run(pool, upstream, open);
  } finally {
    pool.close();
    for (const connection of open) connection.close();
    await upstream.close();
  }
}

Deno.test("ConnectionPool hands a released connection to the next request for its origin", async () => {
  await withPool({}, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    assert.equal(pool.takeIdle(origin), undefined);
    const first = await pool.acquire(origin, PATIENT);
    open.push(first);
    pool.release(first);
    assert.equal(pool.takeIdle(origin), first);
    assert.equal(pool.takeIdle(origin), undefined, "taken connections leave the pool");
    await eventually("one accepted connection", () => upstream.accepted.length === 1);
  });
});

for (
  const [name, misbehave] of [
    ["receives a byte", (conn: Deno.Conn) => writeAll(conn, new Uint8Array([0x48]))],
    ["is closed by the upstream", (conn: Deno.Conn) => Promise.resolve(conn.closeWrite())],
  ] as const
) {
  Deno.test(`ConnectionPool closes an idle connection that ${name}, and never hands it out`, async () => {
    await withPool({}, async (pool, upstream, open) => {
      const origin = pool.origin(upstream.url);
      const connection = await pool.acquire(origin, PATIENT);
      open.push(connection);
      await eventually("the upstream accepted", () => upstream.accepted.length === 1);
      pool.release(connection);
      await misbehave(upstream.accepted[0]);
      await eventually("the idle connection closed", () => connection.closed);
      assert.equal(pool.takeIdle(origin), undefined);
    });
  });
}

Deno.test("ConnectionPool closes, not pools, a connection with unread bytes", async () => {
  await withPool({}, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const connection = await pool.acquire(origin, PATIENT);
    open.push(connection);
    await eventually("the upstream accepted", () => upstream.accepted.length === 1);
    await writeAll(upstream.accepted[0], new Uint8Array([1, 2, 3]));
    assert.equal(await connection.reader.fill(), true);
    pool.release(connection);
    assert.equal(connection.closed, true);
    assert.equal(pool.takeIdle(origin), undefined);
  });
});

Deno.test("ConnectionPool keeps at most maxIdlePerOrigin idle connections and reuses the newest", async () => {
  await withPool({ maxIdlePerOrigin: 2 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const connections = [];
    for (let i = 0; i < 3; i++) connections.push(await pool.acquire(origin, PATIENT));
    open.push(...connections);
    for (const connection of connections) pool.release(connection);
    assert.deepEqual(connections.map((c) => c.closed), [false, false, true]);
    assert.equal(pool.takeIdle(origin), connections[1]);
    assert.equal(pool.takeIdle(origin), connections[0]);
  });
});

Deno.test("ConnectionPool does not reuse a connection idle longer than idleTimeoutMs", async () => {
  await withPool({ idleTimeoutMs: 1000 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const connection = await pool.acquire(origin, PATIENT);
    open.push(connection);
    pool.release(connection);
    connection.idleSince -= 1000;
    assert.equal(pool.takeIdle(origin), undefined);
    assert.equal(connection.closed, true);
  });
});

Deno.test("ConnectionPool's sweeper closes connections idle longer than idleTimeoutMs", async () => {
  await withPool({ idleTimeoutMs: 30 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const connection = await pool.acquire(origin, PATIENT);
    open.push(connection);
    pool.release(connection);
    await eventually("the sweeper closed the idle connection", () => connection.closed);
    assert.equal(pool.takeIdle(origin), undefined);
  });
});

Deno.test("ConnectionPool at its origin limit makes a request wait, then hands it the released connection", async () => {
  await withPool({ maxConnectionsPerOrigin: 1 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const first = await pool.acquire(origin, PATIENT);
    open.push(first);
    const second = pool.acquire(origin, PATIENT);
    assert.equal(await pending(second), true, "the second request waits");
    pool.release(first);
    assert.equal(
      await within(2000, "the handover", second),
      first,
      "handed over, not pooled and not a new connection",
    );
    assert.equal(pool.takeIdle(origin), undefined);
    assert.equal(upstream.accepted.length, 1);
  });
});

Deno.test("ConnectionPool gives a closed connection's slot to the longest-waiting request", async () => {
  await withPool({ maxConnectionsPerOrigin: 1 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const first = await pool.acquire(origin, PATIENT);
    open.push(first);
    const second = pool.acquire(origin, PATIENT);
    const third = pool.acquire(origin, PATIENT);
    assert.equal(await pending(second), true);
    first.close();
    const next = await within(2000, "the free slot", second);
    open.push(next);
    assert.notEqual(next, first);
    assert.equal(await pending(third), true, "still one connection at a time");
    pool.release(next);
    assert.equal(await within(2000, "the handover", third), next);
    await eventually("two accepted connections", () => upstream.accepted.length === 2);
  });
});

Deno.test("ConnectionPool: a request that gives up waiting leaves its place, and the slot is not lost", async () => {
  await withPool({ maxConnectionsPerOrigin: 1 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const first = await pool.acquire(origin, PATIENT);
    open.push(first);
    const claim = impatient();
    const waiting = pool.acquire(origin, claim);
    const gone = new Error("gave up");
    claim.giveUp(gone);
    await assert.rejects(waiting, (error) => error === gone);
    first.close();
    const after = await pool.acquire(origin, PATIENT);
    open.push(after);
    assert.equal(after.closed, false);
    await eventually("two accepted connections", () => upstream.accepted.length === 2);
  });
});

Deno.test("ConnectionPool closes a connection opened for a request that gave up meanwhile, and frees its slot", async () => {
  await withPool({ maxConnectionsPerOrigin: 1 }, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const abandoned = await pool.acquire(origin, { ...PATIENT, abandoned: true });
    open.push(abandoned);
    assert.equal(abandoned.closed, true);
    const next = await pool.acquire(origin, PATIENT);
    open.push(next);
    assert.equal(next.closed, false);
  });
});

Deno.test("ConnectionPool.close() closes idle connections and pools nothing after", async () => {
  await withPool({}, async (pool, upstream, open) => {
    const origin = pool.origin(upstream.url);
    const idle = await pool.acquire(origin, PATIENT);
    const busy = await pool.acquire(origin, PATIENT);
    open.push(idle, busy);
    pool.release(idle);
    pool.close();
    assert.equal(idle.closed, true);
    pool.release(busy);
    assert.equal(busy.closed, true);
    assert.equal(pool.takeIdle(origin), undefined);
  });
});
