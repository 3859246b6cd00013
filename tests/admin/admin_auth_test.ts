/**
 * The admin token (`server.admin_token_env`) on a running gateway: the probes stay open, every
 * other path asks for `Authorization: Bearer` or the dashboard's session cookie; and without a
 * token the admin listener answers as it always did.
 */
import assert from "node:assert/strict";
import { AdminAuth, SESSION_COOKIE, SESSION_SECONDS } from "../../lib/admin/admin_auth.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { type Gateway, startGateway } from "../../lib/server/gateway.ts";
import { rawRequest, startTestGateway, startUpstream, type TestServer } from "../helpers.ts";
import { isLoopbackName } from "../../lib/admin/local_only.ts";

const TOKEN = "s3cret-admin-token-0123456789abcdef";
const ENV = "VANGUARD_TEST_ADMIN_TOKEN";

interface Guarded {
  readonly gateway: Gateway;
  readonly adminUrl: string;
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** A gateway whose admin listener asks for TOKEN (from an injected environment). */
async function guarded(upstream: TestServer): Promise<Guarded> {
  const env = (name: string) => name === ENV ? TOKEN : undefined;
  const parsed = parseConfig(
    `server: { admin_token_env: ${ENV} }
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]`,
    { displayPath: "test.yaml", absolutePath: "/tmp/test.yaml", env },
  );
  assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.problems));
  const logger = memoryLogger();
  const gateway = await startGateway({
    config: parsed.config,
    logger,
    env,
    listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
  });
  return {
    gateway,
    adminUrl: `http://127.0.0.1:${gateway.adminAddr.port}`,
    logs: logger.records,
    close: () => gateway.shutdown(),
  };
}

