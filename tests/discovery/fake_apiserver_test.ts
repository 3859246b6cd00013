/**
 * Self-tests of the fake Kubernetes API server, with plain fetch as the
 * client, so discovery tests can trust what the fake says about the protocol.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  endpointSlice,
  type FakeApiServer,
  type FakeApiServerOptions,
  service,
  startFakeApiServer,
} from "./fake_apiserver.ts";

const SERVICES = "/api/v1/namespaces/default/services";
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

interface WatchEvent {
  type: string;
  object: {
    kind?: string;
    code?: number;
    reason?: string;
    message?: string;
    metadata: { name?: string; namespace?: string; resourceVersion?: string };
  };
}

/** Runs `body` against a fresh fake and closes it whatever happens. */
async function withFake(
  options: FakeApiServerOptions,
  body: (fake: FakeApiServer) => Promise<void>,
): Promise<void> {
  const fake = await startFakeApiServer(options);
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
}

function get(
  fake: FakeApiServer,
  path: string,
  init: { token?: string | null; client?: Deno.HttpClient } = {},
): Promise<Response> {
  const token = init.token === undefined ? "test-token" : init.token;
  return fetch(fake.url + path, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    client: init.client,
  });
}

async function list(fake: FakeApiServer, path: string) {
  const response = await get(fake, path);
  assert.equal(response.status, 200);
  return await response.json();
}

/** Reads newline-delimited watch events the way a careful client must: across chunk boundaries. */
class WatchReader {
  readonly chunks: string[] = [];
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();
  #buffer = "";
  #pending?: Promise<ReadableStreamReadResult<Uint8Array>>;
  #done = false;

  constructor(response: Response) {
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    this.#reader = response.body!.getReader();
  }

  /** The next event, "end" when the stream closed, "timeout" when nothing came in time. */
  async next(timeoutMs = 2000): Promise<WatchEvent | "end" | "timeout"> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return JSON.parse(line);
      }
      if (this.#done) {
        assert.equal(this.#buffer, "", "the stream ended in the middle of an event");
        return "end";
      }
      this.#pending ??= this.#reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      const result = await Promise.race([this.#pending, timeout]);
      clearTimeout(timer);
      if (result === "timeout") return "timeout";
      this.#pending = undefined;
      if (result.done) {
        this.#done = true;
        this.#buffer += this.#decoder.decode();
        continue;
      }
      this.chunks.push(new TextDecoder().decode(result.value));
      this.#buffer += this.#decoder.decode(result.value, { stream: true });
    }
  }

  /** The next event, which must come within the timeout. */
  async event(timeoutMs = 2000): Promise<WatchEvent> {
    const next = await this.next(timeoutMs);
    assert.ok(typeof next === "object", `expected an event, got ${next}`);
    return next;
  }

  /** The next `count` events as "TYPE name@rv" strings (bookmarks as "BOOKMARK@rv"). */
  async summaries(count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(summary(await this.event()));
    return out;
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

function summary(event: WatchEvent): string {
  const { name, resourceVersion } = event.object.metadata;
  return `${event.type} ${name ?? ""}@${resourceVersion ?? ""}`.replace(" @", "@");
}

async function watch(fake: FakeApiServer, path: string, query = "", client?: Deno.HttpClient) {
  const response = await get(fake, `${path}?watch=1${query}`, { client });
  return new WatchReader(response);
}

async function eventually(check: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("a list returns the namespace's items in stable order with the current resourceVersion", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "b"));
    fake.apply(service("other", "c"));
    fake.apply(service("default", "a", { ports: [{ name: "http", port: 80, targetPort: 8080 }] }));
    fake.apply(endpointSlice("default", "a-x1", "a", [{ address: "10.0.0.1", ready: true }], [
      { name: "http", port: 8080 },
    ]));

    const services = await list(fake, SERVICES);
    assert.equal(services.kind, "ServiceList");
    assert.equal(services.apiVersion, "v1");
    assert.equal(services.metadata.resourceVersion, String(fake.resourceVersion));
    assert.deepEqual(services.items.map((i: WatchEvent["object"]) => i.metadata.name), ["a", "b"]);
    assert.equal(services.items[0].kind, undefined, "real list items carry no kind");
    assert.deepEqual(services.items[0].spec.ports, [
      { name: "http", protocol: "TCP", port: 80, targetPort: 8080 },
    ]);

    const all = await list(fake, "/api/v1/services");
    assert.deepEqual(
      all.items.map((i: WatchEvent["object"]) => `${i.metadata.namespace}/${i.metadata.name}`),
      ["default/a", "default/b", "other/c"],
    );

    const slices = await list(fake, `${SLICES}?labelSelector=kubernetes.io/service-name%3Da`);
    assert.equal(slices.kind, "EndpointSliceList");
    assert.equal(slices.apiVersion, "discovery.k8s.io/v1");
    assert.equal(slices.items.length, 1);
    assert.deepEqual(slices.items[0].endpoints, [
      { addresses: ["10.0.0.1"], conditions: { ready: true } },
    ]);
    assert.equal(
      (await list(fake, `${SLICES}?labelSelector=kubernetes.io/service-name%3Db`)).items.length,
      0,
    );

    const missing = await get(fake, "/api/v1/namespaces/default/pods");
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "the server could not find the requested resource",
      reason: "NotFound",
      code: 404,
    });
  });
});

