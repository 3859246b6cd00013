import assert from "node:assert/strict";
import { Balancer } from "../../lib/proxy/balancer.ts";
import { UpstreamHealth } from "../../lib/proxy/health.ts";
import type { Endpoint } from "../../lib/routing/table.ts";

const A: Endpoint = { url: "http://10.0.0.1:80", ready: true };
const B: Endpoint = { url: "http://10.0.0.2:80", ready: true };
const SETTINGS = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3000 };

function setup() {
  const clock = { now: 0 };
  const health = new UpstreamHealth({ now: () => clock.now });
  const fail = (url: string, times: number) => {
    let ms = 0;
    for (let i = 0; i < times; i++) {
      ms = health.recordFailure(url, { settings: SETTINGS, endpoints: [A, B] });
    }
    return ms;
  };
  return { clock, health, fail };
}

Deno.test("UpstreamHealth ejects after consecutive failures, doubling the interval up to the maximum", () => {
  const { clock, health, fail } = setup();
  assert.equal(fail(A.url, 2), 0);
  assert.equal(fail(A.url, 1), 1000);
  assert.equal(health.available(A.url), false);
  assert.deepEqual(health.usable([A, B]), [B]);
  clock.now = 999;
  assert.equal(health.available(A.url), false);
  clock.now = 1000;
  assert.equal(health.available(A.url), true);
  assert.equal(fail(A.url, 3), 2000);
  clock.now += 2000;
  assert.equal(fail(A.url, 3), 3000);
  clock.now += 3000;
  assert.equal(fail(A.url, 3), 3000);
});

Deno.test("UpstreamHealth: a success resets the failure streak and, after the ejection, the ejection count", () => {
  const { clock, health, fail } = setup();
  fail(A.url, 2);
  health.recordSuccess(A.url);
  assert.equal(fail(A.url, 2), 0);
  assert.equal(fail(A.url, 1), 1000);
  // A late success from a request sent before the ejection does not end it.
  health.recordSuccess(A.url);
  assert.equal(health.available(A.url), false);
  clock.now = 1000;
  health.recordSuccess(A.url);
  assert.equal(fail(A.url, 3), 1000);
});

Deno.test("UpstreamHealth never ejects the last endpoint that may get traffic", () => {
  const { health, fail } = setup();
  assert.equal(fail(A.url, 3), 1000);
  assert.equal(fail(B.url, 10), 0);
  assert.deepEqual(health.usable([A, B]), [B]);
});

Deno.test("UpstreamHealth: endpoints marked down by a checker get no traffic, unless none is left", () => {
  const { health } = setup();
  const checker = {};
  health.setDown(A.url, true, checker);
  assert.deepEqual(health.usable([A, B]), [B]);
  health.setDown(B.url, true, checker);
  assert.deepEqual(health.usable([A, B]), [A, B], "panic mode: all of them");
  // A newer checker's mark survives the old checker's release.
  const newer = {};
  health.setDown(B.url, true, newer);
  health.release(checker);
  assert.deepEqual(health.usable([A, B]), [A]);
  health.release(newer);
  assert.deepEqual(health.usable([A, B]), [A, B]);
});

Deno.test("Balancer.pick() skips unusable endpoints and every excluded one", () => {
  const { fail, health } = setup();
  const balancer = new Balancer({ health });
  fail(A.url, 3);
  for (let i = 0; i < 4; i++) assert.equal(balancer.pick([A, B])?.url, B.url);
  assert.equal(balancer.pick([A, B], new Set([B.url])), undefined);
  const C: Endpoint = { url: "http://10.0.0.3:80", ready: true };
  assert.equal(balancer.pick([A, B, C], new Set([B.url]))?.url, C.url);
});
