/**
 * `server.tls`, `server.http_redirect_port` and `services.NAME.ca_file`
 * (contract section 9), against real TLS listeners with certificates made
 * by openssl in tests/.tmp.
 */
import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/types.ts";
import { memoryLogger } from "../../lib/log/logger.ts";
import { type Gateway, startGateway } from "../../lib/server/gateway.ts";
import { eventually, rawRequest, startUpstream, type TestServer } from "../helpers.ts";
import { pki } from "../tls_pki.ts";

function configIn(dir: string, yaml: string): Config {
  const result = parseConfig(yaml, { displayPath: "tls.yaml", absolutePath: `${dir}/tls.yaml` });
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join("\n"));
  return result.config;
}

interface Started {
  readonly gateway: Gateway;
  readonly port: number;
  readonly logs: ReturnType<typeof memoryLogger>["records"];
}

async function start(
  config: Config,
  options: { redirect?: boolean; pollMs?: number } = {},
): Promise<Started> {
  const logger = memoryLogger();
  const gateway = await startGateway({
    config,
    logger,
    accessLog: false,
    tlsPollIntervalMs: options.pollMs ?? 100,
    listen: {
      port: 0,
      host: "127.0.0.1",
      adminPort: 0,
      adminHost: "127.0.0.1",
      redirectPort: options.redirect ? 0 : undefined,
    },
  });
  return { gateway, port: gateway.proxyAddr.port, logs: logger.records };
}

/** The ALPN protocol a TLS handshake to the gateway settles on (verifying against `ca`). */
async function handshake(
  port: number,
  options: { ca: string; alpn?: string[]; serverName?: string; anyName?: boolean },
): Promise<string | null> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  // startTls sends `serverName` as SNI (an IP address sends none).
  const conn = await Deno.startTls(tcp, {
    hostname: options.serverName ?? "127.0.0.1",
    caCerts: [options.ca],
    alpnProtocols: options.alpn ?? ["h2", "http/1.1"],
    ...(options.anyName && { unsafelyDisableHostnameVerification: true }),
  });
  try {
    return (await conn.handshake()).alpnProtocol;
  } finally {
    conn.close();
  }
}

async function verifies(port: number, ca: string, serverName?: string): Promise<boolean> {
  try {
    await handshake(port, { ca, serverName, anyName: serverName !== undefined });
    return true;
  } catch {
    return false;
  }
}

/** An HTTP/1.1 request on an open TLS connection; the whole response as text. */
async function requestOn(conn: Deno.TlsConn, path: string): Promise<string> {
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`));
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  while (!/\r\n\r\n/.test(text) || !text.endsWith("ok")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`connection closed after ${JSON.stringify(text)}`);
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}

function okUpstream(): TestServer & { proto: (string | null)[] } {
  const proto: (string | null)[] = [];
  const server = startUpstream((request) => {
    proto.push(request.headers.get("x-forwarded-proto"));
    return new Response("ok");
  });
  return Object.assign(server, { proto });
}

function tlsConfig(pair: { cert: string; key: string }, upstream: TestServer, extra = ""): string {
  return `server:
  request_head_timeout_ms: 400
  tls:
    cert_file: ${pair.cert}
    key_file: ${pair.key}
${extra}
services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`;
}

Deno.test("server.tls serves HTTPS with HTTP/2 and HTTP/1.1 by ALPN, and the upstream sees X-Forwarded-Proto: https", async () => {
  const certs = await pki();
  const upstream = okUpstream();
  const ca = await certs.ca("one");
  const pair = await certs.leaf("tls", "one", ["localhost"]);
  const gw = await start(configIn(certs.dir, tlsConfig(pair, upstream)));
  try {
    assert.equal(await handshake(gw.port, { ca, alpn: ["h2", "http/1.1"] }), "h2");
    assert.equal(await handshake(gw.port, { ca, alpn: ["http/1.1"] }), "http/1.1");
    // An HTTP/2-only client: it gets an answer only if the listener speaks h2.
    const h2 = Deno.createHttpClient({ caCerts: [ca], http1: false, http2: true });
    try {
      const response = await fetch(`https://127.0.0.1:${gw.port}/x`, { client: h2 });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "ok");
    } finally {
      h2.close();
    }
    const h1 = Deno.createHttpClient({ caCerts: [ca], http1: true, http2: false });
    try {
      const response = await fetch(`https://127.0.0.1:${gw.port}/y`, { client: h1 });
      assert.equal(await response.text(), "ok");
    } finally {
      h1.close();
    }
    assert.deepEqual(upstream.proto, ["https", "https"]);
  } finally {
    await gw.gateway.shutdown();
    await upstream.close();
    await certs.remove();
  }
});

