import { createLocalJWKSet, type JSONWebKeySet, type JWTHeaderParameters } from "jose";
import type { Logger } from "../log/logger.ts";

/** Signing keys from a JWKS URL could not be had, and none are cached. */
export class JwksUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "JwksUnavailableError";
  }
}

/** How a remote JWKS is cached; the defaults are documented in the README. */
export interface JwksCachePolicy {
  /** Refetch in the background once the keys are this old. */
  readonly refreshMs: number;
  /** Serve cached keys this long after the last successful fetch while refetches fail. */
  readonly maxStaleMs: number;
  /** At most one fetch triggered by an unknown `kid` (or a failure) per this interval. */
  readonly cooldownMs: number;
  /** A fetch that takes longer fails. */
  readonly timeoutMs: number;
}

/** Five-minute refresh, one hour of outage tolerance, 30 s cooldown, 5 s timeout. */
export const DEFAULT_JWKS_POLICY: JwksCachePolicy = {
  refreshMs: 5 * 60_000,
  maxStaleMs: 60 * 60_000,
  cooldownMs: 30_000,
  timeoutMs: 5_000,
};

type LocalSet = ReturnType<typeof createLocalJWKSet>;

/**
 * A JWKS fetched from a URL and kept: keys are refreshed in the background,
 * an unknown `kid` triggers a refetch (rate-limited, so a flood of forged
 * kids cannot hammer the issuer), and a failing JWKS endpoint does not
 * break authentication until the cache is `maxStaleMs` old.
 */
export class RemoteJwks {
  readonly #url: string;
  readonly #policy: JwksCachePolicy;
  readonly #now: () => number;
  readonly #logger: Logger;
  #keys?: LocalSet;
  #fetchedAt = -Infinity;
  #lastAttempt = -Infinity;
  #pending?: Promise<void>;
  #failing = false;

  constructor(
    url: string,
    options: { policy?: JwksCachePolicy; now?: () => number; logger: Logger },
  ) {
    this.#url = url;
    this.#policy = options.policy ?? DEFAULT_JWKS_POLICY;
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger;
  }

  /** Fetches the keys once; failures are logged, not thrown (requests will retry). */
  async warmUp(): Promise<void> {
    await this.#refresh().catch(() => {});
  }

  /** Waits for a fetch in progress, so nothing outlives the gateway. */
  async close(): Promise<void> {
    await this.#pending?.catch(() => {});
  }

  /** The key for a token header; the shape jose's jwtVerify takes. */
  async getKey(header: JWTHeaderParameters): Promise<CryptoKey> {
    const now = this.#now();
    const age = now - this.#fetchedAt;
    if (this.#keys === undefined || age > this.#policy.maxStaleMs) {
      if (now - this.#lastAttempt >= this.#policy.cooldownMs) await this.#refresh().catch(() => {});
      if (this.#keys === undefined || this.#now() - this.#fetchedAt > this.#policy.maxStaleMs) {
        throw new JwksUnavailableError(
          "Signing keys are unavailable: the JWKS endpoint cannot be reached",
        );
      }
    } else if (age > this.#policy.refreshMs && now - this.#lastAttempt >= this.#policy.cooldownMs) {
      this.#refresh().catch(() => {});
    }
    try {
      return await this.#keys(header) as CryptoKey;
    } catch (error) {
      if ((error as { code?: string }).code !== "ERR_JWKS_NO_MATCHING_KEY") throw error;
      if (this.#now() - this.#lastAttempt < this.#policy.cooldownMs) throw error;
      await this.#refresh().catch(() => {});
      return await this.#keys(header) as CryptoKey;
    }
  }

  #refresh(): Promise<void> {
    this.#pending ??= this.#fetch().finally(() => this.#pending = undefined);
    return this.#pending;
  }

  async #fetch(): Promise<void> {
    this.#lastAttempt = this.#now();
    try {
      const response = await fetch(this.#url, {
        headers: { accept: "application/json" },
        signal: AbortSignal.timeout(this.#policy.timeoutMs),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`JWKS endpoint answered ${response.status}`);
      }
      const body = await response.json() as JSONWebKeySet;
      if (!body || !Array.isArray(body.keys)) throw new Error("JWKS response has no keys array");
      this.#keys = createLocalJWKSet(body);
      this.#fetchedAt = this.#now();
      if (this.#failing) this.#logger.info("jwks_recovered", { url: this.#url });
      this.#failing = false;
    } catch (error) {
      // Log the first failure of an outage, not every retry.
      if (!this.#failing) {
        this.#logger.warn("jwks_unavailable", {
          url: this.#url,
          message: error instanceof Error ? error.message : String(error),
          cached_keys: this.#keys !== undefined,
        });
      }
      this.#failing = true;
      throw error;
    }
  }
}
