import assert from "node:assert/strict";
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from "jose";
import { sha256Hex } from "../../lib/auth/api_keys.ts";
import { DEFAULT_JWKS_POLICY } from "../../lib/auth/jwks.ts";
import {
  closedPort,
  rawRequest,
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestServer,
} from "../helpers.ts";

const ISSUER = "https://issuer.test";
const AUDIENCE = "vanguard";
const API_KEY = "vg_test-key-for-mobile-app-0123456789";

/** An upstream that answers with the headers it received. */
function headerEcho(): TestServer {
  return startUpstream((request) => Response.json(Object.fromEntries(request.headers)));
}

/** A JWKS endpoint whose key list the test can change, and stop. */
function jwksServer(keys: JWK[]): TestServer & { keys: JWK[]; fetches: number } {
  const state = { keys, fetches: 0 };
  const server = startUpstream(() => {
    state.fetches++;
    return Response.json({ keys: state.keys });
  });
  return Object.assign(server, state, {
    get fetches() {
      return state.fetches;
    },
  });
}

async function keyPair(alg: "RS256" | "ES256", kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { publicKey, privateKey, jwk, kid, alg };
}

type Pair = Awaited<ReturnType<typeof keyPair>>;

function mint(
  pair: { privateKey: Parameters<SignJWT["sign"]>[0]; kid?: string; alg: string },
  claims: Record<string, unknown> = {},
  options: { exp?: number | string | null; iss?: string; aud?: string; nbf?: number } = {},
): Promise<string> {
  const jwt = new SignJWT({ sub: "alice", ...claims })
    .setProtectedHeader({ alg: pair.alg, ...(pair.kid ? { kid: pair.kid } : {}) })
    .setIssuedAt()
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE);
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? "5m");
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(pair.privateKey);
}

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** An `auth.jwt` section for the test issuer and audience, plus `more` (keys of jwt, unindented). */
function jwtSection(more: string): string {
  const extra = more.split("\n").filter((line) => line !== "").map((line) => `    ${line}`);
  return ["  jwt:", `    issuer: ${ISSUER}`, `    audience: ${AUDIENCE}`, ...extra].join("\n");
}

function authConfig(upstream: TestServer, auth: string, routeExtra = ""): string {
  return `
auth:
${auth}
services:
  app: { urls: [${upstream.url}] }
routes:
  - id: private
    path_prefix: /private
    service_name: app
    auth_required: true
${routeExtra}
  - id: public
    path_prefix: /public
    service_name: app
`;
}

async function expectStatus(
  gw: TestGateway,
  headers: Record<string, string>,
  status: number,
  path = "/private/x",
): Promise<Record<string, unknown>> {
  const response = await fetch(gw.url + path, { headers });
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  if (status === 401) {
    assert.ok(response.headers.get("www-authenticate"), "401 without WWW-Authenticate");
  }
  if (status >= 400) {
    assert.deepEqual(Object.keys(body).sort(), ["error", "message", "request_id"]);
  }
  return body;
}

