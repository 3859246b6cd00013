/**
 * Headless Chromium for the dashboard tests: finds the browser, starts it with a throwaway
 * profile and drives one page over the DevTools protocol (a WebSocket carrying JSON: commands
 * with ids, answers and events), collecting every console error, uncaught exception and log
 * entry (CSP violations, failed loads) the page produces.
 */

/** Where Chromium is, or why the browser tests cannot run. */
export type ChromiumLookup =
  | { readonly found: string }
  | { readonly missing: string }
  | { readonly denied: string };

const CANDIDATES = ["chromium", "chromium-browser"];

/**
 * Looks for `chromium`, then `chromium-browser`, on PATH (by running `--version`). Not being
 * allowed to run `chromium` is an error of the test flags, not a missing browser.
 */
export function findChromium(): ChromiumLookup {
  for (const [index, name] of CANDIDATES.entries()) {
    try {
      const { success } = new Deno.Command(name, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      }).outputSync();
      if (success) return { found: name };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        if (index > 0) continue;
        return { denied: `run the tests with --allow-run=${name} (${error.message})` };
      }
      throw error;
    }
  }
  return {
    missing: `Chromium is not installed (neither ${
      CANDIDATES.join(" nor ")
    } is on PATH; Debian: apt-get install chromium)`,
  };
}

/** Something the page reported that a clean page does not: a console error, an exception, a log entry. */
export interface PageProblem {
  readonly kind: "console" | "exception" | "log";
  readonly text: string;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** A DevTools protocol connection (flat sessions: one socket for the browser and its pages). */
class DevTools {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, { resolve(v: Json): void; reject(e: Error): void }>();
  readonly #listeners: ((method: string, params: Json, sessionId?: string) => void)[] = [];
  #nextId = 1;
  readonly closed: Promise<void>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      if (message.id !== undefined) {
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) {
          waiter?.reject(new Error(`${message.error.message} (${message.error.code})`));
        } else waiter?.resolve(message.result);
        return;
      }
      for (const listener of this.#listeners) {
        listener(message.method, message.params, message.sessionId);
      }
    };
    this.closed = new Promise((resolve) => {
      socket.onclose = () => {
        for (const waiter of this.#pending.values()) waiter.reject(new Error("DevTools closed"));
        this.#pending.clear();
        resolve();
      };
    });
  }

  static connect(url: string): Promise<DevTools> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.onopen = () => resolve(new DevTools(socket));
      socket.onerror = () => reject(new Error(`Cannot connect to DevTools at ${url}`));
    });
  }

  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.send(
        JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }),
      );
    });
  }

  /** Calls `listener` with every event; the returned function stops that. */
  onEvent(listener: (method: string, params: Json, sessionId?: string) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const index = this.#listeners.indexOf(listener);
      if (index !== -1) this.#listeners.splice(index, 1);
    };
  }

  close(): void {
    this.#socket.close();
  }
}

/** One page (tab) of the browser. */
export class Page {
  readonly #devtools: DevTools;
  readonly #session: string;
  /** Everything the page reported that a clean page does not. */
  readonly problems: PageProblem[] = [];

  constructor(devtools: DevTools, session: string) {
    this.#devtools = devtools;
    this.#session = session;
    devtools.onEvent((method, params, sessionId) => {
      if (sessionId !== session) return;
      if (method === "Runtime.consoleAPICalled" && ["error", "assert"].includes(params.type)) {
        const text = params.args.map((a: Json) => a.value ?? a.description ?? "").join(" ");
        this.problems.push({ kind: "console", text });
      } else if (method === "Runtime.exceptionThrown") {
        const details = params.exceptionDetails;
        this.problems.push({
          kind: "exception",
          text: details.exception?.description ?? details.text,
        });
      } else if (method === "Log.entryAdded" && ["error", "warning"].includes(params.entry.level)) {
        this.problems.push({
          kind: "log",
          text: `${params.entry.source}: ${params.entry.text}${
            params.entry.url ? ` (${params.entry.url})` : ""
          }`,
        });
      }
    });
  }

  send(method: string, params: Json = {}): Promise<Json> {
    return this.#devtools.send(method, params, this.#session);
  }

  /** Loads `url` and waits for its load event. */
  async navigate(url: string): Promise<void> {
    let stop = () => {};
    const loaded = new Promise<void>((resolve) => {
      stop = this.#devtools.onEvent((method, _params, sessionId) => {
        if (sessionId === this.#session && method === "Page.loadEventFired") resolve();
      });
    });
    try {
      const result = await this.send("Page.navigate", { url });
      if (result.errorText) throw new Error(`Navigating to ${url} failed: ${result.errorText}`);
      await loaded;
    } finally {
      stop();
    }
  }

  /** The value of a JavaScript expression in the page (promises awaited); throws what it throws. */
  async evaluate<T = Json>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (result.exceptionDetails) {
      const details = result.exceptionDetails;
      throw new Error(`In the page: ${details.exception?.description ?? details.text}`);
    }
    return result.result.value as T;
  }

  /** A PNG of the whole page at `width` CSS pixels. */
  async screenshot(width: number): Promise<Uint8Array> {
    // The content's height: no empty viewport below it.
    const height = await this.evaluate<number>(
      "Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY)",
    );
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height: Math.min(Math.max(height, 200), 4000),
      deviceScaleFactor: 1,
      mobile: false,
    });
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }
}

/** A running headless Chromium. */
export class Chromium {
  readonly #child: Deno.ChildProcess;
  readonly #devtools: DevTools;
  readonly #profile: string;
  readonly #stderr: Promise<string>;

  private constructor(
    child: Deno.ChildProcess,
    devtools: DevTools,
    profile: string,
    stderr: Promise<string>,
  ) {
    this.#child = child;
    this.#devtools = devtools;
    this.#profile = profile;
    this.#stderr = stderr;
  }

  /** Starts `binary` with a new profile under `profile` (a directory it may remove). */
  static async launch(binary: string, profile: string): Promise<Chromium> {
    await Deno.mkdir(profile, { recursive: true });
    const child = new Deno.Command(binary, {
      args: [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Reads stderr to the end (so the browser never blocks on a full pipe), keeping its tail.
    let announced: (url: string) => void = () => {};
    const listening = new Promise<string>((resolve) => announced = resolve);
    const stderr = (async () => {
      let text = "";
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        text = (text + decoder.decode(chunk, { stream: true })).slice(-20_000);
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
        if (match) announced(match[1]);
      }
      return text;
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("Chromium did not start within 20 s")), 20_000);
    });
    try {
      const url = await Promise.race([
        listening,
        timeout,
        child.status.then(async () => {
          throw new Error(`Chromium exited at start:\n${await stderr}`);
        }),
      ]);
      return new Chromium(child, await DevTools.connect(url), profile, stderr);
    } catch (error) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await stderr;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A new page with a `width` x `height` viewport; console, exceptions and log entries recorded. */
  async newPage(width = 1280, height = 900): Promise<Page> {
    const { targetId } = await this.#devtools.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.#devtools.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const page = new Page(this.#devtools, sessionId);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Log.enable");
    await page.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return page;
  }

  /** Closes the browser (by the protocol: the launcher script then exits too) and its profile. */
  async close(): Promise<void> {
    await this.#devtools.send("Browser.close").catch(() => {});
    this.#devtools.close();
    await this.#devtools.closed;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 10_000)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
      await this.#child.status;
    }
    await this.#stderr;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}
