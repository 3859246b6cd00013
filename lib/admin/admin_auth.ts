/**
 * The admin token (`server.admin_token_env`): API clients send `Authorization: Bearer <token>`;
 * a browser signs in once through the dashboard's form and then sends a session cookie
 * (HttpOnly, SameSite=Strict) that carries an expiry and an HMAC of it keyed by the token, never
 * the token itself. Every comparison takes the same time whatever the input.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The session cookie's name. */
export const SESSION_COOKIE = "vanguard_admin_session";
/** How long a dashboard sign-in lasts (12 hours). */
export const SESSION_SECONDS = 12 * 60 * 60;
/**
 * The session cookie goes only to the dashboard's URLs. Browsers scope
 * cookies by host, not port: with `Path=/` the proxy's own port on the same
 * host would get it too (and the proxy drops it besides, see
 * lib/proxy/forwarding.ts).
 */
const SESSION_PATH = "/dashboard";
/** The largest login form accepted, in bytes. */
const MAX_LOGIN_BYTES = 4096;

/** What a request carries: a valid credential, a wrong one, or none. */
export type Credential = "valid" | "invalid" | "missing";

/** Checks admin requests against one token. */
export class AdminAuth {
  readonly #token: string;
  readonly #digest: Buffer;
  readonly #now: () => number;

  /** `now` is a wall clock in milliseconds (default Date.now). */
  constructor(token: string, options: { now?: () => number } = {}) {
    this.#token = token;
    this.#digest = sha256(token);
    this.#now = options.now ?? Date.now;
  }

  /** The credential of `request`: its bearer token, else its session cookie. */
  credential(request: Request): Credential {
    const header = request.headers.get("authorization");
    if (header !== null) {
      const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      return match !== null && this.tokenMatches(match[1]) ? "valid" : "invalid";
    }
    const session = cookie(request.headers.get("cookie"), SESSION_COOKIE);
    if (session === undefined) return "missing";
    return this.#sessionValid(session) ? "valid" : "invalid";
  }

  /** Whether `given` is the token (in constant time, whatever its length). */
  tokenMatches(given: string): boolean {
    return timingSafeEqual(sha256(given), this.#digest);
  }

  /** A `Set-Cookie` value that signs the browser in until the session ends. */
  sessionCookie(): string {
    const expires = Math.floor(this.#now() / 1000) + SESSION_SECONDS;
    return `${SESSION_COOKIE}=${expires}.${this.#mac(expires)}; Max-Age=${SESSION_SECONDS}; ` +
      `Path=${SESSION_PATH}; HttpOnly; SameSite=Strict`;
  }

  /**
   * The token of a login form (`application/x-www-form-urlencoded`, field `token`); undefined
   * for another body or one over 4 KB.
   */
  async formToken(request: Request): Promise<string | undefined> {
    const type = request.headers.get("content-type") ?? "";
    if (!/^application\/x-www-form-urlencoded\b/i.test(type) || request.body === null) {
      return undefined;
    }
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > MAX_LOGIN_BYTES) return undefined;
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
      await request.body.cancel().catch(() => {});
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return new URLSearchParams(new TextDecoder().decode(bytes)).get("token") ?? undefined;
  }

  #sessionValid(value: string): boolean {
    const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (match === null) return false;
    const expires = Number(match[1]);
    const now = Math.floor(this.#now() / 1000);
    // A session from the future (a clock set back, or a forged expiry) is not trusted either.
    const inTime = expires > now && expires <= now + SESSION_SECONDS + 60;
    const macOk = timingSafeEqual(Buffer.from(match[2]), Buffer.from(this.#mac(expires)));
    return inTime && macOk;
  }

  #mac(expires: number): string {
    return createHmac("sha256", this.#token).update(`vanguard-admin-session:${expires}`)
      .digest("base64url");
  }
}

/** A `Set-Cookie` value that ends the session. */
export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Max-Age=0; Path=${SESSION_PATH}; HttpOnly; SameSite=Strict`;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The value of cookie `name` in a Cookie header (the first one), if present. */
function cookie(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
