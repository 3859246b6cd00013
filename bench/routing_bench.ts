/**
 * deno task bench:routes — route matching cost with 10,000 routes, on a
 * table of plain prefixes and on one with hosts and header matches.
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

/**
 * The same 10,000 prefixes spread over 100 hosts (exact and wildcard), each
 * prefix also with a header-matched canary twin: what edge routing costs.
 */
function edgeTable(count: number): RoutingTable {
  const routes: RouteEntry[] = [];
  for (let i = 0; i < count; i++) {
    const prefix = `/api/v${i % 10}/team-${i}/service`;
    const base = {
      pathPrefix: prefix,
      prefixSegments: countSegments(prefix),
      authRequired: false,
      forwardCredentials: false,
      stripPrefix: false,
      source: "config" as const,
      hosts: [`h${i % 100}.example.com`, `*.w${i % 100}.example.com`],
    };
    routes.push({ ...base, id: `route-${i}`, serviceName: `svc-${i}` });
    routes.push({
      ...base,
      id: `canary-${i}`,
      serviceName: `canary-${i}`,
      headers: [{ name: "x-canary", value: "true" }],
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
const edge = edgeTable(10_000);
const plainRequest = { host: "h97.example.com", method: "GET", headers: new Headers(), query: "" };
const canaryRequest = {
  ...plainRequest,
  host: "a.w97.example.com",
  headers: new Headers({ "x-canary": "true" }),
};
if (edge.match(hit, plainRequest)?.id !== "route-9997") throw new Error("wrong edge match");
if (edge.match(hit, canaryRequest)?.id !== "canary-9997") throw new Error("wrong canary match");

Deno.bench("match, 20,000 host+header routes, exact host, no header", { group: "edge" }, () => {
  edge.match(hit, plainRequest);
});
Deno.bench("match, 20,000 host+header routes, wildcard host, header", { group: "edge" }, () => {
  edge.match(hit, canaryRequest);
});
Deno.bench("match, 20,000 host+header routes, unknown host, miss", { group: "edge" }, () => {
  edge.match(miss, { ...plainRequest, host: "nowhere.example.org" });
});
Deno.bench("canonicalizePath, plain path", { group: "path" }, () => {
  canonicalizePath(hit);
});
Deno.bench("canonicalizePath, escaped path", { group: "path" }, () => {
  canonicalizePath("/api/v7/team-9997/service/%6Frders/a%20b");
});
