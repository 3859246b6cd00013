/**
 * deno task bench:routes — route matching cost with 10,000 routes.
 * Matching walks the request path's segments (one Map lookup each), so it
 * should not depend on how many routes there are.
 */
import { canonicalizePath } from "../lib/routing/path.ts";
import { countSegments, type RouteEntry, RoutingTable } from "../lib/routing/table.ts";

function table(count: number): RoutingTable {
  const routes: RouteEntry[] = [];
  for (let i = 0; i < count; i++) {
    const prefix = `/api/v${i % 10}/team-${i}/service`;
    routes.push({
      id: `route-${i}`,
      pathPrefix: prefix,
      prefixSegments: countSegments(prefix),
      serviceName: `svc-${i}`,
      authRequired: false,
      forwardCredentials: false,
      stripPrefix: false,
      source: "config",
    });
  }
  return new RoutingTable(routes, new Map());
}

const small = table(10);
const large = table(10_000);
const hit = "/api/v7/team-9997/service/orders/42";
const miss = "/nothing/here/at/all/with/a/long/path/of/many/segments";
if (large.match(hit)?.id !== "route-9997") throw new Error("wrong match");

Deno.bench("match, 10 routes, hit", { group: "match", baseline: true }, () => {
  small.match("/api/v7/team-7/service/orders/42");
});
Deno.bench("match, 10,000 routes, hit", { group: "match" }, () => {
  large.match(hit);
});
Deno.bench("match, 10,000 routes, miss (10 segments)", { group: "match" }, () => {
  large.match(miss);
});
Deno.bench("canonicalizePath, plain path", { group: "path" }, () => {
  canonicalizePath(hit);
});
Deno.bench("canonicalizePath, escaped path", { group: "path" }, () => {
  canonicalizePath("/api/v7/team-9997/service/%6Frders/a%20b");
});
