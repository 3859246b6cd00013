/**
 * Traffic for the Redis Cluster and Sentinel tests: gateways with one
 * rate-limited route whose bucket is chosen by an `X-Client` header, bursts
 * of concurrent requests per client, and a failover measurement that counts
 * what Redis admitted per client across a crash.
 */
import assert from "node:assert/strict";
import { bucketId } from "../../lib/ratelimit/limiter.ts";
import { storageKey } from "../../lib/ratelimit/redis.ts";
import { startTestGateway, type TestGateway, type TestServer } from "../helpers.ts";

/** The id of the limited route. */
export const ROUTE = "limited";
/** The window of its limit. */
export const WINDOW_SECONDS = 60;

/** Config text: `redis` (a YAML `redis:` section) and one route limited to `limit` per client. */
export function limitedYaml(redis: string, upstream: TestServer, limit: number): string {
  return `${redis}
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: ${ROUTE}
    path_prefix: /${ROUTE}
    service_name: app
    rate_limit:
      requests_per_period: ${limit}
      period_seconds: ${WINDOW_SECONDS}
      client_identifier: X-Client
`;
}

/** Starts `count` gateways from one config (instances of one deployment). */
export async function startGateways(yaml: string, count: number): Promise<TestGateway[]> {
  const gateways: TestGateway[] = [];
  try {
    for (let i = 0; i < count; i++) gateways.push(await startTestGateway(yaml));
  } catch (error) {
    await Promise.all(gateways.map((gw) => gw.close()));
    throw error;
  }
  return gateways;
}

/** The Redis key of a client's bucket on the limited route (the gateway's `h:` identity). */
export function bucketKey(client: string): string {
  return storageKey(bucketId(ROUTE, `h:${client}`));
}

/** `count` client names (from `prefix`) whose bucket key passes `wanted`. */
export function clientsWhere(
  prefix: string,
  count: number,
  wanted: (key: string) => boolean,
): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    if (i > 100_000) throw new Error(`no ${count} clients found for ${prefix}`);
    const client = `${prefix}-${i}`;
    if (wanted(bucketKey(client))) out.push(client);
  }
  return out;
}

/** One answered request. */
export interface Answer {
  readonly status: number;
  readonly ms: number;
  /** Whether it carried a `RateLimit` header (the count is known). */
  readonly counted: boolean;
}

/** One request as `client` through `gw`. */
export async function request(gw: TestGateway, client: string): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(`${gw.url}/${ROUTE}/x`, { headers: { "x-client": client } });
  await response.body?.cancel();
  return {
    status: response.status,
    ms: performance.now() - started,
    counted: response.headers.has("ratelimit"),
  };
}

/** `perClient` concurrent requests for every client at once, spread over the gateways. */
export async function burst(
  gateways: readonly TestGateway[],
  clients: readonly string[],
  perClient: number,
): Promise<Map<string, Answer[]>> {
  const out = new Map<string, Answer[]>();
  await Promise.all(clients.flatMap((client) => {
    const answers: Answer[] = [];
    out.set(client, answers);
    return Array.from(
      { length: perClient },
      async (_, i) => answers.push(await request(gateways[i % gateways.length], client)),
    );
  }));
  return out;
}

/** How many answers have each status. */
export function tally(answers: readonly Answer[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const { status } of answers) out[status] = (out[status] ?? 0) + 1;
  return out;
}

/**
 * Requests for every client, one round every ~25 ms, until stopped: what
 * clients keep sending while a master fails over.
 */
export function stream(
  gateways: readonly TestGateway[],
  clients: readonly string[],
): { stop(): Promise<Map<string, Answer[]>> } {
  const out = new Map<string, Answer[]>(clients.map((client) => [client, []]));
  let running = true;
  let round = 0;
  const loop = (async () => {
    while (running) {
      const turn = round++;
      await Promise.all(clients.map(async (client, i) => {
        out.get(client)!.push(await request(gateways[(turn + i) % gateways.length], client));
      }));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return out;
    },
  };
}

/** What a failover cost, per client, as Redis counted it, and how long it took. */
export interface FailoverCost {
  /** Answers while the master failed over, for every client. */
  readonly during: readonly Answer[];
  /** Over all clients: requests admitted in the window beyond the limit. */
  readonly extra: number;
  /** The most any one client got beyond the limit. */
  readonly worst: number;
  /** From the crash until every gateway was served for these clients again. */
  readonly outageMs: number;
}

/** The line the failover tests print: `failover: extra admissions = K of window N ...`. */
export function failoverLine(cost: FailoverCost, limit: number, what: string): string {
  return `failover: extra admissions = ${cost.worst} of window ${limit} per client at worst ` +
    `(${cost.extra} in all; ${what}; served again ${(cost.outageMs / 1000).toFixed(1)} s ` +
    `after the crash)`;
}

/**
 * With `failure_mode: closed` every 200 is a request Redis admitted: each
 * client sends `before` requests (all admitted), then keeps sending while
 * `crash()` takes a master down and `recovered()` waits for its replica to
 * serve, then sends `limit + 10` more at once. Within one window a client
 * may be admitted `limit` times; what Redis admitted beyond that is what the
 * new master did not know, i.e. counts lost with the old one.
 */
export async function measureFailover(options: {
  gateways: readonly TestGateway[];
  clients: readonly string[];
  limit: number;
  before: number;
  crash: () => Promise<void>;
  recovered: () => Promise<void>;
}): Promise<FailoverCost> {
  const { gateways, clients, limit, before } = options;
  const started = performance.now();
  for (const [client, answers] of await burst(gateways, clients, before)) {
    assert.deepEqual(tally(answers), { 200: before }, `before the crash, ${client}`);
  }
  const traffic = stream(gateways, clients);
  let during: Map<string, Answer[]>;
  let outageMs = 0;
  try {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const crashed = performance.now();
    await options.crash();
    await options.recovered();
    outageMs = performance.now() - crashed;
  } finally {
    during = await traffic.stop();
  }
  const after = await burst(gateways, clients, limit + 10);
  assert.ok(
    (performance.now() - started) / 1000 < WINDOW_SECONDS / 2,
    "the whole measurement stays within one window",
  );
  let extra = 0;
  let worst = 0;
  for (const client of clients) {
    const admitted = before + [...during.get(client)!, ...after.get(client)!]
      .filter((answer) => answer.status === 200).length;
    // Fewer than the limit is possible too: a check whose answer was lost in
    // the crash may still have been counted. That costs the client, never
    // the upstream.
    const beyond = Math.max(0, admitted - limit);
    extra += beyond;
    worst = Math.max(worst, beyond);
  }
  return { during: [...during.values()].flat(), extra, worst, outageMs };
}