Deno.test("server.tls keeps the request-head timeout: a client that sends no request after the handshake is closed", async () => {
  const certs = await pki();
  const upstream = okUpstream();
  const ca = await certs.ca("one");
  const pair = await certs.leaf("tls", "one", ["localhost"]);
  const gw = await start(configIn(certs.dir, tlsConfig(pair, upstream)));
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: gw.port, caCerts: [ca] });
  try {
    await conn.handshake();
    const started = Date.now();
    // Nothing sent: the bounded listener closes it after request_head_timeout_ms (400).
    assert.equal(await conn.read(new Uint8Array(16)).catch(() => null), null);
    const waited = Date.now() - started;
    assert.ok(waited >= 300 && waited < 5000, `closed after ${waited} ms`);
  } finally {
    conn.close();
    await gw.gateway.shutdown();
    await upstream.close();
    await certs.remove();
  }
});

Deno.test("replaced certificate files reach new connections, open ones keep working, a bad pair keeps the old", async () => {
  const certs = await pki();
  const upstream = okUpstream();
  const caOne = await certs.ca("one");
  const caTwo = await certs.ca("two");
  await certs.leaf("first", "one", ["localhost"]);
  await certs.leaf("second", "two", ["localhost"]);
  // A Secret volume: tls.crt -> ..data/tls.crt, ..data -> a versioned directory.
  const version = async (name: string, cert: string, key: string) => {
    await Deno.mkdir(`${certs.dir}/${name}`);
    await Deno.copyFile(`${certs.dir}/${cert}`, `${certs.dir}/${name}/tls.crt`);
    await Deno.copyFile(`${certs.dir}/${key}`, `${certs.dir}/${name}/tls.key`);
  };
  // Deno.symlink needs unscoped permissions: ln and mv do it, as the kubelet would.
  const run = async (command: string, ...args: string[]) => {
    const out = await new Deno.Command(command, { args, cwd: certs.dir }).output();
    assert.ok(out.success, `${command} ${args.join(" ")}`);
  };
  const swapTo = async (name: string) => {
    await run("ln", "-s", name, "..data_tmp");
    await run("mv", "-T", "..data_tmp", "..data");
  };
  await version("v1", "first.crt", "first.key");
  await run("ln", "-s", "v1", "..data");
  await run("ln", "-s", "..data/tls.crt", "tls.crt");
  await run("ln", "-s", "..data/tls.key", "tls.key");
  const gw = await start(
    configIn(certs.dir, tlsConfig({ cert: "tls.crt", key: "tls.key" }, upstream)),
  );
  const old = await Deno.connectTls({ hostname: "localhost", port: gw.port, caCerts: [caOne] });
  try {
    assert.match(await requestOn(old, "/before"), /^HTTP\/1\.1 200/);
    assert.equal(await verifies(gw.port, caOne), true);
    assert.equal(await verifies(gw.port, caTwo), false);

    await version("v2", "second.crt", "second.key");
    await swapTo("v2");
    const swapped = Date.now();
    await eventually(10_000, "the new certificate", () => verifies(gw.port, caTwo));
    assert.ok(Date.now() - swapped < 10_000);
    assert.equal(await verifies(gw.port, caOne), false);
    // The connection opened before the swap still works.
    assert.match(await requestOn(old, "/after"), /^HTTP\/1\.1 200/);

    // A certificate with another certificate's key: refused, the second pair stays.
    await version("v3", "first.crt", "second.key");
    await swapTo("v3");
    await eventually(
      5000,
      "tls_reload_failed",
      () => gw.logs.some((line) => line.event === "tls_reload_failed"),
    );
    const failure = gw.logs.find((line) => line.event === "tls_reload_failed")!;
    assert.match(String(failure.reason), /not the private key/);
    assert.equal(await verifies(gw.port, caTwo), true);
    assert.equal(await verifies(gw.port, caOne), false);
  } finally {
    old.close();
    await gw.gateway.shutdown();
    await upstream.close();
    await certs.remove();
  }
});

Deno.test("server.tls.certificates are chosen by SNI; no SNI or an unknown name gets cert_file", async () => {
  const certs = await pki();
  const upstream = okUpstream();
  const caOne = await certs.ca("one");
  const caTwo = await certs.ca("two");
  const main = await certs.leaf("main", "one", ["a.test"]);
  const other = await certs.leaf("other", "two", ["b.test", "*.b.test"]);
  const gw = await start(configIn(
    certs.dir,
    tlsConfig(
      main,
      upstream,
      `    certificates:\n      - { cert_file: ${other.cert}, key_file: ${other.key} }`,
    ),
  ));
  try {
    assert.equal(await verifies(gw.port, caTwo, "b.test"), true);
    assert.equal(await verifies(gw.port, caTwo, "API.B.test"), true);
    assert.equal(await verifies(gw.port, caOne, "b.test"), false);
    assert.equal(await verifies(gw.port, caOne, "a.test"), true);
    assert.equal(await verifies(gw.port, caOne, "unknown.test"), true);
    assert.equal(await verifies(gw.port, caOne, "x.y.b.test"), true);
    // An IP address sends no SNI.
    assert.equal(await verifies(gw.port, caOne), true);
    assert.equal(await verifies(gw.port, caTwo), false);
  } finally {
    await gw.gateway.shutdown();
    await upstream.close();
    await certs.remove();
  }
});

