/**
 * The dashboard in a real browser: headless Chromium loads it from a running gateway (real
 * upstreams with active health checks, real traffic) and the DOM must show the routes, the
 * traffic, and an endpoint turning unhealthy within one refresh; the page must load under its
 * Content-Security-Policy without a console error. A screenshot goes to
 * tests/.tmp/dashboard.png (docs/images/dashboard.png is a copy of one).
 *
 * Skipped, with the reason printed, where Chromium is not installed.
 *
 *   deno test --allow-net=127.0.0.1 --allow-read=. --allow-write=tests/.tmp \
 *     --allow-run=chromium,chromium-browser --allow-env tests/admin/dashboard_browser_test.ts
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ADMIN_CSP } from "../../lib/admin/admin.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { startGateway } from "../../lib/server/gateway.ts";
import {
  eventually,
  metricValue,
  startTestGateway,
  startUpstream,
  type TestServer,
} from "../helpers.ts";
import { Chromium, findChromium, type Page } from "./chromium.ts";

const chromium = findChromium();
if ("missing" in chromium) console.log(`dashboard browser tests skipped: ${chromium.missing}`);

/** The browser to run; where the test flags do not allow running it, the test fails saying so. */
function browserBinary(): string {
  if ("found" in chromium) return chromium.found;
  throw new Error("denied" in chromium ? chromium.denied : chromium.missing);
}

const SCREENSHOT = "tests/.tmp/dashboard.png";
const API_KEY = "dashboard-demo-key-0123456789";
/** The page's refresh interval (REFRESH_SECONDS), and what one refresh may take on top. */
const REFRESH_MS = 2000;
const REFRESH_SLACK_MS = 1000;

interface Backend extends TestServer {
  healthy: boolean;
}

/** An upstream whose /healthz answers 200 while `healthy`, 503 otherwise. */
function backend(name: string): Backend {
  const state = { healthy: true };
  const server = startUpstream((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") {
      return new Response(state.healthy ? "ok" : "down", { status: state.healthy ? 200 : 503 });
    }
    return new Response(`${name} ${path}`);
  });
  return Object.assign(state, server);
}

function demoConfig(users: Backend[], orders: Backend[]): string {
  const sha = createHash("sha256").update(API_KEY).digest("hex");
  const check = "health_check: { path: /healthz, interval_ms: 100, timeout_ms: 500 }";
  return `
auth:
  api_key:
    keys: [{ id: demo-client, sha256: "${sha}" }]
services:
  users: { urls: [${users.map((b) => b.url).join(", ")}], ${check} }
  orders: { urls: [${orders.map((b) => b.url).join(", ")}], ${check} }
routes:
  - id: users
    path_prefix: /users
    service_name: users
    rate_limit: { requests_per_period: 10000, period_seconds: 60, client_identifier: IP }
  - id: orders
    path_prefix: /orders
    service_name: orders
    auth_required: true
    rate_limit: { requests_per_period: 5, period_seconds: 1, client_identifier: API-Key }
  - id: checkout
    path_prefix: /checkout
    methods: [POST]
    backends:
      - { service_name: users, weight: 90 }
      - { service_name: orders, weight: 10 }
`;
}

/** Requests through the gateway every 40 ms until stopped: users, orders (some 429), a 404. */
function traffic(url: string): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      const sent = [
        fetch(`${url}/users/42`),
        fetch(`${url}/orders/7`, { headers: { "API-Key": API_KEY } }),
        fetch(`${url}/nowhere`),
      ];
      for (const response of await Promise.all(sent)) await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

interface Shown {
  routes: Record<string, Record<string, string>>;
  endpoints: Record<string, string>;
  services: Record<string, Record<string, string>>;
  refreshedAt?: string;
  cards: Record<string, string>;
}

