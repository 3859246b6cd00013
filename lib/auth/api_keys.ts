import { createHash, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import type { ApiKeyConfig } from "../config/types.ts";

/** The SHA-256 of a key, as lower-case hex. */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/**
 * API keys by digest. Only digests are held: the key itself is hashed on
 * arrival and looked up, so timing reveals at most something about a
 * digest, never about a key; the final comparison is constant-time anyway.
 */
export class ApiKeys {
  /** The request header that carries the key, lower-cased. */
  readonly header: string;
  readonly #byDigest = new Map<string, { id: string; digest: Buffer }>();
  /**
   * Keys already verified, to their consumer: hashing costs more per request
   * than the rest of the check. Only valid keys enter, so it holds at most one
   * entry per configured key whatever clients send; a reload builds a new one.
   */
  readonly #verified = new Map<string, string>();

  /** `env` reads the variables named by `value_env` (validated to be set at load time). */
  constructor(config: ApiKeyConfig, env: (name: string) => string | undefined) {
    this.header = config.header.toLowerCase();
    for (const key of config.keys) {
      const hex = key.sha256 ?? sha256Hex(env(key.valueEnv!) ?? "");
      this.#byDigest.set(hex, { id: key.id, digest: Buffer.from(hex, "hex") });
    }
  }

  /** The consumer id for a presented key, or undefined. */
  verify(presented: string): string | undefined {
    const known = this.#verified.get(presented);
    if (known !== undefined) return known;
    const hex = sha256Hex(presented);
    const entry = this.#byDigest.get(hex);
    if (entry === undefined) return undefined;
    if (!timingSafeEqual(Buffer.from(hex, "hex"), entry.digest)) return undefined;
    this.#verified.set(presented, entry.id);
    return entry.id;
  }
}

/** A new random API key: 32 bytes (256 bits) from the system CSPRNG, base64url, prefixed `vg_`. */
export function newApiKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return "vg_" + Buffer.from(bytes).toString("base64url");
}
