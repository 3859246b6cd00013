/**
 * What the profilers in bench/ share: a connection to a process's V8
 * inspector, the wrk load they measure under, and which part of the gateway
 * a source file belongs to.
 */

/** A call to the inspector (Chrome DevTools protocol) of the process on `port`. */
export interface Inspector {
  call<T>(method: string, params?: unknown): Promise<T>;
  close(): void;
}

/** Connects to the first target of a process started with `--inspect=127.0.0.1:PORT`. */
export async function inspect(port: number): Promise<Inspector> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve) => socket.onopen = resolve);
  let lastId = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  };
  return {
    call: <T>(method: string, params: unknown = {}) =>
      new Promise<T>((resolve) => {
        const id = ++lastId;
        pending.set(id, resolve as (result: unknown) => void);
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
}

/** `wrk -t1 -c50` on `url` for `seconds` (with a Lua script, for headers): its request count and output. */
export async function wrkLoad(
  url: string,
  seconds: number,
  script?: string,
): Promise<{ requests: number; text: string }> {
  const output = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, ...(script ? ["-s", script] : []), url],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  return { requests: Number(text.match(/(\d+) requests in/)?.[1] ?? 0), text };
}

/** The parts of the gateway, by source file, for the "by part" table. */
const PARTS: [RegExp, string][] = [
  [/\/lib\/log\//, "access log (lib/log)"],
  [
    /\/lib\/middleware\/observe\.ts$|\/lib\/admin\//,
    "metrics and access record (observe, lib/admin)",
  ],
  [
    /\/lib\/proxy\/(http1|http1_body|exchange|pool|deadlines|body_stream|upstream_client|upstream_error)\.ts$/,
    "upstream HTTP/1.1 client: wire format, pool, deadlines, socket I/O (lib/proxy)",
  ],
  [
    /\/lib\/proxy\/(forwarding|request_head|headers)\.ts$/,
    "header policy: forwarding headers, hop-by-hop, syntax checks (lib/proxy)",
  ],
  [/\/lib\/proxy\//, "proxy: balancing, retries, health, response (lib/proxy)"],
  [/\/lib\/routing\/|\/lib\/middleware\/route\.ts$/, "routing: canonical path, match"],
  [/\/lib\/server\//, "listener, request target, context (lib/server)"],
  [/\/lib\/pipeline\/|\/lib\/middleware\/error_boundary\.ts$/, "chain and error boundary"],
  [/\/lib\/(auth|ratelimit)\/|\/lib\/middleware\//, "auth and rate limits"],
  [/\/lib\//, "other gateway code"],
  [/\/bench\//, "the bench's own program (bench/)"],
];

export function partOf(url: string): string {
  const npm = url.match(/\/npm\/[^/]+\/((?:@[^/]+\/)?[^/]+)\//);
  if (npm) return `npm package ${npm[1]}`;
  return PARTS.find(([pattern]) => pattern.test(url))?.[1] ?? "other";
}