Deno.test("limit and continue page through one consistent snapshot", async () => {
  await withFake({}, async (fake) => {
    for (const name of ["e", "d", "c", "b", "a"]) fake.apply(service("default", name));
    const rv = String(fake.resourceVersion);
    const names: string[] = [];
    let page = await list(fake, `${SERVICES}?limit=2`);
    assert.equal(page.metadata.remainingItemCount, 3);
    names.push(...page.items.map((i: WatchEvent["object"]) => i.metadata.name));
    fake.apply(service("default", "aa")); // after the first page: must not show up
    while (page.metadata.continue) {
      assert.equal(page.metadata.resourceVersion, rv);
      page = await list(
        fake,
        `${SERVICES}?limit=2&continue=${encodeURIComponent(page.metadata.continue)}`,
      );
      names.push(...page.items.map((i: WatchEvent["object"]) => i.metadata.name));
    }
    assert.deepEqual(names, ["a", "b", "c", "d", "e"]);
  });
});

Deno.test("a watch from a resourceVersion replays exactly the later events, then streams live ones", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "a"));
    const from = fake.resourceVersion;
    fake.apply(service("default", "b"));
    fake.apply(service("default", "a", { annotations: { changed: "yes" } }));
    fake.apply(service("other", "x")); // other namespace: not for this watch
    fake.apply(endpointSlice("default", "a-1", "a", [{ address: "10.0.0.1" }], [{ port: 80 }]));

    const reader = await watch(fake, SERVICES, `&resourceVersion=${from}`);
    assert.deepEqual(await reader.summaries(2), [
      `ADDED b@${from + 1}`,
      `MODIFIED a@${from + 2}`,
    ]);
    fake.apply(service("default", "c"));
    fake.remove("Service", "default", "b");
    const live = await reader.summaries(2);
    const rv = fake.resourceVersion;
    assert.deepEqual(live, [`ADDED c@${rv - 1}`, `DELETED b@${rv}`]);
    assert.equal(await reader.next(50), "timeout", "nothing else was applied");
    await reader.cancel();
  });
});

Deno.test("a watch without resourceVersion starts with ADDED for every current object", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "b"));
    fake.apply(service("default", "a"));
    fake.apply(service("other", "z"));
    const reader = await watch(fake, "/api/v1/services");
    const names = [];
    for (let i = 0; i < 3; i++) {
      const event = await reader.event();
      assert.equal(event.type, "ADDED");
      assert.equal(event.object.kind, "Service", "watch event objects carry their kind");
      names.push(event.object.metadata.name);
    }
    assert.deepEqual(names, ["a", "b", "z"]);
    fake.apply(service("other", "y"));
    assert.equal(summary(await reader.event()), `ADDED y@${fake.resourceVersion}`);
    await reader.cancel();
  });
});

