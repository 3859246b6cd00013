/**
 * A keep-alive upstream on raw TCP whose every answer a test scripts: it
 * reads request heads (and Content-Length bodies) one after another on each
 * connection and lets `answer` write whatever bytes it likes, when it likes,
 * so tests can play an upstream that breaks HTTP/1.1 on purpose.
 */
import { serveTcp, writeAll } from "../helpers.ts";

/** One request as the upstream read it. */
export interface SeenRequest {
  /** The head as sent, request line and header lines. */
  readonly head: string;
  readonly method: string;
  readonly path: string;
  /** Lower-case header names; repeated headers keep every value. */
  readonly headers: [string, string][];
  readonly body: string;
  /** 0 for the first request on its connection. */
  readonly index: number;
  /** Which accepted connection it came on (0, 1, ...). */
  readonly connection: number;
}

/** A scripted upstream and what it saw. */
export interface ScriptedUpstream {
  readonly url: string;
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * Starts the upstream. `answer` returns nothing to keep reading requests on
 * the connection, or "close" to close it.
 */
export function startScriptedUpstream(
  answer: (conn: Deno.Conn, request: SeenRequest) => Promise<void | "close">,
): ScriptedUpstream {
  const requests: SeenRequest[] = [];
  let accepted = 0;
  const server = serveTcp(async (conn, connection) => {
    accepted++;
    const reader = new HeadReader(conn);
    for (let index = 0;; index++) {
      const request = await reader.next(connection, index);
      if (request === null) return;
      requests.push(request);
      if ((await answer(conn, request)) === "close") return;
    }
  });
  return { ...server, requests, connections: () => accepted };
}

/** Writes text (Latin-1, byte for character) in full. */
export function send(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return writeAll(conn, bytes);
}

/** A complete response with a Content-Length body. */
export function response(body: string, status = "200 OK", extra = ""): string {
  return `HTTP/1.1 ${status}\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class HeadReader {
  readonly #conn: Deno.Conn;
  #buffered = "";

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async next(connection: number, index: number): Promise<SeenRequest | null> {
    let end: number;
    while ((end = this.#buffered.indexOf("\r\n\r\n")) === -1) {
      if (!(await this.#fill())) return null;
    }
    const head = this.#buffered.slice(0, end);
    this.#buffered = this.#buffered.slice(end + 4);
    const [requestLine, ...lines] = head.split("\r\n");
    const [method, path] = requestLine.split(" ");
    const headers = lines.map((line): [string, string] => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
    });
    const length = Number(headers.find(([name]) => name === "content-length")?.[1] ?? 0);
    const chunked = headers.some(([name, value]) =>
      name === "transfer-encoding" && value === "chunked"
    );
    let body = "";
    if (chunked) {
      for (;;) {
        while (!this.#buffered.includes("\r\n")) await this.#fill();
        const line = this.#buffered.slice(0, this.#buffered.indexOf("\r\n"));
        const size = parseInt(line, 16);
        while (this.#buffered.length < line.length + 2 + size + 2) await this.#fill();
        body += this.#buffered.slice(line.length + 2, line.length + 2 + size);
        this.#buffered = this.#buffered.slice(line.length + 2 + size + 2);
        if (size === 0) break;
      }
    } else {
      while (this.#buffered.length < length) {
        if (!(await this.#fill())) break;
      }
      body = this.#buffered.slice(0, length);
      this.#buffered = this.#buffered.slice(length);
    }
    return { head, method, path, headers, body, index, connection };
  }

  async #fill(): Promise<boolean> {
    const buffer = new Uint8Array(65536);
    const n = await this.#conn.read(buffer);
    if (n === null) return false;
    for (let i = 0; i < n; i++) this.#buffered += String.fromCharCode(buffer[i]);
    return true;
  }
}
