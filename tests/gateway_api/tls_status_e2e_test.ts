/**
 * The TLS side of Gateway API and Ingress, end to end: certificates from
 * `kubernetes.io/tls` Secrets served by SNI on Vanguard's TLS listener (one
 * thread and two workers), a Secret updated while serving, and the
 * addresses of the Vanguard Service published in Gateway and Ingress
 * status. Certificates are made by openssl in tests/.tmp; the API server
 * is the fake one (real list/watch), the upstream a real server.
 */
import assert from "node:assert/strict";
import { closedPort, eventually, startTestGateway, type TestGateway } from "../helpers.ts";
import {
  endpointSlice,
  type FakeApiServer,
  gateway,
  gatewayClass,
  httpRoute,
  ingress,
  ingressClass,
  type K8sObject,
  service,
  startFakeApiServer,
  tlsSecret,
} from "../discovery/fake_apiserver.ts";
import { type Pki, pki } from "../tls_pki.ts";

const TUNING = {
  inactivityMs: 1500,
  backoffInitialMs: 50,
  backoffMaxMs: 400,
  coalesceMs: 10,
  status: {
    leaseDurationSeconds: 1,
    renewIntervalMs: 100,
    retryInitialMs: 50,
    retryMaxMs: 200,
    addressRefreshMs: 100,
  },
};

/** Whether the certificate the gateway presents for `serverName` verifies against `ca`. */
async function servedFor(
  port: number,
  serverName: string,
  ca: string,
  options: { anyName?: boolean } = {},
): Promise<boolean> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const conn = await Deno.startTls(tcp, {
      hostname: serverName,
      caCerts: [ca],
      // The file certificate covers localhost only: it is recognized by its CA then.
      ...(options.anyName && { unsafelyDisableHostnameVerification: true }),
    });
    try {
      await conn.handshake();
      return true;
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}

/** A GET over TLS with `serverName` as SNI and Host; the status line and body. */
async function getOver(port: number, serverName: string, ca: string, path: string) {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = await Deno.startTls(tcp, { hostname: serverName, caCerts: [ca] });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${serverName}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    return { status: Number(text.slice(9, 12)), body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } catch (error) {
    conn.close();
    throw error;
  }
}

function vanguardService(status?: Record<string, unknown>): K8sObject {
  const object = service("default", "vanguard", { ports: [{ name: "https", port: 443 }] });
  (object.spec as Record<string, unknown>).clusterIP = "10.96.0.10";
  return status === undefined ? object : { ...object, status };
}

interface Setup {
  readonly fake: FakeApiServer;
  readonly certs: Pki;
  readonly cas: Record<"files" | "shop" | "shopNext" | "api", string>;
  readonly pairs: Record<"shop" | "shopNext" | "api", { cert: string; key: string }>;
  readonly yaml: string;
  close(gw?: TestGateway): Promise<void>;
}