Deno.test("watch events are split across chunks and batched", async () => {
  await withFake({}, async (fake) => {
    for (const name of ["a", "b", "c", "d"]) fake.apply(service("default", name));
    const reader = await watch(fake, SERVICES, "&resourceVersion=1000");
    assert.equal((await reader.summaries(4)).length, 4);
    assert.ok(reader.chunks.length >= 2, `replay came in ${reader.chunks.length} chunk(s)`);
    assert.ok(
      reader.chunks.some((chunk) => chunk.includes("\n") && !chunk.endsWith("\n")),
      "no chunk held the end of one event and the start of the next",
    );
    assert.ok(
      reader.chunks.some((chunk) => !chunk.endsWith("\n")),
      "every chunk ended on a line boundary",
    );
    await reader.cancel();
  });

  await withFake({ splitWrites: false }, async (fake) => {
    fake.apply(service("default", "a"));
    const reader = await watch(fake, SERVICES);
    await reader.event();
    assert.deepEqual(reader.chunks.map((c) => c.endsWith("\n")), [true]);
    await reader.cancel();
  });
});

Deno.test("bookmarks carry the current resourceVersion only when allowed", async () => {
  await withFake({ bookmarkIntervalMs: 20 }, async (fake) => {
    fake.apply(service("default", "a"));
    const rv = fake.resourceVersion;
    const reader = await watch(fake, SERVICES, `&resourceVersion=${rv}&allowWatchBookmarks=true`);
    const first = await reader.event();
    assert.equal(first.type, "BOOKMARK");
    assert.deepEqual(first.object, {
      kind: "Service",
      apiVersion: "v1",
      metadata: { resourceVersion: String(rv) },
    });
    fake.apply(service("other", "elsewhere")); // not seen, but moves the RV
    let event = await reader.event();
    while (event.type === "BOOKMARK" && event.object.metadata.resourceVersion === String(rv)) {
      event = await reader.event();
    }
    assert.equal(summary(event), `BOOKMARK@${fake.resourceVersion}`);
    await reader.cancel();

    const quiet = await watch(fake, SERVICES, `&resourceVersion=${fake.resourceVersion}`);
    assert.equal(await quiet.next(100), "timeout");
    await quiet.cancel();
  });
});

Deno.test("timeoutSeconds ends the watch cleanly", async () => {
  await withFake({}, async (fake) => {
    const started = Date.now();
    const reader = await watch(fake, SERVICES, "&timeoutSeconds=0.05");
    assert.equal(await reader.next(2000), "end");
    assert.ok(Date.now() - started >= 40);
    assert.equal(fake.openWatches, 0);
  });
});

Deno.test("closeWatches() ends every open watch cleanly", async () => {
  await withFake({}, async (fake) => {
    const services = await watch(fake, SERVICES);
    const slices = await watch(fake, SLICES);
    await fake.waitForWatches(2);
    fake.apply(service("default", "a"));
    fake.closeWatches();
    assert.equal((await services.event()).type, "ADDED", "queued events go out before the end");
    assert.equal(await services.next(), "end");
    assert.equal(await slices.next(), "end");
    assert.equal(fake.openWatches, 0);
  });
});

Deno.test("sendGone() sends 410 Expired on open watches; old RVs stay expired until a fresh list", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "a"));
    const seen = fake.resourceVersion;
    const reader = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    await fake.waitForWatches(1);
    fake.sendGone();
    const error = await reader.event();
    assert.equal(error.type, "ERROR");
    assert.equal(error.object.kind, "Status");
    assert.equal(error.object.code, 410);
    assert.equal(error.object.reason, "Expired");
    assert.match(
      error.object.message!,
      new RegExp(`^too old resource version: ${seen} \\(\\d+\\)$`),
    );
    assert.equal(await reader.next(), "end");

    const again = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    assert.equal((await again.event()).object.code, 410);
    assert.equal(await again.next(), "end");

    const fresh = await list(fake, SERVICES);
    assert.ok(Number(fresh.metadata.resourceVersion) > seen);
    const resumed = await watch(
      fake,
      SERVICES,
      `&resourceVersion=${fresh.metadata.resourceVersion}`,
    );
    fake.apply(service("default", "b"));
    assert.equal(summary(await resumed.event()), `ADDED b@${fake.resourceVersion}`);
    await resumed.cancel();
  });
});