Deno.test("JWT via JWKS: RS256 and ES256 admit, every hostile token is refused", async (t) => {
  const rsa = await keyPair("RS256", "rsa-1");
  const ec = await keyPair("ES256", "ec-1");
  const stranger = await keyPair("RS256", "ghost");
  const jwks = jwksServer([rsa.jwk, ec.jwk]);
  const upstream = headerEcho();
  const gw = await startTestGateway(authConfig(
    upstream,
    jwtSection(`algorithms: [RS256, ES256]
jwks_url: ${jwks.url}/.well-known/jwks.json
clock_tolerance_seconds: 30`),
  ));
  const now = Math.floor(Date.now() / 1000);
  try {
    for (const pair of [rsa, ec]) {
      await t.step(
        `${pair.alg} token admits, consumer is sub, Authorization not forwarded`,
        async () => {
          const token = await mint(pair, { sub: `user-${pair.alg}` });
          const seen = await expectStatus(gw, { authorization: `Bearer ${token}` }, 200);
          assert.equal(seen["x-vanguard-consumer"], `user-${pair.alg}`);
          assert.equal(seen["authorization"], undefined);
        },
      );
    }
    await t.step("a client-sent X-Vanguard-Consumer is replaced", async () => {
      const token = await mint(rsa);
      const seen = await expectStatus(gw, {
        authorization: `Bearer ${token}`,
        "x-vanguard-consumer": "root",
      }, 200);
      assert.equal(seen["x-vanguard-consumer"], "alice");
    });
    const hmacWithPublicKey = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    const hostile: [string, () => Promise<string>][] = [
      ["expired", () => mint(rsa, {}, { exp: now - 3600 })],
      ["nbf in the future beyond tolerance", () => mint(rsa, {}, { nbf: now + 600 })],
      ["no exp", () => mint(rsa, {}, { exp: null })],
      ["wrong aud", () => mint(rsa, {}, { aud: "someone-else" })],
      ["wrong iss", () => mint(rsa, {}, { iss: "https://evil.test" })],
      ["no sub", () => mint(rsa, { sub: undefined })],
      [
        "alg none",
        () =>
          Promise.resolve(
            `${b64url({ alg: "none", typ: "JWT" })}.${
              b64url({ sub: "alice", exp: now + 600, iss: ISSUER, aud: AUDIENCE })
            }.`,
          ),
      ],
      [
        "HS256 signed with the RSA public key as secret",
        () => mint({ privateKey: hmacWithPublicKey, kid: "rsa-1", alg: "HS256" }),
      ],
      ["unknown kid", () => mint(stranger)],
      ["signature of another key under a known kid", () => mint({ ...stranger, kid: "rsa-1" })],
      ["tampered payload", async () => {
        const [h, , s] = (await mint(rsa)).split(".");
        return `${h}.${b64url({ sub: "admin", exp: now + 600, iss: ISSUER, aud: AUDIENCE })}.${s}`;
      }],
      ["two segments", () => Promise.resolve("abc.def")],
      ["four segments", async () => `${await mint(rsa)}.extra`],
      ["bad base64", () => Promise.resolve("!!!.###.$$$")],
      ["garbage JSON", () => Promise.resolve(`${btoa("{not json")}.${btoa("{}")}.sig`)],
    ];
    for (const [name, make] of hostile) {
      await t.step(`refused: ${name}`, async () => {
        const token = await make();
        const body = await expectStatus(gw, { authorization: `Bearer ${token}` }, 401);
        assert.equal(body.error, "unauthorized");
      });
    }
    await t.step("refused: no Authorization, or not Bearer", async () => {
      await expectStatus(gw, {}, 401);
      await expectStatus(gw, { authorization: "Basic YWxpY2U6cGFzcw==" }, 401);
      await expectStatus(gw, { authorization: `bearer ${await mint(rsa)}` }, 200);
    });
    await t.step("refused: Authorization sent twice", async () => {
      const token = await mint(rsa);
      const response = await rawTwice(gw.url, "authorization", `Bearer ${token}`);
      assert.ok(response === 400 || response === 401, `status ${response}`);
    });
    await t.step("refused: a 64 KB Authorization header", async () => {
      const response = await fetch(`${gw.url}/private/x`, {
        headers: { authorization: `Bearer ${"a".repeat(64 * 1024)}` },
      });
      await response.body?.cancel();
      assert.ok([400, 401, 431].includes(response.status), `status ${response.status}`);
      const near = await fetch(`${gw.url}/private/x`, {
        headers: { authorization: `Bearer ${"a".repeat(30_000)}.b.c` },
      });
      await near.body?.cancel();
      assert.equal(near.status, 401);
    });
    await t.step("routes without auth_required pass Authorization through untouched", async () => {
      const seen = await expectStatus(gw, { authorization: "Bearer whatever" }, 200, "/public/x");
      assert.equal(seen["authorization"], "Bearer whatever");
      assert.equal(seen["x-vanguard-consumer"], undefined);
    });
    await t.step("no token or secret reaches the log or the metrics", async () => {
      const token = await mint(rsa, { sub: "logged-user" });
      await expectStatus(gw, { authorization: `Bearer ${token}x` }, 401);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.doesNotMatch(JSON.stringify(gw.logs) + metrics, new RegExp(token.split(".")[2]));
      assert.match(metrics, /vanguard_auth_rejected_total\{route="private",reason="expired"\} 1/);
    });
  } finally {
    await gw.close();
    await upstream.close();
    await jwks.close();
  }
});