Deno.test("http_redirect_port answers 308 to https with the host, the TLS port, the path and the query", async () => {
  const certs = await pki();
  const upstream = okUpstream();
  await certs.ca("one");
  const pair = await certs.leaf("tls", "one", ["localhost"]);
  const gw = await start(configIn(certs.dir, tlsConfig(pair, upstream)), { redirect: true });
  try {
    const base = `http://127.0.0.1:${gw.gateway.redirectAddr!.port}`;
    const response = await rawRequest(`${base}/users/1?x=1&y=%20`, {
      headers: { host: "Example.com:8080" },
    });
    assert.equal(response.status, 308);
    assert.equal(response.headers.location, `https://Example.com:${gw.port}/users/1?x=1&y=%20`);
    const bare = await rawRequest(`${base}/`, { method: "POST", headers: { host: "api.test" } });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, `https://api.test:${gw.port}/`);
    assert.deepEqual(upstream.proto, []);
  } finally {
    await gw.gateway.shutdown();
    await upstream.close();
    await certs.remove();
  }
});

Deno.test("an https upstream is verified against ca_file; one that does not verify gets nothing and the client 502", async () => {
  const certs = await pki();
  const ca = await certs.ca("upstream");
  const pair = await certs.leaf("up", "upstream", ["localhost"]);
  let received = 0;
  const tlsUpstream = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(pair.cert),
    key: await Deno.readTextFile(pair.key),
    onListen() {},
    onError: () => new Response("error", { status: 500 }),
  }, () => {
    received++;
    return new Response("secure upstream");
  });
  const upstreamUrl = `https://127.0.0.1:${tlsUpstream.addr.port}`;
  const config = (caLine: string) =>
    configIn(
      certs.dir,
      `services:
  app:
    urls: [${upstreamUrl}]
${caLine}
routes:
  - { id: app, path_prefix: /, service_name: app }
`,
    );
  const logger = memoryLogger();
  const listen = { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" };
  const gateway = await startGateway({ config: config(""), logger, listen, accessLog: false });
  try {
    const refused = await fetch(`http://127.0.0.1:${gateway.proxyAddr.port}/x`);
    assert.equal(refused.status, 502);
    assert.equal((await refused.json()).error, "bad_gateway");
    assert.equal(received, 0);

    const reloaded = await gateway.reload(config(`    ca_file: upstream-ca.crt`));
    assert.deepEqual(reloaded, { ok: true });
    const trusted = await fetch(`http://127.0.0.1:${gateway.proxyAddr.port}/x`);
    assert.equal(trusted.status, 200);
    assert.equal(await trusted.text(), "secure upstream");
    assert.equal(received, 1);
    void ca;
  } finally {
    await gateway.shutdown();
    await tlsUpstream.shutdown();
    await certs.remove();
  }
});

Deno.test("server.tls and ca_file problems are reported at load with their line and column", async () => {
  const certs = await pki();
  await certs.ca("one");
  await certs.leaf("a", "one", ["a.test"]);
  await certs.leaf("b", "one", ["b.test"]);
  await Deno.writeTextFile(`${certs.dir}/junk.pem`, "not a certificate\n");
  try {
    const result = parseConfig(
      `server:
  tls:
    cert_file: a.crt
    key_file: b.key
  http_redirect_port: 8080
services:
  app:
    urls: [https://127.0.0.1:9443]
    ca_file: junk.pem
routes:
  - { id: app, path_prefix: /, service_name: app }
`,
      { displayPath: "tls.yaml", absolutePath: `${certs.dir}/tls.yaml` },
    );
    assert.equal(result.ok, false);
    const problems = result.ok ? [] : result.problems.map(formatProblem);
    assert.deepEqual(problems, [
      "tls.yaml:4:15: server.tls.key_file: is not the private key of the certificate in cert_file",
      `tls.yaml:9:14: services.app.ca_file: "junk.pem" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ]);
    const missing = parseConfig(
      `server:
  tls:
    cert_file: a.crt
    key_file: a.key
    certificates:
      - { cert_file: missing.crt, key_file: b.key }
routes: []
`,
      { displayPath: "tls.yaml", absolutePath: `${certs.dir}/tls.yaml` },
    );
    assert.deepEqual(missing.ok ? [] : missing.problems.map(formatProblem), [
      `tls.yaml:6:22: server.tls.certificates[0].cert_file: cannot read "missing.crt": no such file`,
    ]);
    const plain = parseConfig(
      `server:\n  http_redirect_port: 8080\nroutes: []\n`,
      { displayPath: "t.yaml", absolutePath: `${certs.dir}/t.yaml` },
    );
    assert.equal(plain.ok, false);
    assert.match(
      plain.ok ? "" : formatProblem(plain.problems[0]),
      /^t\.yaml:2:3: server\.http_redirect_port: needs server\.tls/,
    );
  } finally {
    await certs.remove();
  }
});
