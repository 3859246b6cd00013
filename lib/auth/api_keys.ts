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
    const hex = sha256Hex(presented);
    const entry = this.#byDigest.get(hex);
    if (entry === undefined) return undefined;
    return timingSafeEqual(Buffer.from(hex, "hex"), entry.digest) ? entry.id : undefined;
  }
}

/** A new random API key: 32 bytes (256 bits) from the system CSPRNG, base64url, prefixed `vg_`. */
export function newApiKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return "vg_" + Buffer.from(bytes).toString("base64url");
}