/** Sends a request with one header repeated; returns the status. */
async function rawTwice(base: string, name: string, value: string): Promise<number> {
  const { hostname, port } = new URL(base);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head =
      `GET /private/x HTTP/1.1\r\nHost: x\r\n${name}: ${value}\r\n${name}: ${value}\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    return Number(new TextDecoder().decode(buffer.subarray(0, n ?? 0)).slice(9, 12));
  } finally {
    conn.close();
  }
}

Deno.test("JWKS: a new kid is fetched at most once per cooldown, and keys survive a short outage", async (t) => {
  const first = await keyPair("RS256", "k1");
  const rotated = await keyPair("RS256", "k2");
  const jwks = jwksServer([first.jwk]);
  const upstream = headerEcho();
  let now = Date.now();
  const gw = await startTestGateway(
    authConfig(
      upstream,
      jwtSection(`jwks_url: ${jwks.url}`),
    ),
    { now: () => now },
  );
  const farExp = Math.floor(Date.now() / 1000) + 4 * 3600;
  try {
    await t.step("the first key admits", async () => {
      await expectStatus(
        gw,
        { authorization: `Bearer ${await mint(first, {}, { exp: farExp })}` },
        200,
      );
    });
    await t.step(
      "a rotated key unknown within the cooldown is refused without a refetch",
      async () => {
        jwks.keys.push(rotated.jwk);
        const before = jwks.fetches;
        await expectStatus(gw, {
          authorization: `Bearer ${await mint(rotated, {}, { exp: farExp })}`,
        }, 401);
        assert.equal(jwks.fetches, before);
      },
    );
    await t.step("after the cooldown the rotated key is fetched and admits", async () => {
      now += DEFAULT_JWKS_POLICY.cooldownMs + 1000;
      await expectStatus(gw, {
        authorization: `Bearer ${await mint(rotated, {}, { exp: farExp })}`,
      }, 200);
    });
    await t.step(
      "with the JWKS endpoint down, cached keys serve until they are an hour old",
      async () => {
        await jwks.close();
        now += DEFAULT_JWKS_POLICY.refreshMs + 1000;
        const token = `Bearer ${await mint(first, {}, { exp: farExp })}`;
        await expectStatus(gw, { authorization: token }, 200);
        now += DEFAULT_JWKS_POLICY.maxStaleMs;
        const body = await expectStatus(gw, { authorization: token }, 503);
        assert.equal(body.error, "auth_unavailable");
        assert.ok(gw.logs.some((record) => record.event === "jwks_unavailable"));
      },
    );
  } finally {
    await gw.close();
    await upstream.close();
    await jwks.close();
  }
});

Deno.test("JWKS endpoint down at start: tokens get 503, requests without one 401", async () => {
  const pair = await keyPair("RS256", "k1");
  const upstream = headerEcho();
  const gw = await startTestGateway(authConfig(
    upstream,
    jwtSection(`jwks_url: http://127.0.0.1:${closedPort()}/jwks`),
  ));
  try {
    await expectStatus(gw, { authorization: `Bearer ${await mint(pair)}` }, 503);
    await expectStatus(gw, {}, 401);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("JWT via secret_env (HS256) and via public_key_file (PEM)", async (t) => {
  const secret = "0123456789abcdef0123456789abcdef-test-secret";
  Deno.env.set("VANGUARD_TEST_JWT_SECRET", secret);
  const upstream = headerEcho();
  try {
    await t.step("HS256 with the configured secret admits; another secret does not", async () => {
      const gw = await startTestGateway(authConfig(
        upstream,
        jwtSection(`algorithms: [HS256]
secret_env: VANGUARD_TEST_JWT_SECRET`),
      ));
      try {
        const good = await mint({ privateKey: new TextEncoder().encode(secret), alg: "HS256" });
        await expectStatus(gw, { authorization: `Bearer ${good}` }, 200);
        const bad = await mint({
          privateKey: new TextEncoder().encode("another-secret-another-secret-another"),
          alg: "HS256",
        });
        await expectStatus(gw, { authorization: `Bearer ${bad}` }, 401);
        assert.doesNotMatch(JSON.stringify(gw.logs), new RegExp(secret));
      } finally {
        await gw.close();
      }
    });
    await t.step("RS256 with a PEM key file admits; a token of another key does not", async () => {
      const pair: Pair = await keyPair("RS256", "file");
      const other = await keyPair("RS256", "file");
      await Deno.mkdir("tests/.tmp", { recursive: true });
      const file = `${Deno.cwd()}/tests/.tmp/jwt_public.pem`;
      await Deno.writeTextFile(file, await exportSPKI(pair.publicKey));
      const gw = await startTestGateway(authConfig(
        upstream,
        jwtSection(`public_key_file: ${file}`),
      ));
      try {
        await expectStatus(gw, { authorization: `Bearer ${await mint(pair)}` }, 200);
        await expectStatus(gw, { authorization: `Bearer ${await mint(other)}` }, 401);
      } finally {
        await gw.close();
      }
    });
  } finally {
    Deno.env.delete("VANGUARD_TEST_JWT_SECRET");
    await upstream.close();
  }
});

Deno.test("API keys: the right key admits, everything else is refused", async (t) => {
  Deno.env.set("VANGUARD_TEST_API_KEY", "vg_from-the-environment-0123456789");
  const upstream = headerEcho();
  const gw = await startTestGateway(authConfig(
    upstream,
    `  api_key:
    header: API-Key
    keys:
      - id: mobile-app
        sha256: "${sha256Hex(API_KEY)}"
      - id: batch-job
        value_env: VANGUARD_TEST_API_KEY`,
  ));
  try {
    await t.step(
      "a key by sha256 admits with its id as consumer, and is not forwarded",
      async () => {
        const seen = await expectStatus(gw, { "API-Key": API_KEY }, 200);
        assert.equal(seen["x-vanguard-consumer"], "mobile-app");
        assert.equal(seen["api-key"], undefined);
      },
    );
    await t.step("a key from value_env admits", async () => {
      const seen = await expectStatus(gw, { "api-key": "vg_from-the-environment-0123456789" }, 200);
      assert.equal(seen["x-vanguard-consumer"], "batch-job");
    });
    await t.step("a lower-case header name works", async () => {
      const response = await rawRequest(`${gw.url}/private/x`, { headers: { "api-key": API_KEY } });
      assert.equal(response.status, 200);
    });
    await t.step("missing, wrong, empty and whitespace keys are refused", async () => {
      await expectStatus(gw, {}, 401);
      await expectStatus(gw, { "API-Key": API_KEY + "x" }, 401);
      await expectStatus(gw, { "API-Key": "" }, 401);
      await expectStatus(gw, { "API-Key": "   " }, 401);
      await expectStatus(gw, { "API-Key": sha256Hex(API_KEY) }, 401);
    });
    await t.step("a key in the query string is never accepted", async () => {
      await expectStatus(gw, {}, 401, `/private/x?api_key=${API_KEY}`);
      await expectStatus(gw, {}, 401, `/private/x?API-Key=${API_KEY}`);
    });
    await t.step("the header sent twice is refused", async () => {
      const status = await rawTwice(gw.url, "API-Key", API_KEY);
      assert.ok(status === 400 || status === 401, `status ${status}`);
    });
    await t.step("the key never reaches logs or metrics", async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.doesNotMatch(JSON.stringify(gw.logs) + metrics, /vg_test-key|from-the-environment/);
    });
  } finally {
    Deno.env.delete("VANGUARD_TEST_API_KEY");
    await gw.close();
    await upstream.close();
  }
});

