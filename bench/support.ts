/** What the benchmarks share: processes, ports, wrk, RSS. */

export const ROOT = new URL("..", import.meta.url).pathname;
export const TMP = `${ROOT}bench/.tmp`;
export const API_KEY = "vg_benchmark-key-0123456789abcdef";

/** Command-line options of deno task bench. */
export interface Options {
  seconds: number;
  rounds: number;
  connections: number;
}

/** Parses `--seconds N --rounds N --connections N`. */
export function parseArgs(args: string[]): Options {
  const options = { seconds: 5, rounds: 3, connections: 50 };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, "") as keyof Options;
    if (!(key in options) || !Number.isFinite(Number(args[i + 1]))) {
      throw new Error(`Unknown or bad argument ${args[i]} ${args[i + 1] ?? ""}`);
    }
    options[key] = Number(args[i + 1]);
  }
  return options;
}

/** Whether a command is on PATH. */
export async function which(command: string): Promise<boolean> {
  const result = await new Deno.Command("sh", {
    args: ["-c", `command -v ${command}`],
    stdout: "null",
  })
    .output();
  return result.success;
}

/** Waits until something accepts connections on a loopback port. */
export async function waitForPort(port: number, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`Nothing listens on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** A loopback port nothing listens on now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Every process a benchmark started; stopAll() ends them. */
const children: Deno.ChildProcess[] = [];
/** Starts a process (stdout discarded) that stopAll() will end. */
export function spawn(command: string, args: string[], cwd = ROOT): Deno.ChildProcess {
  const child = new Deno.Command(command, { args, cwd, stdout: "null", stderr: "piped" }).spawn();
  children.push(child);
  return child;
}

/** Ends every process spawn() started. */
export async function stopAll(): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
  }
  await Promise.all(children.map((child) => child.status));
}

/** The permission flags of `deno task start`, read from deno.json so the bench runs what users run. */
export async function startFlags(): Promise<string[]> {
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const words: string[] = denoJson.tasks.start.split(/\s+/);
  return words.filter((word) => word.startsWith("--allow-"));
}

/** The resident memory of process `pid` now, in MiB. */
export async function rssMb(pid: number): Promise<number> {
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" })
    .output();
  const kb = Number(new TextDecoder().decode(output.stdout).match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  return kb / 1024;
}

export async function peakRssMb(pid: number): Promise<number> {
  // Deno asks for --allow-all to read /proc directly; cat is already allowed (--allow-run).
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" })
    .output();
  const kb = Number(new TextDecoder().decode(output.stdout).match(/VmHWM:\s+(\d+)/)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** One wrk run. */
export interface Result {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  /** Socket errors (connect, read, write, timeout) plus `non2xx`. */
  errors: number;
  /** Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses"). */
  non2xx: number;
}

/** wrk's "1.23ms" / "512.00us" / "1.1s" in milliseconds. */
export function parseMs(text: string): number {
  const match = text.match(/([\d.]+)(us|ms|s)/);
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
}

/** Runs wrk once against `url`. */
export async function wrk(
  url: string,
  options: { seconds: number; connections: number; threads?: number; timeoutSeconds?: number },
  script?: string,
): Promise<Result> {
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--latency",
    `--timeout=${options.timeoutSeconds ?? 2}s`,
  ];
  if (script) args.push("-s", script);
  const output = await new Deno.Command("wrk", { args: [...args, url], stdout: "piped" }).output();
  const text = new TextDecoder().decode(output.stdout);
  const non2xx = Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = non2xx +
    [...text.matchAll(/(connect|read|write|timeout) (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
  return {
    requests: Number(text.match(/(\d+) requests in/)?.[1] ?? 0),
    rps: Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0),
    p50: parseMs(text.match(/^\s+50%\s+(\S+)/m)?.[1] ?? ""),
    p99: parseMs(text.match(/^\s+99%\s+(\S+)/m)?.[1] ?? ""),
    errors,
    non2xx,
  };
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
