/**
 * Test helpers: real upstream servers, a real gateway on free ports, and a
 * raw HTTP/1.1 client for what fetch would hide (compression, framing).
 */
import http from "node:http";
import type { Buffer } from "node:buffer";
import { formatProblem, parseConfig } from "../lib/config/load.ts";
import type { Config } from "../lib/config/types.ts";
import { type LogFields, memoryLogger } from "../lib/log/logger.ts";
import { type Gateway, type GatewayOptions, startGateway } from "../lib/server/gateway.ts";

/** A real HTTP server on a free loopback port. */
export interface TestServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Starts a Deno.serve upstream on 127.0.0.1 with a free port. */
export function startUpstream(
  handler: (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
): TestServer {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}

/**
 * A TCP upstream that answers with whatever `respond` writes, for responses
 * Deno.serve would not send (hop-by-hop headers, a reset mid-body).
 */
export function startRawUpstream(
  respond: (conn: Deno.Conn, head: string) => Promise<void>,
): TestServer {
  return serveTcp(async (conn) => await respond(conn, await readHead(conn)));
}

/**
 * A TCP server on a free loopback port that runs `handle` for each
 * connection and closes the connection after it; close() stops accepting,
 * closes every open connection and waits for every handler.
 */
export function serveTcp(handle: (conn: Deno.Conn, index: number) => Promise<void>): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const task = (async () => {
        try {
          await handle(conn, accepted++);
        } catch {
          // the test decides what a broken connection means
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      })();
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await loop.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

async function readHead(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const buffer = new Uint8Array(65536);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** Writes a string to a connection in full. */
export async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** A gateway started for a test, with its log in memory. */
export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly adminUrl: string;
  readonly config: Config;
  readonly logs: LogFields[];
  close(): Promise<void>;
}

/** Parses YAML config text; throws with every problem when it is invalid. */
export function configFrom(yaml: string): Config {
  const result = parseConfig(yaml, { displayPath: "test.yaml", absolutePath: "/tmp/test.yaml" });
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join("\n"));
  return result.config;
}

/** Starts a gateway from YAML config text on free loopback ports. */
export async function startTestGateway(
  yaml: string,
  options: Omit<GatewayOptions, "config" | "logger" | "listen"> = {},
): Promise<TestGateway> {
  const config = configFrom(yaml);
  const logger = memoryLogger();
  const gateway = await startGateway({
    ...options,
    config,
    logger,
    listen: { port: 0, host: "127.0.0.1", adminPort: 0, adminHost: "127.0.0.1" },
  });
  return {
    gateway,
    url: `http://127.0.0.1:${gateway.proxyAddr.port}`,
    adminUrl: `http://127.0.0.1:${gateway.adminAddr.port}`,
    config,
    logs: logger.records,
    close: () => gateway.shutdown(),
  };
}

/**
 * Runs `body` against a gateway started from `yaml`, then stops the gateway
 * and the given upstreams whatever happens.
 */
export async function withGateway(
  upstreams: TestServer | TestServer[],
  yaml: string,
  body: (gw: TestGateway) => Promise<void>,
  options: Omit<GatewayOptions, "config" | "logger" | "listen"> = {},
): Promise<void> {
  const gw = await startTestGateway(yaml, options);
  try {
    await body(gw);
  } finally {
    await gw.close();
    for (const upstream of [upstreams].flat()) await upstream.close();
  }
}

/** Config text with one route `/` (id `app`) to one static service `app`. */
export function singleRoute(upstream: TestServer, server = ""): string {
  return `${server ? `server:\n${server}\n` : ""}services:
  app: { urls: [${upstream.url}] }
routes:
  - { id: app, path_prefix: /, service_name: app }
`;
}

/** A response read in full by node:http, which (unlike fetch) never decodes the body. */
export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: Uint8Array;
}

/** Sends one request with node:http on a fresh connection; rejects if the body ends early. */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        if (!res.complete) {
          reject(new Error("response body ended early"));
          return;
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: concat(chunks),
        });
      });
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
    });
    req.on("error", reject);
    if (options.body) req.write(options.body);
    req.end();
  });
}

/** Joins byte chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** Hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A promise with its resolve function, for latches between client and upstream. */
export function latch<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Rejects after `ms` so a broken streaming test fails instead of hanging. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback port with nothing listening on it. */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Reads the value of one series from Prometheus text, or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** A real redis-server child process on a free loopback port. */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** SIGKILLs the server (no shutdown, no save), as a crash would. */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port. */
  restart(): Promise<void>;
  /** Stops the server for good. */
  stop(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing answers, as with a hung server. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

/** Starts `redis-server` (it must be on PATH) and waits until it answers PING. */
export async function startRedis(): Promise<TestRedis> {
  const port = closedPort();
  let child: Deno.ChildProcess | undefined;
  const launch = async () => {
    child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await pingRedis(port)) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const kill = async () => {
    if (child === undefined) return;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    child = undefined;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    stop: async () => {
      try {
        child?.kill("SIGCONT");
      } catch { /* gone */ }
      await kill();
    },
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
  };
}

async function pingRedis(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buffer = new Uint8Array(16);
      const n = await conn.read(buffer);
      return new TextDecoder().decode(buffer.subarray(0, n ?? 0)).startsWith("+PONG");
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}

/** Waits until `condition` holds, polling; throws after `ms`. */
export async function eventually(
  ms: number,
  what: string,
  condition: () => boolean | Promise<boolean>,
) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An upstream whose response sends "first;", then "second" only once `release()` is called. */
export function twoChunkUpstream(): TestServer & { release(): void } {
  const released = latch();
  const server = startUpstream(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("first;"));
          await released.promise;
          controller.enqueue(new TextEncoder().encode("second"));
          controller.close();
        },
      }),
    )
  );
  return Object.assign(server, { release: () => released.resolve() });
}

/**
 * Reads a twoChunkUpstream() response through `response`: the first chunk
 * must arrive while the upstream still holds the second, which a buffering
 * proxy would never deliver (and the test would time out instead).
 */
export async function expectStreamed(
  response: Response,
  upstream: { release(): void },
): Promise<void> {
  const reader = response.body!.getReader();
  const first = await within(5000, "the first chunk", reader.read());
  if (new TextDecoder().decode(first.value) !== "first;") throw new Error("wrong first chunk");
  upstream.release();
  let rest = "";
  for (;;) {
    const { value, done } = await within(5000, "the rest", reader.read());
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  if (rest !== "second") throw new Error(`wrong rest: ${JSON.stringify(rest)}`);
}