Deno.test("sendGone('http') makes watches from old RVs answer HTTP 410", async () => {
  await withFake({}, async (fake) => {
    const seen = fake.resourceVersion;
    const reader = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    await fake.waitForWatches(1);
    fake.sendGone("http");
    assert.equal((await reader.event()).object.code, 410, "open watches still get the event");
    assert.equal(await reader.next(), "end");

    const response = await get(fake, `${SERVICES}?watch=true&resourceVersion=${seen}`);
    assert.equal(response.status, 410);
    const status = await response.json();
    assert.equal(status.kind, "Status");
    assert.equal(status.reason, "Expired");
    assert.equal(status.code, 410);
  });
});

Deno.test("compact() expires every RV seen so far, in the last sendGone mode", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "a"));
    const seen = fake.resourceVersion;
    fake.compact();
    const reader = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    assert.equal((await reader.event()).object.code, 410);
    assert.equal(await reader.next(), "end");

    const current = await watch(fake, SERVICES, `&resourceVersion=${fake.resourceVersion}`);
    fake.apply(service("default", "b"));
    assert.equal(summary(await current.event()), `ADDED b@${fake.resourceVersion}`);
    await current.cancel();

    fake.sendGone("http");
    fake.apply(service("default", "c"));
    const before = fake.resourceVersion;
    fake.compact();
    const response = await get(fake, `${SERVICES}?watch=1&resourceVersion=${before}`);
    assert.equal(response.status, 410);
    await response.body?.cancel();
  });
});

Deno.test("requests need the bearer token, and setToken() rotates it", async () => {
  await withFake({}, async (fake) => {
    const anonymous = await get(fake, SERVICES, { token: null });
    assert.equal(anonymous.status, 401);
    const status = await anonymous.json();
    assert.equal(status.reason, "Unauthorized");
    assert.equal(status.code, 401);
    const wrong = await get(fake, SERVICES, { token: "nope" });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    assert.equal((await get(fake, `${SERVICES}?watch=1`, { token: null })).status, 401);

    fake.setToken("rotated");
    const old = await get(fake, SERVICES);
    assert.equal(old.status, 401);
    await old.body?.cancel();
    const ok = await get(fake, SERVICES, { token: "rotated" });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    assert.deepEqual(fake.requests.map((r) => r.authorization), [
      null,
      "Bearer nope",
      null,
      "Bearer test-token",
      "Bearer rotated",
    ]);
    assert.deepEqual(fake.requests[2].query, { watch: "1" });
    assert.equal(fake.requests[2].path, SERVICES);
  });
});

