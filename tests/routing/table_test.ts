import assert from "node:assert/strict";
import type { Config } from "../../lib/config/types.ts";
import { DEFAULT_UPSTREAM_SETTINGS } from "../../lib/proxy/settings.ts";
import {
  countSegments,
  type RouteEntry,
  RoutingState,
  RoutingTable,
  type ServiceEntry,
  serviceEntry,
  tableFromConfig,
} from "../../lib/routing/table.ts";

function route(id: string, pathPrefix: string, serviceName = `${id}-service`): RouteEntry {
  return {
    id,
    pathPrefix,
    prefixSegments: countSegments(pathPrefix),
    serviceName,
    authRequired: false,
    forwardCredentials: false,
    stripPrefix: false,
    source: "config",
  };
}

/** A route whose prefix matches regardless of letter case (`case_insensitive: true`). */
function foldingRoute(id: string, pathPrefix: string): RouteEntry {
  return { ...route(id, pathPrefix), caseInsensitive: true };
}

function table(routes: RouteEntry[], version = 1): RoutingTable {
  return new RoutingTable(routes, new Map<string, ServiceEntry>(), version);
}

function matchedId(t: RoutingTable, path: string): string | undefined {
  return t.match(path)?.id;
}

/**
 * A config built by hand: parseConfig would need --allow-env (the yaml package
 * reads an environment variable), and this test runs with --allow-read only.
 */
function config(
  services: Config["services"],
  routes: Config["routes"],
): Config {
  return {
    file: "/tmp/vanguard-test/config.yaml",
    server: {
      port: 8000,
      host: "0.0.0.0",
      adminPort: 9000,
      adminHost: "127.0.0.1",
      trustedProxies: [],
      maxBodyBytes: 10_485_760,
      upstreamTimeoutMs: 30_000,
      shutdownGraceSeconds: 10,
      requestHeadTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      maxConnections: 10_000,
      retryBufferBytes: 65_536,
      memoryLimiterMaxBytes: 64 * 1024 * 1024,
      workers: 1,
      accessLog: true,
      accessLogSample: 1,
    },
    log: { format: "auto" },
    auth: {},
    discovery: {},
    services,
    middleware: [],
    routes,
  };
}

Deno.test("match() prefers the longest prefix", () => {
  const t = table([
    route("api", "/api"),
    route("api-v1", "/api/v1"),
    route("api-v1-users", "/api/v1/users"),
  ]);
  assert.equal(matchedId(t, "/api/v1/users/7"), "api-v1-users");
  assert.equal(matchedId(t, "/api/v1/users"), "api-v1-users");
  assert.equal(matchedId(t, "/api/v1/orders"), "api-v1");
  assert.equal(matchedId(t, "/api/v1"), "api-v1");
  assert.equal(matchedId(t, "/api/v2/users"), "api");
  assert.equal(matchedId(t, "/api"), "api");
});

Deno.test("match() does not depend on the order routes were given in", () => {
  const routes = [route("short", "/a"), route("long", "/a/b/c"), route("mid", "/a/b")];
  for (const order of [routes, [...routes].reverse()]) {
    const t = table(order);
    assert.equal(matchedId(t, "/a/b/c/d"), "long");
    assert.equal(matchedId(t, "/a/b/x"), "mid");
    assert.equal(matchedId(t, "/a/x"), "short");
  }
});

Deno.test("match() matches a prefix on a segment boundary only", () => {
  const t = table([route("users", "/users")]);
  assert.equal(matchedId(t, "/users"), "users");
  assert.equal(matchedId(t, "/users/"), "users");
  assert.equal(matchedId(t, "/users/1"), "users");
  assert.equal(matchedId(t, "/users/1/orders/"), "users");
  assert.equal(matchedId(t, "/usersX"), undefined);
  assert.equal(matchedId(t, "/users-admin/1"), undefined);
  assert.equal(matchedId(t, "/user"), undefined);
  assert.equal(matchedId(t, "/api/users"), undefined);
});

Deno.test("match() sends everything else to a root route", () => {
  const t = table([route("root", "/"), route("users", "/users")]);
  assert.equal(matchedId(t, "/"), "root");
  assert.equal(matchedId(t, "/usersX"), "root");
  assert.equal(matchedId(t, "/orders/1"), "root");
  assert.equal(matchedId(t, "/users/1"), "users");
});