async function request(url: string, init: RequestInit = {}) {
  const response = await fetch(url, { redirect: "manual", ...init });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

Deno.test("admin token: the probes answer without it; /metrics, /routes and the dashboard data ask for it", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const gw = await guarded(upstream);
  try {
    assert.equal((await request(`${gw.adminUrl}/healthz`)).status, 200);
    assert.equal((await request(`${gw.adminUrl}/readyz`)).status, 200);
    for (const path of ["/metrics", "/routes", "/dashboard/data", "/dashboard/app.js", "/nope"]) {
      const missing = await request(`${gw.adminUrl}${path}`);
      assert.equal(missing.status, 401, path);
      assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="vanguard-admin"');
      assert.equal(missing.headers.get("content-type"), "application/json");
      const body = JSON.parse(missing.text);
      assert.equal(body.error, "unauthorized");
      assert.match(body.message, /Authorization: Bearer <token>.*server\.admin_token_env/);

      const wrong = await request(`${gw.adminUrl}${path}`, {
        headers: { authorization: `Bearer ${TOKEN}x` },
      });
      assert.equal(wrong.status, 401, path);
      assert.equal(
        wrong.headers.get("www-authenticate"),
        'Bearer realm="vanguard-admin", error="invalid_token"',
      );
    }
    const metrics = await request(`${gw.adminUrl}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /vanguard_requests_total/);
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    const routes = await request(`${gw.adminUrl}/routes`, {
      headers: { authorization: `bearer ${TOKEN}` },
    });
    assert.equal(routes.status, 200);
    assert.equal(JSON.parse(routes.text).routes[0].id, "app");
    // Basic, or the token in the query string, is not a credential.
    const basic = await request(`${gw.adminUrl}/routes`, {
      headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` },
    });
    assert.equal(basic.status, 401);
    assert.equal((await request(`${gw.adminUrl}/routes?token=${TOKEN}`)).status, 401);
    assert.ok(!JSON.stringify(gw.logs).includes(TOKEN), "the token is never logged");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("admin token: the dashboard shows a sign-in form; the right token sets an HttpOnly SameSite=Strict session", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const gw = await guarded(upstream);
  try {
    const page = await request(`${gw.adminUrl}/dashboard`);
    assert.equal(page.status, 401);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    assert.match(page.text, /<form id="login" method="post" action="\/dashboard\/login">/);
    assert.ok(page.headers.get("content-security-policy"), "the sign-in page has the CSP too");
    // The sign-in page's stylesheet needs no token; the script and the data do.
    assert.equal((await request(`${gw.adminUrl}/dashboard/app.css`)).status, 200);

    const form = (token: string) => ({
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }).toString(),
    });
    const wrong = await request(`${gw.adminUrl}/dashboard/login`, form("guess-guess-guess-guess"));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    assert.match(wrong.text, /not the admin token/);

    const right = await request(`${gw.adminUrl}/dashboard/login`, form(TOKEN));
    assert.equal(right.status, 303);
    assert.equal(right.headers.get("location"), "/dashboard");
    const cookie = right.headers.get("set-cookie")!;
    assert.match(cookie, new RegExp(`^${SESSION_COOKIE}=\\d+\\.[A-Za-z0-9_-]{43}; `));
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Strict/);
    assert.match(cookie, new RegExp(`; Max-Age=${SESSION_SECONDS}`));
    assert.ok(!cookie.includes(TOKEN), "the cookie is not the token");
    const session = cookie.split(";")[0];

    const dashboard = await request(`${gw.adminUrl}/dashboard`, { headers: { cookie: session } });
    assert.equal(dashboard.status, 200);
    assert.match(dashboard.text, /<script src="\/dashboard\/app.js" defer><\/script>/);
    const data = await request(`${gw.adminUrl}/dashboard/data`, { headers: { cookie: session } });
    assert.equal(data.status, 200);
    assert.equal(JSON.parse(data.text).gateway.admin_auth, "token");
    // The session opens /metrics too (the same reader).
    assert.equal(
      (await request(`${gw.adminUrl}/metrics`, { headers: { cookie: session } })).status,
      200,
    );

    // A forged or altered session is refused.
    const [name, value] = session.split("=");
    const [expires, mac] = value.split(".");
    const later = `${name}=${Number(expires) + 3600}.${mac}`;
    assert.equal(
      (await request(`${gw.adminUrl}/dashboard/data`, { headers: { cookie: later } })).status,
      401,
    );
    const flipped = `${name}=${expires}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`;
    assert.equal(
      (await request(`${gw.adminUrl}/dashboard/data`, { headers: { cookie: flipped } })).status,
      401,
    );

    const out = await request(`${gw.adminUrl}/dashboard/logout`, { method: "POST" });
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie")!, new RegExp(`^${SESSION_COOKIE}=; Max-Age=0`));
    // Writing is not possible anywhere else.
    assert.equal((await request(`${gw.adminUrl}/routes`, { method: "POST" })).status, 405);
    assert.ok(!JSON.stringify(gw.logs).includes(TOKEN), "the token is never logged");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("admin token: the session cookie is scoped to /dashboard and never reaches an upstream through the proxy", async () => {
  const seen: (string | null)[] = [];
  const upstream = startUpstream((req) => {
    seen.push(req.headers.get("cookie"));
    return new Response("x");
  });
  const gw = await guarded(upstream);
  try {
    // Signing in starts at /dashboard, where the cookie is sent.
    const root = await request(`${gw.adminUrl}/`);
    assert.equal(root.status, 303);
    assert.equal(root.headers.get("location"), "/dashboard");
    const right = await request(`${gw.adminUrl}/dashboard/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: TOKEN }).toString(),
    });
    const setCookie = right.headers.get("set-cookie")!;
    assert.match(setCookie, /; Path=\/dashboard;/);
    const session = setCookie.split(";")[0];

    // Browsers scope cookies by host, not port: the proxy port on the same host gets it too.
    const proxy = `http://127.0.0.1:${gw.gateway.proxyAddr.port}/app`;
    for (
      const [sent, forwarded] of [
        [`theme=dark; ${session}; lang=en`, "theme=dark; lang=en"],
        [session, null],
        [`${session};theme=dark`, "theme=dark"],
        ["theme=dark", "theme=dark"],
      ] as const
    ) {
      const response = await fetch(proxy, { headers: { cookie: sent } });
      await response.body?.cancel();
      assert.equal(response.status, 200);
      assert.equal(seen.at(-1), forwarded, sent);
    }
    assert.ok(!seen.some((c) => c?.includes(SESSION_COOKIE)), "no upstream saw the session");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("AdminAuth: a session ends after SESSION_SECONDS; one from the future is not trusted", () => {
  let now = 1_000_000_000_000;
  const auth = new AdminAuth(TOKEN, { now: () => now });
  const session = auth.sessionCookie().split(";")[0];
  const withCookie = (cookie: string) =>
    new Request("http://admin/dashboard/data", { headers: { cookie: `other=1; ${cookie}` } });
  assert.equal(auth.credential(withCookie(session)), "valid");
  now += (SESSION_SECONDS - 1) * 1000;
  assert.equal(auth.credential(withCookie(session)), "valid");
  now += 2000;
  assert.equal(auth.credential(withCookie(session)), "invalid");
  // Another token's session is not this one's.
  const other = new AdminAuth("another-token-0123456789abcdef", { now: () => now });
  assert.equal(auth.credential(withCookie(other.sessionCookie().split(";")[0])), "invalid");
  assert.equal(auth.credential(new Request("http://admin/")), "missing");
});

Deno.test("without admin_token_env the admin listener asks for nothing, and the dashboard is at / and /dashboard", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const gw = await startTestGateway(`
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]`);
  try {
    assert.equal(gw.config.server.adminHost, "127.0.0.1", "loopback by default");
    assert.equal((await request(`${gw.adminUrl}/metrics`)).status, 200);
    assert.equal((await request(`${gw.adminUrl}/routes`)).status, 200);
    for (const path of ["/", "/dashboard"]) {
      const page = await request(`${gw.adminUrl}${path}`);
      assert.equal(page.status, 200, path);
      assert.match(page.text, /<title>Vanguard dashboard<\/title>/);
    }
    const data = JSON.parse((await request(`${gw.adminUrl}/dashboard/data`)).text);
    assert.equal(data.gateway.admin_auth, "none");
    // No sign-in to do: the form's URL leads to the dashboard.
    const login = await request(`${gw.adminUrl}/dashboard/login`);
    assert.equal(login.status, 303);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("without a token, a loopback admin listener answers only requests addressed to a loopback name (DNS rebinding)", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const gw = await startTestGateway(`
services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]`);
  const port = new URL(gw.adminUrl).port;
  try {
    // What a page on attacker.example reads once its name resolves to 127.0.0.1.
    for (const path of ["/routes", "/metrics", "/dashboard/data", "/", "/healthz"]) {
      for (const host of [`attacker.example:${port}`, "attacker.example", "127.0.0.1.nip.io"]) {
        const response = await rawRequest(`${gw.adminUrl}${path}`, { headers: { host } });
        assert.equal(response.status, 421, `${host}${path}`);
        const body = JSON.parse(new TextDecoder().decode(response.body));
        assert.equal(body.error, "misdirected_request");
        assert.match(body.message, /server\.admin_token_env/);
      }
    }
    for (
      const host of [
        `localhost:${port}`,
        `127.0.0.1:${port}`,
        "127.0.0.2",
        `[::1]:${port}`,
        "app.localhost",
      ]
    ) {
      const response = await rawRequest(`${gw.adminUrl}/routes`, { headers: { host } });
      assert.equal(response.status, 200, host);
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("with a token, or bound beyond loopback, the admin listener does not look at Host", async () => {
  const upstream = startUpstream(() => new Response("x"));
  const guardedGateway = await guarded(upstream);
  try {
    const response = await rawRequest(`${guardedGateway.adminUrl}/routes`, {
      headers: { host: "vanguard-admin.example", authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(response.status, 200);
  } finally {
    await guardedGateway.close();
  }
  // Bound to every interface without a token: open already (the config warns), Host or not.
  const parsed = parseConfig(
    `services: { app: { urls: [${upstream.url}] } }
routes: [{ id: app, path_prefix: /, service_name: app }]`,
    { displayPath: "test.yaml", absolutePath: "/tmp/test.yaml" },
  );
  assert.ok(parsed.ok);
  const open = await startGateway({
    config: parsed.config,
    logger: memoryLogger(),
    listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "0.0.0.0" },
  });
  try {
    const response = await rawRequest(`http://127.0.0.1:${open.adminAddr.port}/routes`, {
      headers: { host: "vanguard-admin.example" },
    });
    assert.equal(response.status, 200);
  } finally {
    await open.shutdown();
    await upstream.close();
  }
});

Deno.test("isLoopbackName(): localhost, *.localhost and loopback literals, nothing else", () => {
  for (
    const name of [
      "localhost",
      "LOCALHOST",
      "localhost.",
      "a.localhost",
      "127.0.0.1",
      "127.9.8.7",
      "[::1]",
      "::1",
      "[::ffff:7f00:1]",
    ]
  ) {
    assert.ok(isLoopbackName(name), name);
  }
  for (
    const name of [
      "attacker.example",
      "localhost.example",
      "notlocalhost",
      "128.0.0.1",
      "0.0.0.0",
      "10.0.0.1",
      "[::2]",
      "127.0.0.1.nip.io",
    ]
  ) {
    assert.ok(!isLoopbackName(name), name);
  }
});