Deno.test("failNext() answers the next requests with the given status and headers", async () => {
  await withFake({}, async (fake) => {
    fake.failNext(503);
    const unavailable = await get(fake, SERVICES);
    assert.equal(unavailable.status, 503);
    assert.equal((await unavailable.json()).reason, "ServiceUnavailable");
    assert.equal((await get(fake, SERVICES)).status, 200);

    fake.failNext(429, 2, { "retry-after": "1" });
    for (let i = 0; i < 2; i++) {
      const limited = await get(fake, `${SERVICES}?watch=1`);
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get("retry-after"), "1");
      assert.equal((await limited.json()).code, 429);
    }
    const ok = await get(fake, SERVICES);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("stop() refuses connections; restart() serves the same port; reset expires old RVs", async () => {
  await withFake({}, async (fake) => {
    fake.apply(service("default", "a"));
    const seen = fake.resourceVersion;
    const { port } = fake;
    const reader = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    await fake.stop();
    assert.equal(await reader.next(), "end", "stop() ends open watches");
    await assert.rejects(get(fake, SERVICES), TypeError);

    await fake.restart();
    assert.equal(fake.port, port);
    const kept = await list(fake, SERVICES);
    assert.equal(kept.metadata.resourceVersion, String(seen));
    assert.equal(kept.items.length, 1);

    await fake.restart({ reset: true });
    assert.equal(fake.port, port);
    assert.ok(fake.resourceVersion >= seen + 1000);
    const empty = await list(fake, SERVICES);
    assert.deepEqual(empty.items, []);
    const stale = await watch(fake, SERVICES, `&resourceVersion=${seen}`);
    assert.equal((await stale.event()).object.code, 410);
    assert.equal(await stale.next(), "end");
  });
});

Deno.test("stall() silences watches; a re-watch after the stall gets what was applied", async () => {
  await withFake({ bookmarkIntervalMs: 10 }, async (fake) => {
    const from = fake.resourceVersion;
    const bookmarks = "&allowWatchBookmarks=true&timeoutSeconds=0.05";
    const open = await watch(fake, SERVICES, `&resourceVersion=${from}${bookmarks}`);
    await fake.waitForWatches(1);
    fake.stall(true);
    fake.apply(service("default", "a"));
    const late = await watch(fake, SERVICES, `&resourceVersion=${from}${bookmarks}`);
    assert.equal(
      await open.next(150),
      "timeout",
      "no event, bookmark or timeout end while stalled",
    );
    assert.equal(await late.next(50), "timeout");
    fake.stall(false);
    assert.equal(await open.next(50), "timeout", "a stalled watch stays dead");

    const after = await watch(fake, SERVICES, `&resourceVersion=${from}`);
    assert.equal(summary(await after.event()), `ADDED a@${fake.resourceVersion}`);
    await Promise.all([open.cancel(), late.cancel(), after.cancel()]);
  });
});

Deno.test("a watch whose client goes away is dropped", async () => {
  await withFake({ bookmarkIntervalMs: 10 }, async (fake) => {
    const reader = await watch(fake, SERVICES, "&allowWatchBookmarks=true");
    await fake.waitForWatches(1);
    await reader.cancel();
    await eventually(() => fake.openWatches === 0, "the watch to be dropped");
  });
});

Deno.test("the kubeconfig points at the server with the token", async () => {
  await withFake({ token: "abc" }, async (fake) => {
    assert.ok(fake.kubeconfigPath.includes("/tests/.tmp/"));
    const config = parse(await Deno.readTextFile(fake.kubeconfigPath));
    assert.equal(config["current-context"], "fake");
    assert.deepEqual(config.clusters, [{ name: "fake", cluster: { server: fake.url } }]);
    assert.deepEqual(config.users, [{ name: "fake", user: { token: "abc" } }]);
    assert.deepEqual(config.contexts, [
      { name: "fake", context: { cluster: "fake", user: "fake", namespace: "default" } },
    ]);
  });
});

Deno.test("with tls, the server is trusted through the generated CA", async () => {
  await withFake({ tls: true }, async (fake) => {
    assert.match(fake.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(fake.caPem!, /^-----BEGIN CERTIFICATE-----/);
    const config = parse(await Deno.readTextFile(fake.kubeconfigPath));
    assert.equal(atob(config.clusters[0].cluster["certificate-authority-data"]), fake.caPem);

    await assert.rejects(get(fake, SERVICES), TypeError, "an unknown CA must not be trusted");
    const client = Deno.createHttpClient({ caCerts: [fake.caPem!] });
    try {
      fake.apply(service("default", "a"));
      const listed = await get(fake, SERVICES, { client });
      assert.equal(listed.status, 200);
      assert.equal((await listed.json()).items.length, 1);
      const reader = await watch(fake, SERVICES, "", client);
      assert.equal((await reader.event()).type, "ADDED");
      await reader.cancel();
    } finally {
      client.close();
    }
  });
});
