import assert from "node:assert/strict";
import {
  closedPort,
  configFrom,
  eventually,
  latch,
  metricValue,
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestServer,
  withGateway,
  within,
} from "../helpers.ts";

/** An upstream that counts requests and answers with `status()` and its name. */
function countingUpstream(
  name: string,
  status: (path: string) => number = () => 200,
): TestServer & { hits: number } {
  const counter = { hits: 0 };
  const server = startUpstream((request) => {
    const path = new URL(request.url).pathname;
    if (path !== "/healthz") counter.hits++;
    return new Response(name, { status: status(path) });
  });
  return Object.assign(counter, server);
}

function twoEndpoints(a: TestServer | string, b: TestServer | string, settings: string): string {
  const url = (x: TestServer | string) => typeof x === "string" ? x : x.url;
  return `
services:
  pair:
    urls: [${url(a)}, ${url(b)}]
${settings.trim().split("\n").map((line) => `    ${line}`).join("\n")}
routes:
  - { id: pair, path_prefix: /, service_name: pair }
`;
}

async function metric(gw: TestGateway, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return metricValue(text, series);
}

async function get(gw: TestGateway, path = "/x"): Promise<{ status: number; text: string }> {
  const response = await fetch(gw.url + path);
  return { status: response.status, text: await response.text() };
}

/** Sends GETs every few ms until `endpoint` gets one; returns the time since `since`. */
async function msUntilTraffic(
  gw: TestGateway,
  endpoint: { hits: number },
  since: number,
): Promise<number> {
  const before = endpoint.hits;
  await eventually(5000, "traffic to the ejected endpoint", async () => {
    await get(gw);
    return endpoint.hits > before;
  });
  return performance.now() - since;
}

Deno.test("an endpoint that fails 5 times in a row is ejected, comes back, and is ejected twice as long next time", async () => {
  let failing = true;
  const bad = countingUpstream("bad", () => failing ? 500 : 200);
  const good = countingUpstream("good");
  const yaml = twoEndpoints(
    bad,
    good,
    `
passive_health: { consecutive_failures: 5, base_ejection_ms: 300, max_ejection_ms: 5000 }`,
  );
  await withGateway([bad, good], yaml, async (gw) => {
    // Picks alternate, so the bad endpoint sees every other request.
    while (bad.hits < 5) await get(gw);
    let ejectedAt = performance.now();
    assert.equal(await metric(gw, 'vanguard_upstream_ejections_total{service="pair"}'), 1);
    assert.equal(await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}'), 1);
    for (let i = 0; i < 10; i++) assert.deepEqual(await get(gw), { status: 200, text: "good" });
    assert.equal(bad.hits, 5, "an ejected endpoint gets no traffic");

    const first = await msUntilTraffic(gw, bad, ejectedAt);
    assert.ok(first >= 200 && first < 550, `back after ${first} ms, expected about 300`);
    assert.equal(await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}'), 0);

    // Still failing: five more failures eject it again, for 600 ms.
    const hitsAtReturn = bad.hits;
    while (bad.hits < hitsAtReturn + 4) await get(gw);
    ejectedAt = performance.now();
    assert.equal(await metric(gw, 'vanguard_upstream_ejections_total{service="pair"}'), 2);
    const second = await msUntilTraffic(gw, bad, ejectedAt);
    assert.ok(second >= 500 && second < 1100, `back after ${second} ms, expected about 600`);

    // A success resets the ejection count: the next ejection is 300 ms again.
    failing = false;
    const hitsBack = bad.hits;
    while (bad.hits < hitsBack + 1) await get(gw);
    failing = true;
    const hitsBefore = bad.hits;
    while (bad.hits < hitsBefore + 5) await get(gw);
    ejectedAt = performance.now();
    assert.equal(await metric(gw, 'vanguard_upstream_ejections_total{service="pair"}'), 3);
    const third = await msUntilTraffic(gw, bad, ejectedAt);
    assert.ok(third >= 200 && third < 550, `back after ${third} ms, expected about 300`);
  });
});