Deno.test("match() returns undefined when nothing matches and there is no root route", () => {
  const t = table([route("users", "/users")]);
  assert.equal(t.match("/"), undefined);
  assert.equal(t.match("/orders"), undefined);
  assert.equal(table([]).match("/anything"), undefined);
});

Deno.test("match() finds the right route among 10,000", () => {
  const routes: RouteEntry[] = [];
  for (let i = 0; i < 10_000; i++) {
    routes.push(route(`r${i}`, `/tenant${i}/api`));
    if (i % 100 === 0) routes.push(route(`r${i}-deep`, `/tenant${i}/api/v2/items`));
  }
  const t = table(routes);
  assert.equal(t.routes.length, 10_100);
  assert.equal(matchedId(t, "/tenant0/api/x"), "r0");
  assert.equal(matchedId(t, "/tenant4242/api/orders/1"), "r4242");
  assert.equal(matchedId(t, "/tenant9999/api"), "r9999");
  assert.equal(matchedId(t, "/tenant500/api/v2/items/3"), "r500-deep");
  assert.equal(matchedId(t, "/tenant501/api/v2/items/3"), "r501");
  assert.equal(matchedId(t, "/tenant10000/api"), undefined);
  assert.equal(matchedId(t, "/tenant1/apiX"), undefined);
  for (let i = 0; i < 10_000; i += 37) {
    assert.equal(matchedId(t, `/tenant${i}/api/resource/${i}`), `r${i}`);
  }
});

Deno.test("match() matches a case_insensitive prefix in any ASCII letter case, on segment boundaries", () => {
  const t = table([route("open", "/"), foldingRoute("admin", "/admin")]);
  for (const path of ["/admin", "/ADMIN", "/Admin/users", "/aDmIn/x/y", "/ADMIN/"]) {
    assert.equal(matchedId(t, path), "admin", path);
  }
  assert.equal(matchedId(t, "/ADMINX"), "open");
  assert.equal(matchedId(t, "/adminx"), "open");
  assert.equal(matchedId(t, "/x/admin"), "open");
});

Deno.test("match() keeps routes without case_insensitive case-sensitive beside ones with it", () => {
  const t = table([route("open", "/"), route("users", "/users"), foldingRoute("admin", "/admin")]);
  assert.equal(matchedId(t, "/users/1"), "users");
  assert.equal(matchedId(t, "/USERS/1"), "open");
  assert.equal(matchedId(t, "/Users"), "open");
});

Deno.test("match() prefers the longest prefix across case-sensitive and case-insensitive routes", () => {
  const t = table([
    foldingRoute("admin", "/admin"),
    route("admin-public", "/admin/public"),
    route("api", "/api"),
    foldingRoute("api-v1-users", "/api/v1/users"),
  ]);
  assert.equal(matchedId(t, "/admin/public/x"), "admin-public");
  // The case-sensitive /admin/public does not match this spelling: the shorter
  // case-insensitive /admin does.
  assert.equal(matchedId(t, "/ADMIN/public/x"), "admin");
  assert.equal(matchedId(t, "/admin/PUBLIC"), "admin");
  assert.equal(matchedId(t, "/api/V1/USERS/7"), "api-v1-users");
  assert.equal(matchedId(t, "/api/v1/users"), "api-v1-users");
  assert.equal(matchedId(t, "/api/v1/orders"), "api");
  // The whole of a case-insensitive prefix folds, even the part another route shares.
  assert.equal(matchedId(t, "/API/v1/users"), "api-v1-users");
  assert.equal(matchedId(t, "/API/v1/orders"), undefined); // /api is case-sensitive
});

Deno.test("match() folds a case_insensitive prefix written in capitals too", () => {
  const t = table([foldingRoute("admin", "/Admin/Tools"), foldingRoute("digits", "/2024")]);
  assert.equal(matchedId(t, "/admin/tools/x"), "admin");
  assert.equal(matchedId(t, "/ADMIN/TOOLS"), "admin");
  assert.equal(matchedId(t, "/2024/x"), "digits");
});