Deno.test("both methods configured: either one admits", async () => {
  const pair = await keyPair("RS256", "k1");
  const jwks = jwksServer([pair.jwk]);
  const upstream = headerEcho();
  const gw = await startTestGateway(authConfig(
    upstream,
    `  api_key:
    keys:
      - { id: mobile-app, sha256: "${sha256Hex(API_KEY)}" }
${jwtSection(`jwks_url: ${jwks.url}`)}`,
  ));
  try {
    assert.equal(
      (await expectStatus(gw, { "API-Key": API_KEY }, 200))["x-vanguard-consumer"],
      "mobile-app",
    );
    const token = await mint(pair, { sub: "bob" });
    assert.equal(
      (await expectStatus(gw, { authorization: `Bearer ${token}` }, 200))["x-vanguard-consumer"],
      "bob",
    );
    assert.equal(
      (await expectStatus(gw, {
        "API-Key": "wrong-key-wrong-key",
        authorization: `Bearer ${token}`,
      }, 200))[
        "x-vanguard-consumer"
      ],
      "bob",
    );
    const refused = await fetch(`${gw.url}/private/x`);
    await refused.body?.cancel();
    assert.match(refused.headers.get("www-authenticate")!, /Bearer/);
    assert.match(refused.headers.get("www-authenticate")!, /ApiKey/);
  } finally {
    await gw.close();
    await upstream.close();
    await jwks.close();
  }
});

Deno.test("forward_credentials: true passes the credential upstream", async () => {
  const upstream = headerEcho();
  const gw = await startTestGateway(authConfig(
    upstream,
    `  api_key:
    keys:
      - { id: mobile-app, sha256: "${sha256Hex(API_KEY)}" }`,
    "    forward_credentials: true",
  ));
  try {
    const seen = await expectStatus(gw, { "API-Key": API_KEY }, 200);
    assert.equal(seen["api-key"], API_KEY);
    assert.equal(seen["x-vanguard-consumer"], "mobile-app");
  } finally {
    await gw.close();
    await upstream.close();
  }
});