Deno.test("ejection never takes out the last endpoint: two failing endpoints still get traffic", async () => {
  const a = countingUpstream("a", () => 500);
  const b = countingUpstream("b", () => 503);
  const yaml = twoEndpoints(
    a,
    b,
    `
passive_health: { consecutive_failures: 2, base_ejection_ms: 60000 }`,
  );
  await withGateway([a, b], yaml, async (gw) => {
    for (let i = 0; i < 20; i++) {
      const { status, text } = await get(gw);
      // The upstream's own answer, never the gateway's "no healthy upstream".
      assert.ok((status === 500 && text === "a") || (status === 503 && text === "b"));
    }
    assert.equal(a.hits + b.hits, 20);
    assert.equal(await metric(gw, 'vanguard_upstream_ejections_total{service="pair"}'), 1);
    assert.equal(await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}'), 1);
  });
});

Deno.test("an endpoint that refuses connections is ejected after 5 refusals", async () => {
  const alive = countingUpstream("alive");
  const dead = `http://127.0.0.1:${closedPort()}`;
  await withGateway(alive, twoEndpoints(dead, alive, ""), async (gw) => {
    for (let i = 0; i < 30; i++) assert.deepEqual(await get(gw), { status: 200, text: "alive" });
    // Each refusal was retried on the live endpoint; after the fifth, no more attempts.
    assert.equal(
      await metric(gw, 'vanguard_upstream_errors_total{service="pair",kind="refused"}'),
      5,
    );
    assert.equal(await metric(gw, 'vanguard_upstream_ejections_total{service="pair"}'), 1);
    assert.equal(alive.hits, 30);
  });
});