Deno.test("match() at equal length prefers the exact spelling, and a config route over a Kubernetes one", () => {
  const t = table([foldingRoute("folded", "/admin"), route("exact", "/Admin")]);
  assert.equal(matchedId(t, "/Admin/x"), "exact");
  assert.equal(matchedId(t, "/admin/x"), "folded");
  assert.equal(matchedId(t, "/ADMIN/x"), "folded");
  const annotated = { ...route("k8s", "/ADMIN"), source: "kubernetes" as const };
  const mixed = table([foldingRoute("config", "/admin"), annotated]);
  assert.equal(matchedId(mixed, "/ADMIN"), "config");
});

Deno.test("match() folds the non-ASCII letters whose case maps to ASCII, and no other", () => {
  const t = table([
    route("open", "/"),
    foldingRoute("admin", "/admin"),
    foldingRoute("keys", "/keys"),
    foldingRoute("cafe", "/café"),
  ]);
  // Dotless i, dotted capital I, long s and the Kelvin sign: Java's
  // equalsIgnoreCase takes each for its ASCII letter.
  assert.equal(matchedId(t, "/adm\u0131n"), "admin");
  assert.equal(matchedId(t, "/ADM\u0130N"), "admin");
  assert.equal(matchedId(t, "/key\u017f"), "keys");
  assert.equal(matchedId(t, "/\u212aeys"), "keys");
  assert.equal(matchedId(t, "/CAFé"), "cafe");
  assert.equal(matchedId(t, "/CAFÉ"), "open"); // only ASCII letters fold
});

Deno.test("tableFromConfig() carries case_insensitive into the table", () => {
  const base = {
    serviceName: "app",
    authRequired: false,
    forwardCredentials: false,
    middleware: [],
    preserveHost: false,
    stripPrefix: false,
  };
  const t = tableFromConfig(config({}, [
    { ...base, id: "folded", pathPrefix: "/admin", caseInsensitive: true },
    { ...base, id: "exact", pathPrefix: "/users", caseInsensitive: false },
  ]));
  assert.equal(t.match("/ADMIN/x")?.id, "folded");
  assert.equal(t.match("/ADMIN/x")?.caseInsensitive, true);
  assert.equal(t.match("/USERS/x"), undefined);
});

Deno.test("RoutingTable lists routes sorted by prefix and frozen", () => {
  const t = table([route("b", "/b"), route("root", "/"), route("a", "/a")]);
  assert.deepEqual(t.routes.map((r) => r.pathPrefix), ["/", "/a", "/b"]);
  assert.ok(Object.isFrozen(t.routes));
});

Deno.test("countSegments() counts the segments of a prefix", () => {
  assert.equal(countSegments("/"), 0);
  assert.equal(countSegments("/a"), 1);
  assert.equal(countSegments("/a/b/c"), 3);
});

Deno.test("serviceEntry() keeps the ready subset of endpoints", () => {
  const entry = serviceEntry("svc", "kubernetes", [
    { url: "http://10.0.0.1:80", ready: true },
    { url: "http://10.0.0.2:80", ready: false },
    { url: "http://10.0.0.3:80", ready: true },
  ]);
  assert.equal(entry.name, "svc");
  assert.equal(entry.source, "kubernetes");
  assert.equal(entry.endpoints.length, 3);
  assert.deepEqual(entry.ready.map((e) => e.url), ["http://10.0.0.1:80", "http://10.0.0.3:80"]);
});

