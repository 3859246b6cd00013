/** What the benchmarks share: processes, ports, wrk, RSS. */

export const ROOT = new URL("..", import.meta.url).pathname;
export const TMP = `${ROOT}bench/.tmp`;
export const API_KEY = "vg_benchmark-key-0123456789abcdef";

/** Command-line options of deno task bench. */
export interface Options {
  seconds: number;
  rounds: number;
  connections: number;
  /** Only the scenarios whose name contains one of these (all when empty). */
  only: string[];
}

/** Parses `--seconds N --rounds N --connections N --only NAME[,NAME...]`. */
export function parseArgs(args: string[]): Options {
  const options: Options = { seconds: 5, rounds: 3, connections: 50, only: [] };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, "");
    const value = args[i + 1];
    if (key === "only" && value) {
      options.only = value.split(",").map((name) => name.trim()).filter((name) => name !== "");
    } else if (
      (key === "seconds" || key === "rounds" || key === "connections") &&
      Number.isFinite(Number(value))
    ) {
      options[key] = Number(value);
    } else {
      throw new Error(`Unknown or bad argument ${args[i]} ${value ?? ""}`);
    }
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

/** Ports freePort() handed out already (the kernel may offer a closed one again). */
const handedOut = new Set<number>();

/** A loopback port nothing listens on now, and not handed out before by this process. */
export function freePort(): number {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Every process a benchmark started; stopAll() ends them. */
const children: Deno.ChildProcess[] = [];
/** The last few KB each child wrote to stderr (read as it comes, so a chatty child never blocks). */
const stderrTails = new Map<Deno.ChildProcess, string>();

/** Starts a process (stdout discarded, stderr kept for stderrTail()) that stopAll() will end. */
export function spawn(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Deno.ChildProcess {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd ?? ROOT,
    env: options.env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  children.push(child);
  stderrTails.set(child, "");
  (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrTails.set(child, (stderrTails.get(child) + text).slice(-4096));
    }
  })().catch(() => {});
  return child;
}

/** The end of what a spawned process wrote to stderr. */
export function stderrTail(child: Deno.ChildProcess): string {
  return stderrTails.get(child) ?? "";
}

/** Waits for a spawned server's port; if it exits or does not listen, says why with its stderr. */
export async function waitForChild(
  child: Deno.ChildProcess,
  name: string,
  port: number,
): Promise<void> {
  let exit: Deno.CommandStatus | undefined;
  child.status.then((status) => exit = status);
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      if (exit || Date.now() > deadline) {
        // Let the stderr reader catch up with the last lines.
        await new Promise((resolve) => setTimeout(resolve, 100));
        throw new Error(
          `${name} ${exit ? `exited (code ${exit.code})` : "did not listen"} on port ${port}; ` +
            `its stderr:\n${stderrTail(child)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The process ids of everything spawn() started. */
export function childPids(): number[] {
  return children.map((child) => child.pid);
}

/** CPU time in clock ticks: of the whole machine, and of some processes. */
export interface CpuTicks {
  /** user + nice + system of all cores (interrupt time and steal left out). */
  busy: number;
  /** user + system of the processes asked for, and of this process and its reaped children. */
  ours: number;
}

/** Reads CPU time from /proc (through cat: Deno wants --allow-all to read /proc itself). */
export async function cpuTicks(pids: number[]): Promise<CpuTicks> {
  const paths = ["/proc/stat", ...[Deno.pid, ...pids].map((pid) => `/proc/${pid}/stat`)];
  // A process that is gone is only missing from the output.
  const output = await new Deno.Command("cat", { args: paths, stdout: "piped", stderr: "null" })
    .output();
  let busy = 0, ours = 0;
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    if (line.startsWith("cpu ")) {
      const [user, nice, system] = line.trim().split(/\s+/).slice(1, 4).map(Number);
      busy = user + nice + system;
    } else if (/^\d+ \(/.test(line)) {
      // Fields after "pid (comm) ": state is the 3rd field, utime the 14th ... cstime the 17th.
      const fields = line.slice(line.lastIndexOf(")") + 2).split(" ").map(Number);
      ours += fields[11] + fields[12] + fields[13] + fields[14];
    }
  }
  return { busy, ours };
}

/** CPU time (user + system, in clock ticks) of each process; a process that is gone is missing. */
export async function processTicks(pids: readonly number[]): Promise<Map<number, number>> {
  const ticks = new Map<number, number>();
  if (pids.length === 0) return ticks;
  const output = await new Deno.Command("cat", {
    args: pids.map((pid) => `/proc/${pid}/stat`),
    stdout: "piped",
    stderr: "null",
  }).output();
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    if (!/^\d+ \(/.test(line)) continue;
    const fields = line.slice(line.lastIndexOf(")") + 2).split(" ").map(Number);
    ticks.set(Number(line.slice(0, line.indexOf(" "))), fields[11] + fields[12]);
  }
  return ticks;
}

/**
 * The share of the machine (0..1) that processes outside the run used
 * between two readings `ms` apart (Linux's 100 clock ticks a second).
 */
export function othersShare(before: CpuTicks, after: CpuTicks, ms: number): number {
  const ticks = (ms / 1000) * 100 * navigator.hardwareConcurrency;
  const others = (after.busy - before.busy) - (after.ours - before.ours);
  return Math.max(0, others / ticks);
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
  // The permissions and the V8 flags: the gateway measured is the one `deno task start` runs.
  return words.filter((word) => word.startsWith("--allow-") || word.startsWith("--v8-flags="));
}

/** The resident memory of process `pid` now, in MiB. */
export async function rssMb(pid: number): Promise<number> {
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" })
    .output();
  const kb = Number(new TextDecoder().decode(output.stdout).match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  return kb / 1024;
}

/** The peak resident memory (VmHWM) of process `pid` so far, in MiB, rounded. */
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