Deno.test("active health checks take a failing endpoint out within a few intervals and put it back", async (t) => {
  let healthy = true;
  const a = countingUpstream("a", (path) => path === "/healthz" && !healthy ? 500 : 200);
  const b = countingUpstream("b");
  const settings = `
health_check: { path: /healthz, interval_ms: 50, timeout_ms: 200, unhealthy_threshold: 2 }`;
  const gw = await startTestGateway(twoEndpoints(a, b, settings));
  try {
    await t.step("a failing endpoint gets no traffic", async () => {
      healthy = false;
      const started = performance.now();
      await eventually(
        2000,
        "the endpoint marked down",
        async () => await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}') === 1,
      );
      // Two failed checks 50 ms apart, plus the wait for the next check.
      assert.ok(performance.now() - started < 1000);
      const before = a.hits;
      for (let i = 0; i < 10; i++) assert.deepEqual(await get(gw), { status: 200, text: "b" });
      assert.equal(a.hits, before);
      assert.ok(
        (await metric(gw, 'vanguard_health_check_failures_total{service="pair"}'))! >= 2,
      );
    });
    await t.step("it gets traffic again once a check passes", async () => {
      healthy = true;
      await eventually(
        2000,
        "the endpoint back",
        async () => await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}') === 0,
      );
      const before = a.hits;
      for (let i = 0; i < 4; i++) await get(gw);
      assert.equal(a.hits, before + 2);
    });
    await t.step("a reload without health_check forgets the marks", async () => {
      healthy = false;
      await eventually(
        2000,
        "the endpoint marked down",
        async () => await metric(gw, 'vanguard_upstream_ejected_endpoints{service="pair"}') === 1,
      );
      assert.deepEqual(await gw.gateway.reload(configFrom(twoEndpoints(a, b, ""))), { ok: true });
      const before = a.hits;
      for (let i = 0; i < 4; i++) await get(gw);
      assert.equal(a.hits, before + 2);
    });
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("max_in_flight: one request more gets 503 at once, and the upstream never sees it", async () => {
  const release = latch();
  let seen = 0;
  const upstream = startUpstream(async () => {
    seen++;
    await release.promise;
    return new Response("done");
  });
  const yaml = `
services:
  slow: { urls: [${upstream.url}], max_in_flight: 2 }
routes:
  - { id: slow, path_prefix: /, service_name: slow }
`;
  await withGateway(upstream, yaml, async (gw) => {
    let settled = 0;
    const held = [fetch(`${gw.url}/1`), fetch(`${gw.url}/2`)].map((p) =>
      p.then(async (r) => {
        settled++;
        return { status: r.status, text: await r.text() };
      })
    );
    await eventually(5000, "two requests held upstream", () => seen === 2);

    const started = performance.now();
    const over = await within(2000, "the overloaded answer", fetch(`${gw.url}/3`));
    const elapsed = performance.now() - started;
    assert.equal(over.status, 503);
    assert.equal(over.headers.get("retry-after"), "1");
    assert.equal((await over.json()).error, "upstream_overloaded");
    assert.equal(settled, 0, "answered while the held requests were still in flight");
    assert.ok(elapsed < 500, `answered after ${elapsed} ms`);
    assert.equal(seen, 2, "the upstream never saw the refused request");
    assert.equal(await metric(gw, 'vanguard_upstream_overloaded_total{service="slow"}'), 1);

    release.resolve();
    assert.deepEqual(await Promise.all(held), [
      { status: 200, text: "done" },
      { status: 200, text: "done" },
    ]);
    // The slots are free again.
    const after = await fetch(`${gw.url}/4`);
    assert.equal(after.status, 200);
    await after.text();
  });
});

Deno.test("retries: a GET answered 503 is retried on the other endpoint", async () => {
  const unavailable = countingUpstream("unavailable", () => 503);
  const ok = countingUpstream("ok");
  const yaml = twoEndpoints(
    unavailable,
    ok,
    `
retries: 2
passive_health: { consecutive_failures: 0 }`,
  );
  await withGateway([unavailable, ok], yaml, async (gw) => {
    for (let i = 0; i < 6; i++) assert.deepEqual(await get(gw), { status: 200, text: "ok" });
    assert.equal(ok.hits, 6);
    // Every attempt on the 503 endpoint was retried once, on the other one.
    assert.ok(unavailable.hits >= 1);
    assert.equal(
      await metric(gw, 'vanguard_upstream_retries_total{service="pair"}'),
      unavailable.hits,
    );
  });
});

Deno.test("retries: the last attempt's answer reaches the client when every endpoint fails", async () => {
  const a = countingUpstream("a", () => 502);
  const b = countingUpstream("b", () => 504);
  const yaml = twoEndpoints(
    a,
    b,
    `
retries: 2
passive_health: { consecutive_failures: 0 }`,
  );
  await withGateway([a, b], yaml, async (gw) => {
    const { status } = await get(gw);
    assert.ok(status === 502 || status === 504);
    assert.equal(a.hits + b.hits, 3, "one attempt and two retries");
  });
});

Deno.test("retries: a request with a body is never retried, idempotent or not", async () => {
  const a = countingUpstream("a", () => 503);
  const b = countingUpstream("b", () => 503);
  const yaml = twoEndpoints(
    a,
    b,
    `
retries: 5
passive_health: { consecutive_failures: 0 }`,
  );
  await withGateway([a, b], yaml, async (gw) => {
    for (const method of ["POST", "PUT"]) {
      const before = a.hits + b.hits;
      const response = await fetch(`${gw.url}/x`, { method, body: "payload" });
      assert.equal(response.status, 503);
      await response.text();
      assert.equal(a.hits + b.hits - before, 1, `${method}: exactly one attempt`);
    }
    assert.equal(await metric(gw, 'vanguard_upstream_retries_total{service="pair"}'), undefined);
  });
});

Deno.test("retries: a GET that times out is not retried", async () => {
  const release = latch();
  let attempts = 0;
  const slow = () =>
    startUpstream(async () => {
      attempts++;
      await release.promise;
      return new Response("late");
    });
  const a = slow();
  const b = slow();
  const yaml = `
server:
  upstream_timeout_ms: 200
${twoEndpoints(a, b, "retries: 2")}`;
  await withGateway([a, b], yaml, async (gw) => {
    try {
      const { status } = await get(gw);
      assert.equal(status, 504);
      assert.equal(attempts, 1);
      assert.equal(
        await metric(gw, 'vanguard_upstream_errors_total{service="pair",kind="timeout"}'),
        1,
      );
    } finally {
      release.resolve();
    }
  });
});

Deno.test("retries: a refused connection is retried on another endpoint", async () => {
  const ok = countingUpstream("ok");
  const dead = `http://127.0.0.1:${closedPort()}`;
  const yaml = twoEndpoints(
    dead,
    ok,
    `
retries: 1
passive_health: { consecutive_failures: 0 }`,
  );
  await withGateway(ok, yaml, async (gw) => {
    for (let i = 0; i < 4; i++) assert.deepEqual(await get(gw), { status: 200, text: "ok" });
    const refused = await metric(
      gw,
      'vanguard_upstream_errors_total{service="pair",kind="refused"}',
    );
    assert.ok(refused! >= 1);
    assert.equal(await metric(gw, 'vanguard_upstream_retries_total{service="pair"}'), refused);
  });
});