async function setup(workers: number): Promise<Setup> {
  const certs = await pki();
  const cas = {
    files: await certs.ca("files"),
    shop: await certs.ca("shop"),
    shopNext: await certs.ca("shop-next"),
    api: await certs.ca("api"),
  };
  const files = await certs.leaf("default", "files", ["localhost"]);
  const read = async (pair: { cert: string; key: string }) => ({
    cert: await Deno.readTextFile(pair.cert),
    key: await Deno.readTextFile(pair.key),
  });
  const pairs = {
    shop: await read(await certs.leaf("shop", "shop", ["shop.example.com"])),
    shopNext: await read(await certs.leaf("shop-next", "shop-next", ["shop.example.com"])),
    api: await read(await certs.leaf("api", "api", ["api.example.com"])),
  };

  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const port = closedPort();
  const upstream = Deno.serve(
    { hostname: "127.0.0.2", port, onListen() {} },
    (request) => new Response(`upstream saw ${request.headers.get("host")}`),
  );
  fake.apply(service("default", "web", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(
    endpointSlice("default", "web-a", "web", [{ address: "127.0.0.2" }], [{ name: "http", port }]),
  );
  fake.apply(vanguardService());
  fake.apply(gatewayClass("vanguard", "vanguard.io/gateway-controller"));
  fake.apply(gateway("default", "gw", "vanguard", [{
    name: "shop",
    port: 8000,
    protocol: "HTTPS",
    hostname: "shop.example.com",
    tls: { mode: "Terminate", certificateRefs: [{ name: "shop-cert" }] },
  }]));
  fake.apply(tlsSecret("default", "shop-cert", pairs.shop.cert, pairs.shop.key));
  fake.apply(httpRoute("default", "shop", {
    parent: "gw",
    rules: [{ pathPrefix: "/", backends: [{ name: "web", port: 80 }] }],
  }));
  fake.apply(ingressClass("vanguard", "vanguard.io/ingress-controller"));
  const api = ingress("default", "api", {
    className: "vanguard",
    host: "api.example.com",
    paths: [{ path: "/", service: "web", port: 80 }],
  });
  (api.spec as Record<string, unknown>).tls = [{ hosts: ["api.example.com"], secretName: "api" }];
  fake.apply(api);
  fake.apply(tlsSecret("default", "api", pairs.api.cert, pairs.api.key));

  const yaml = `
server:
  workers: ${workers}
  tls:
    cert_file: ${files.cert}
    key_file: ${files.key}
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${fake.kubeconfigPath}
routes: []
`;
  return {
    fake,
    certs,
    cas,
    pairs,
    yaml,
    async close(gw) {
      await gw?.close();
      await fake.close();
      await upstream.shutdown();
      await certs.remove();
    },
  };
}

/** With `podEnv`, the pod's name and namespace as the Downward API gives them (one thread only). */
function start(s: Setup, podEnv = false): Promise<TestGateway> {
  return startTestGateway(s.yaml, {
    discoveryTuning: TUNING,
    ...(podEnv && {
      env: (name: string) =>
        name === "HOSTNAME" ? "pod-a" : name === "POD_NAMESPACE" ? "default" : Deno.env.get(name),
    }),
  });
}

for (const workers of [1, 2]) {
  Deno.test(`Gateway API and Ingress TLS (workers: ${workers}): Secret certificates are served by SNI, a new Secret is served without a restart, other names get the file certificate`, async () => {
    const s = await setup(workers);
    let gw: TestGateway | undefined;
    try {
      gw = await start(s);
      const port = gw.gateway.proxyAddr.port;
      await eventually(
        3000,
        "the shop certificate for shop.example.com",
        () => servedFor(port, "shop.example.com", s.cas.shop),
      );
      await eventually(
        3000,
        "the Ingress certificate for api.example.com",
        () => servedFor(port, "api.example.com", s.cas.api),
      );
      // A name no Secret covers gets the server.tls pair.
      assert.equal(await servedFor(port, "localhost", s.cas.files), true);
      assert.equal(await servedFor(port, "localhost", s.cas.shop), false);

      // Traffic on both, with the client's Host kept.
      assert.deepEqual(await getOver(port, "shop.example.com", s.cas.shop, "/cart"), {
        status: 200,
        body: "upstream saw shop.example.com",
      });
      assert.deepEqual(await getOver(port, "api.example.com", s.cas.api, "/v1"), {
        status: 200,
        body: "upstream saw api.example.com",
      });

      // The Secret renewed (cert-manager does this): new handshakes get the new pair.
      s.fake.apply(tlsSecret("default", "shop-cert", s.pairs.shopNext.cert, s.pairs.shopNext.key));
      await eventually(
        3000,
        "the renewed certificate",
        () => servedFor(port, "shop.example.com", s.cas.shopNext),
      );
      assert.equal(await servedFor(port, "shop.example.com", s.cas.shop), false);

      // A Secret whose key is not its certificate's is refused, and the listener says why.
      s.fake.apply(tlsSecret("default", "shop-cert", s.pairs.shop.cert, s.pairs.api.key));
      await eventually(3000, "InvalidCertificateRef on the listener", () => {
        const status = s.fake.get("Gateway", "default", "gw")?.status as
          | { listeners?: { conditions: { type: string; status: string; reason: string }[] }[] }
          | undefined;
        return status?.listeners?.[0].conditions.some((c) =>
          c.type === "ResolvedRefs" && c.status === "False" &&
          c.reason === "InvalidCertificateRef"
        ) ?? false;
      });
      // Not served: the name falls back to the server.tls pair.
      await eventually(
        3000,
        "the file certificate again",
        () => servedFor(port, "shop.example.com", s.cas.files, { anyName: true }),
      );
    } finally {
      await s.close(gw);
    }
  });
}

Deno.test("Gateway API and Ingress status publish the Vanguard Service's addresses: its cluster IP, then its load balancer's once it has one", async () => {
  const s = await setup(1);
  let gw: TestGateway | undefined;
  try {
    gw = await start(s, true);
    const gatewayAddresses = () =>
      (s.fake.get("Gateway", "default", "gw")?.status as { addresses?: unknown[] } | undefined)
        ?.addresses;
    const ingressAddresses = () =>
      (s.fake.get("Ingress", "default", "api")?.status as
        | { loadBalancer?: { ingress?: unknown[] } }
        | undefined)?.loadBalancer?.ingress;
    await eventually(
      3000,
      "the cluster IP in Gateway status",
      () =>
        JSON.stringify(gatewayAddresses()) ===
          JSON.stringify([{ type: "IPAddress", value: "10.96.0.10" }]),
    );
    await eventually(
      3000,
      "the cluster IP in Ingress status",
      () => JSON.stringify(ingressAddresses()) === JSON.stringify([{ ip: "10.96.0.10" }]),
    );

    s.fake.apply(vanguardService({
      loadBalancer: { ingress: [{ ip: "203.0.113.7" }, { hostname: "lb.example.net" }] },
    }));
    await eventually(
      3000,
      "the load balancer's addresses in Gateway status",
      () =>
        JSON.stringify(gatewayAddresses()) ===
          JSON.stringify([
            { type: "IPAddress", value: "203.0.113.7" },
            { type: "Hostname", value: "lb.example.net" },
          ]),
    );
    await eventually(
      3000,
      "the load balancer's addresses in Ingress status",
      () =>
        JSON.stringify(ingressAddresses()) ===
          JSON.stringify([{ ip: "203.0.113.7" }, { hostname: "lb.example.net" }]),
    );

    // The Service deleted: no address is published, and the log says why once.
    s.fake.remove("Service", "default", "vanguard");
    await eventually(3000, "no addresses", () => (gatewayAddresses() ?? []).length === 0);
    const said = gw.logs.filter((r) => r.event === "publish_service_unavailable");
    assert.equal(said.length, 1);
    assert.match(String(said[0].problem), /Service default\/vanguard does not exist/);
  } finally {
    await s.close(gw);
  }
});