/** What the page shows now, read from its DOM. */
function shown(page: Page): Promise<Shown> {
  return page.evaluate<Shown>(`(() => {
    const cells = (tr) => Object.fromEntries([...tr.cells].map((td) => [td.dataset.col, td.textContent]));
    const routes = Object.fromEntries([...document.querySelectorAll("#routes tbody tr")].map((tr) => [tr.dataset.route, cells(tr)]));
    const services = Object.fromEntries([...document.querySelectorAll("#services tbody tr")].map((tr) => [tr.dataset.service, cells(tr)]));
    const endpoints = Object.fromEntries([...document.querySelectorAll("li[data-endpoint]")].map((li) => [li.dataset.endpoint, li.dataset.state]));
    const cards = Object.fromEntries([...document.querySelectorAll(".card [id]")].map((n) => [n.id, n.textContent.trim()]));
    return { routes, services, endpoints, cards, refreshedAt: document.body.dataset.refreshedAt };
  })()`);
}

Deno.test({
  name:
    "the dashboard in Chromium shows the routes, live traffic and an endpoint turning unhealthy within a refresh",
  ignore: "missing" in chromium,
  sanitizeResources: true,
  async fn(t) {
    const users = [backend("users-a"), backend("users-b")];
    const orders = [backend("orders-a")];
    const gw = await startTestGateway(demoConfig(users, orders));
    const load = traffic(gw.url);
    const browser = await Chromium.launch(browserBinary(), "tests/.tmp/chromium-dashboard");
    try {
      const page = await browser.newPage(1360, 900);
      await page.navigate(`${gw.adminUrl}/dashboard`);

      await t.step(
        "the page lists every route with its match, backends, auth and limit",
        async () => {
          await eventually(
            5000,
            "the routes in the DOM",
            async () => Object.keys((await shown(page)).routes).length === 3,
          );
          const { routes, services } = await shown(page);
          assert.deepEqual(Object.keys(routes).sort(), ["checkout", "orders", "users"]);
          assert.equal(routes.users.match, "prefix /users");
          assert.equal(routes.users.backends, "users");
          assert.equal(routes.users.auth, "–");
          assert.equal(routes.users.limit, "10000 / 60 s by IP");
          assert.equal(routes.orders.auth, "required");
          assert.equal(routes.orders.limit, "5 / 1 s by API-Key");
          assert.equal(routes.checkout.match, "prefix /checkout POST");
          assert.equal(routes.checkout.backends, "users ×90, orders ×10");
          assert.equal(routes.checkout.source, "config");
          assert.deepEqual(Object.keys(services).sort(), ["orders", "users"]);
          assert.equal(services.users.ready, "2 / 2");
        },
      );

      await t.step(
        "live request rate, p99 and rate-limit rejections show within two refreshes",
        async () => {
          await eventually(2 * REFRESH_MS + REFRESH_SLACK_MS, "rates in the DOM", async () => {
            const { routes } = await shown(page);
            return Number(routes.users?.rate) > 0 && routes.users.p99.endsWith("ms") &&
              Number(routes.orders?.rejected) > 0;
          });
          const { routes, cards } = await shown(page);
          assert.equal(routes.users.errors, "0%");
          assert.match(cards["traffic-rate"], /^[0-9.]+\/s$/);
          assert.notEqual(cards["traffic-unmatched"], "0/s", "the 404s are counted");
          assert.equal(cards["redis-state"], "not configured");
          assert.equal(cards["redis-target"], "in-memory limiter");
          assert.equal(cards["kubernetes-state"], "discovery off");
          assert.equal(cards["reload-result"], "none since start");
          assert.match(cards["config-digest"], /^[0-9a-f]{12}$/);
        },
      );

      await t.step(
        "an endpoint failing its health checks shows unhealthy within one refresh",
        async () => {
          const sick = users[0].url;
          assert.equal((await shown(page)).endpoints[sick], "ready");
          users[0].healthy = false;
          await eventually(3000, "the gateway to mark the endpoint down", async () => {
            const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
            return metricValue(text, 'vanguard_upstream_ejected_endpoints{service="users"}') === 1;
          });
          const markedAt = performance.now();
          await eventually(
            REFRESH_MS + REFRESH_SLACK_MS,
            "the DOM to show it unhealthy",
            async () => (await shown(page)).endpoints[sick] === "unhealthy",
          );
          assert.ok(performance.now() - markedAt <= REFRESH_MS + REFRESH_SLACK_MS);
          const { endpoints, services } = await shown(page);
          assert.equal(endpoints[users[1].url], "ready", "the other endpoint stays ready");
          assert.equal(services.users.out, "1");
        },
      );

      await t.step("a screenshot of the page is taken", async () => {
        const png = await page.screenshot(1360);
        assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "a PNG");
        assert.ok(png.length > 20_000, `a page, not a blank (${png.length} bytes)`);
        await Deno.writeFile(SCREENSHOT, png);
      });

      await t.step("the page loaded with no console error, exception or CSP violation", () => {
        assert.deepEqual(page.problems, []);
      });

      await t.step("the CSP is sent and the browser enforces it", async () => {
        const response = await fetch(`${gw.adminUrl}/dashboard`);
        await response.body?.cancel();
        assert.equal(response.headers.get("content-security-policy"), ADMIN_CSP);
        // An inline script is refused, which proves the policy is in force.
        const violated = await page.evaluate<string>(`new Promise((resolve) => {
          document.addEventListener("securitypolicyviolation", (e) => resolve(e.effectiveDirective), { once: true });
          const script = document.createElement("script");
          script.textContent = "window.inlineRan = true";
          document.body.append(script);
          setTimeout(() => resolve("no violation"), 2000);
        })`);
        assert.equal(violated, "script-src-elem");
        assert.equal(await page.evaluate("window.inlineRan === true"), false);
      });
    } finally {
      await browser.close();
      await load.stop();
      await gw.close();
      for (const b of [...users, ...orders]) await b.close();
    }
  },
});