Deno.test("tableFromConfig() builds routes and static services with ready endpoints", () => {
  const t = tableFromConfig(
    config(
      {
        users: {
          urls: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"],
          ...DEFAULT_UPSTREAM_SETTINGS,
        },
        orders: { urls: ["http://127.0.0.1:9003"], ...DEFAULT_UPSTREAM_SETTINGS },
        // Settings only: Kubernetes provides this service, the table does not list it.
        tuned: { ...DEFAULT_UPSTREAM_SETTINGS, retries: 2 },
      },
      [
        {
          id: "users-route",
          pathPrefix: "/users",
          serviceName: "users",
          authRequired: true,
          forwardCredentials: false,
          middleware: [],
          preserveHost: false,
          stripPrefix: false,
          caseInsensitive: false,
        },
        {
          id: "orders-route",
          pathPrefix: "/api/orders",
          serviceName: "orders",
          authRequired: false,
          forwardCredentials: false,
          middleware: [],
          preserveHost: false,
          stripPrefix: true,
          caseInsensitive: false,
          rateLimit: { requestsPerPeriod: 5, periodSeconds: 60, clientIdentifier: "IP" },
        },
      ],
    ),
    7,
  );
  assert.equal(t.version, 7);

  const users = t.match("/users/1");
  assert.ok(users !== undefined);
  assert.equal(users.id, "users-route");
  assert.equal(users.serviceName, "users");
  assert.equal(users.authRequired, true);
  assert.equal(users.stripPrefix, false);
  assert.equal(users.prefixSegments, 1);
  assert.equal(users.source, "config");

  const orders = t.match("/api/orders");
  assert.ok(orders !== undefined);
  assert.equal(orders.id, "orders-route");
  assert.equal(orders.stripPrefix, true);
  assert.equal(orders.prefixSegments, 2);
  assert.equal(orders.authRequired, false);
  assert.deepEqual(orders.rateLimit, {
    requestsPerPeriod: 5,
    periodSeconds: 60,
    clientIdentifier: "IP",
  });
  assert.equal(t.match("/api"), undefined);

  const usersService = t.service("users");
  assert.ok(usersService !== undefined);
  assert.equal(usersService.source, "config");
  assert.deepEqual(usersService.endpoints, [
    { url: "http://127.0.0.1:9001", ready: true },
    { url: "http://127.0.0.1:9002", ready: true },
  ]);
  assert.deepEqual(usersService.ready, usersService.endpoints);
  assert.deepEqual(t.service("orders")?.ready.map((e) => e.url), ["http://127.0.0.1:9003"]);
  assert.equal(t.service("missing"), undefined);
  assert.equal(t.service("tuned"), undefined);
});

Deno.test("RoutingState.swap() replaces the whole snapshot and tells listeners", () => {
  const first = table([route("old", "/old")], 1);
  const second = table([route("new", "/new")], 2);
  const state = new RoutingState(first);
  assert.equal(state.current, first);

  const seen: RoutingTable[] = [];
  const versions: number[] = [];
  state.onSwap((t) => seen.push(t));
  state.onSwap((t) => versions.push(t.version));

  state.swap(second);
  assert.equal(state.current, second);
  assert.equal(matchedId(state.current, "/new/1"), "new");
  assert.equal(state.current.match("/old/1"), undefined);
  assert.deepEqual(seen, [second]);
  assert.deepEqual(versions, [2]);
});

Deno.test("a request-pinned table is unaffected by a swap", () => {
  const state = new RoutingState(table([route("users-v1", "/users", "users-v1")], 1));
  const pinned = state.current;
  state.swap(table([route("users-v2", "/users", "users-v2"), route("admin", "/admin")], 2));

  assert.equal(pinned.version, 1);
  assert.equal(matchedId(pinned, "/users/1"), "users-v1");
  assert.equal(pinned.match("/admin"), undefined);
  assert.equal(matchedId(state.current, "/users/1"), "users-v2");
  assert.equal(matchedId(state.current, "/admin"), "admin");
});

Deno.test("a table's data survives structuredClone, and the table rebuilt from it matches the same", () => {
  const original = new RoutingTable(
    [
      route("users", "/users", "users"),
      { ...route("admin", "/admin", "admin"), caseInsensitive: true, authRequired: true },
      route("root", "/", "web"),
    ],
    new Map([
      ["users", serviceEntry("users", "kubernetes", [{ url: "http://127.0.0.2:80", ready: true }])],
      [
        "users.default",
        serviceEntry("users", "kubernetes", [{ url: "http://127.0.0.2:80", ready: true }]),
      ],
    ]),
    7,
  );
  const copy = RoutingTable.fromData(structuredClone(original.toData()));
  assert.equal(copy.version, 7);
  for (const path of ["/users/1", "/ADMIN/x", "/other", "/usersX"]) {
    assert.equal(copy.match(path)?.id, original.match(path)?.id, path);
  }
  assert.deepEqual(copy.service("users.default")?.ready, [{
    url: "http://127.0.0.2:80",
    ready: true,
  }]);
  assert.deepEqual(copy.toData(), original.toData());
});
