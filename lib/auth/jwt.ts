import { CONSUMER_ID_RULE, isConsumerId } from "./consumer.ts";
import {
  createLocalJWKSet,
  importJWK,
  importSPKI,
  importX509,
  type JWK,
  type JWTHeaderParameters,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { createPublicKey } from "node:crypto";
import type { JwtConfig } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { type JwksCachePolicy, RemoteJwks } from "./jwks.ts";

/** Verifies bearer tokens against the configured key source, issuer, audience and algorithms. */
export class JwtVerifier {
  readonly #config: JwtConfig;
  readonly #getKey: JWTVerifyGetKey | Uint8Array;
  readonly #now: () => number;
  readonly #remote?: RemoteJwks;

  private constructor(
    config: JwtConfig,
    getKey: JWTVerifyGetKey | Uint8Array,
    now: () => number,
    remote?: RemoteJwks,
  ) {
    this.#config = config;
    this.#getKey = getKey;
    this.#now = now;
    this.#remote = remote;
  }

  /** Builds the verifier; a key file or secret that cannot be used throws with a clear message. */
  static async create(config: JwtConfig, deps: {
    env: (name: string) => string | undefined;
    readFile: (path: string) => string;
    now: () => number;
    logger: Logger;
    jwksPolicy?: JwksCachePolicy;
  }): Promise<JwtVerifier> {
    if (config.secretEnv !== undefined) {
      const secret = new TextEncoder().encode(deps.env(config.secretEnv) ?? "");
      return new JwtVerifier(config, secret, deps.now);
    }
    if (config.jwksUrl !== undefined) {
      const remote = new RemoteJwks(config.jwksUrl, {
        policy: deps.jwksPolicy,
        now: deps.now,
        logger: deps.logger,
      });
      await remote.warmUp();
      return new JwtVerifier(config, (header) => remote.getKey(header), deps.now, remote);
    }
    const file = config.publicKeyFile!;
    const getKey = await keyFromFile(deps.readFile(file), config.algorithms, file);
    return new JwtVerifier(config, getKey, deps.now);
  }

  /** The token's `sub`; throws jose's errors (or JwksUnavailableError) when it does not verify. */
  async verify(token: string): Promise<string> {
    const options = {
      issuer: this.#config.issuer,
      audience: this.#config.audience,
      algorithms: [...this.#config.algorithms],
      clockTolerance: this.#config.clockToleranceSeconds,
      requiredClaims: ["exp", "sub"],
      currentDate: new Date(this.#now()),
    };
    const { payload } = this.#getKey instanceof Uint8Array
      ? await jwtVerify(token, this.#getKey, options)
      : await jwtVerify(token, this.#getKey, options);
    if (typeof payload.sub !== "string" || !isConsumerId(payload.sub)) {
      // The sub becomes a header upstream: CR LF (or U+010D U+010A, which
      // one-byte encodings turn into CR LF) must never get that far.
      throw new TypeError(`Token "sub" ${CONSUMER_ID_RULE}`);
    }
    return payload.sub;
  }

  /** Lets a JWKS fetch in progress finish. */
  async close(): Promise<void> {
    await this.#remote?.close();
  }
}

/**
 * A PEM public key or certificate, a JWK, or a JWKS, imported once per
 * configured algorithm: the token's `alg` then picks the key, and an
 * algorithm the key cannot serve simply has none.
 */
async function keyFromFile(
  text: string,
  algorithms: readonly string[],
  file: string,
): Promise<JWTVerifyGetKey> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const parsed = JSON.parse(trimmed) as JWK | { keys: JWK[] };
    if ("keys" in parsed && Array.isArray(parsed.keys)) return createLocalJWKSet(parsed);
    return await perAlgorithm(algorithms, file, (alg) => importJWK(parsed as JWK, alg));
  }
  if (trimmed.includes("-----BEGIN CERTIFICATE-----")) {
    return await perAlgorithm(algorithms, file, (alg) => importX509(trimmed, alg));
  }
  // jose reads SPKI only; node:crypto also reads PKCS#1 ("RSA PUBLIC KEY").
  const spki = createPublicKey(trimmed).export({ type: "spki", format: "pem" }).toString();
  return await perAlgorithm(algorithms, file, (alg) => importSPKI(spki, alg));
}

/** What jose's importers return (its own CryptoKey type, which node's typings also define). */
type ImportedKey = Awaited<ReturnType<typeof importJWK>>;

async function perAlgorithm(
  algorithms: readonly string[],
  file: string,
  load: (alg: string) => Promise<ImportedKey>,
): Promise<JWTVerifyGetKey> {
  const keys = new Map<string, ImportedKey>();
  for (const alg of algorithms) {
    try {
      keys.set(alg, await load(alg));
    } catch {
      // this key type does not serve this algorithm
    }
  }
  if (keys.size === 0) {
    throw new Error(
      `Key file "${file}" holds no key usable with ${algorithms.join(", ")}`,
    );
  }
  return function keyFor(header: JWTHeaderParameters) {
    const key = keys.get(header.alg);
    if (key === undefined) throw new TypeError(`No key for algorithm ${header.alg}`);
    return key;
  };
}