Deno.test({
  name:
    "with an admin token the dashboard asks for it once in a sign-in form, then works in the browser",
  ignore: "missing" in chromium,
  async fn() {
    const token = "browser-admin-token-0123456789abcdef";
    const env = (name: string) =>
      name === "DASHBOARD_TEST_ADMIN_TOKEN" ? token : Deno.env.get(name);
    const upstream = backend("app");
    const parsed = parseConfig(
      `server: { admin_token_env: DASHBOARD_TEST_ADMIN_TOKEN }
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]`,
      { displayPath: "test.yaml", absolutePath: "/tmp/test.yaml", env },
    );
    assert.ok(parsed.ok);
    const logger = memoryLogger();
    const gateway = await startGateway({
      config: parsed.config,
      logger,
      env,
      listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
    });
    const adminUrl = `http://127.0.0.1:${gateway.adminAddr.port}`;
    const browser = await Chromium.launch(browserBinary(), "tests/.tmp/chromium-login");
    try {
      const page = await browser.newPage();
      await page.navigate(`${adminUrl}/dashboard`);
      assert.equal(await page.evaluate("document.querySelector('form#login') !== null"), true);
      assert.equal(await page.evaluate("document.querySelector('#routes') === null"), true);

      // A wrong token: the form again, saying so.
      await page.evaluate(`document.getElementById("token").value = "not-the-token";
        document.getElementById("login").requestSubmit();`);
      await eventually(5000, "the form to come back", async () =>
        await page.evaluate<boolean>(
          "document.readyState === 'complete' && document.querySelector('.login .banner') !== null",
        ));

      await page.evaluate(`document.getElementById("token").value = ${JSON.stringify(token)};
        document.getElementById("login").requestSubmit();`);
      await eventually(
        5000,
        "the dashboard with its route",
        async () =>
          await page.evaluate<boolean>("document.querySelector('tr[data-route=\"app\"]') !== null")
            .catch(() => false),
      );
      assert.equal(await page.evaluate("location.pathname"), "/dashboard");
      // The session cookie is HttpOnly: the page's script cannot read it.
      assert.equal(await page.evaluate("document.cookie"), "");
      assert.equal(await page.evaluate("document.getElementById('logout').hidden"), false);
      // The wrong token's 401 is the one problem the page may report.
      assert.deepEqual(
        page.problems.filter((p) => !/status of 401/.test(p.text)),
        [],
        "no other console error",
      );
      assert.ok(!JSON.stringify(logger.records).includes(token), "the token is never logged");
    } finally {
      await browser.close();
      await gateway.shutdown();
      await upstream.close();
    }
  },
});
