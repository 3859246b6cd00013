import assert from "node:assert/strict";
import { routesThatCannotServe } from "../../lib/server/route_problems.ts";
import { configFrom } from "../helpers.ts";

Deno.test("routesThatCannotServe() names each route that answers only errors, and why", () => {
  const config = configFrom(`
auth:
  api_key:
    keys: [{ id: a, sha256: "${"0".repeat(64)}" }]
services:
  up: { urls: [http://127.0.0.1:9] }
  empty: { urls: [] }
  tuned: { retries: 1 }
routes:
  - { id: fine, path_prefix: /fine, service_name: up, auth_required: true }
  - { id: empty, path_prefix: /empty, service_name: empty }
  - { id: tuned, path_prefix: /tuned, service_name: tuned }
  - { id: nowhere, path_prefix: /nowhere, service_name: nowhere }
`);
  const off = routesThatCannotServe(config, { discoveryOn: false });
  assert.deepEqual(off.map((p) => p.message), [
    'route "empty" sends to service "empty", which has an empty urls list: every request answers 503',
    'route "tuned" sends to service "tuned", which has no urls in services and Kubernetes discovery is off: every request answers 503',
    'route "nowhere" sends to service "nowhere", which is not defined in services and Kubernetes discovery is off: every request answers 503',
  ]);
  // With discovery on, Kubernetes may provide any name: only the empty list is certain.
  assert.deepEqual(routesThatCannotServe(config, { discoveryOn: true }).map((p) => p.route), [
    "empty",
  ]);
});
