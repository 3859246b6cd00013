import type { AuthConfig } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { GatewayError } from "../pipeline/errors.ts";
import { ApiKeys } from "./api_keys.ts";
import { type JwksCachePolicy, JwksUnavailableError } from "./jwks.ts";
import { JwtVerifier } from "./jwt.ts";

/**
 * Why a request was refused, for metrics (never anything secret);
 * `unconfigured`: the route needs auth but the config has no auth method.
 */
export type AuthFailure =
  | "missing"
  | "invalid"
  | "expired"
  | "malformed"
  | "unavailable"
  | "unconfigured";

/**
 * The challenge of a 401 when no auth method is configured. RFC 9110
 * (section 11.6.1) requires at least one challenge in a 401; inviting a
 * Bearer token or an API key that the gateway has no way to check would
 * send clients and their developers after credentials that cannot work.
 * `Vanguard` is no registered scheme, so no client will try to answer it,
 * and its parameters say why.
 */
export const UNCONFIGURED_CHALLENGE =
  'Vanguard realm="vanguard", error="no_auth_method_configured", error_description="no authentication method is configured on this gateway"';

/** A refused credential: the GatewayError to answer with and the metric reason. */
export class AuthError extends GatewayError {
  readonly reason: AuthFailure;

  constructor(
    status: number,
    reason: AuthFailure,
    message: string,
    challenge: string,
    cause?: unknown,
  ) {
    super(
      status,
      status === 401 ? "unauthorized" : status === 400 ? "bad_request" : "auth_unavailable",
      message,
      {
        headers: status === 401 ? { "www-authenticate": challenge } : undefined,
        cause,
      },
    );
    this.reason = reason;
  }
}

// Generous for real tokens (a JWT with many claims is a few KB), small
// enough that nobody makes the gateway hash or parse megabytes.
const MAX_CREDENTIAL_LENGTH = 8192;
const BEARER = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*) *$/i;

/**
 * Checks the credentials of a request against every configured method: a
 * valid API key or a valid JWT admits it. Built once per config.
 */
export class Authenticator {
  /** Headers that carry credentials (lower-case), removed upstream unless a route forwards them. */
  readonly credentialHeaders: readonly string[];
  readonly #apiKeys?: ApiKeys;
  readonly #jwt?: JwtVerifier;
  readonly #challenge: string;

  private constructor(apiKeys: ApiKeys | undefined, jwt: JwtVerifier | undefined) {
    this.#apiKeys = apiKeys;
    this.#jwt = jwt;
    const challenges: string[] = [];
    if (jwt) challenges.push('Bearer realm="vanguard"');
    if (apiKeys) challenges.push(`ApiKey realm="vanguard", header="${apiKeys.header}"`);
    // With no method configured, protected routes still fail closed.
    this.#challenge = challenges.join(", ") || UNCONFIGURED_CHALLENGE;
    this.credentialHeaders = [
      ...(apiKeys ? [apiKeys.header] : []),
      ...(jwt ? ["authorization"] : []),
    ];
  }

  /** Builds the configured methods; throws when a key source cannot be used. */
  static async create(config: AuthConfig, deps: {
    env: (name: string) => string | undefined;
    readFile: (path: string) => string;
    now: () => number;
    logger: Logger;
    jwksPolicy?: JwksCachePolicy;
  }): Promise<Authenticator> {
    const apiKeys = config.apiKey ? new ApiKeys(config.apiKey, deps.env) : undefined;
    const jwt = config.jwt ? await JwtVerifier.create(config.jwt, deps) : undefined;
    return new Authenticator(apiKeys, jwt);
  }

  /** Whether any auth method is configured (else every protected route answers 401). */
  get configured(): boolean {
    return this.#apiKeys !== undefined || this.#jwt !== undefined;
  }

  /** The consumer id of a request's valid credential; throws AuthError otherwise. */
  async authenticate(headers: Headers): Promise<string> {
    if (!this.configured) {
      throw new AuthError(
        401,
        "unconfigured",
        "This route requires authentication, but no authentication method is configured on this gateway: no credential can be accepted",
        this.#challenge,
      );
    }
    let failure: AuthError | undefined;
    if (this.#apiKeys) {
      const presented = headers.get(this.#apiKeys.header);
      if (presented !== null) {
        const result = this.#checkApiKey(presented);
        if (typeof result === "string") return result;
        failure = result;
      }
    }
    if (this.#jwt) {
      const presented = headers.get("authorization");
      if (presented !== null) {
        const result = await this.#checkBearer(presented);
        if (typeof result === "string") return result;
        // a 503 (keys unavailable) outranks a 401 from the other method
        if (failure === undefined || result.status !== 401) failure = result;
      }
    }
    throw failure ??
      new AuthError(401, "missing", "This route requires authentication", this.#challenge);
  }

  /** Lets background work (a JWKS fetch) finish. */
  async close(): Promise<void> {
    await this.#jwt?.close();
  }

  #checkApiKey(presented: string): string | AuthError {
    // Headers joins repeated fields with ", "; no key we issue contains a
    // comma, so one means the header was sent twice (or is not a key).
    if (presented.includes(",")) {
      return new AuthError(
        400,
        "malformed",
        "The API key header must be sent exactly once",
        this.#challenge,
      );
    }
    const key = presented.trim();
    if (key === "" || key.length > MAX_CREDENTIAL_LENGTH) {
      return this.#invalid("invalid", "API key is not valid");
    }
    const consumer = this.#apiKeys!.verify(key);
    return consumer ?? this.#invalid("invalid", "API key is not valid");
  }

  async #checkBearer(presented: string): Promise<string | AuthError> {
    if (presented.includes(",")) {
      return new AuthError(
        400,
        "malformed",
        "The Authorization header must be sent exactly once",
        this.#challenge,
      );
    }
    if (presented.length > MAX_CREDENTIAL_LENGTH) {
      return this.#invalid("malformed", "Bearer token is too long");
    }
    const match = BEARER.exec(presented);
    if (match === null) return this.#invalid("malformed", "Authorization must be a Bearer JWT");
    try {
      return await this.#jwt!.verify(match[1]);
    } catch (error) {
      return this.#fromJose(error);
    }
  }

  #fromJose(error: unknown): AuthError {
    if (error instanceof JwksUnavailableError) {
      return new AuthError(503, "unavailable", error.message, this.#challenge, error);
    }
    switch ((error as { code?: string }).code) {
      case "ERR_JWT_EXPIRED":
        return this.#invalid("expired", "Token has expired", error);
      case "ERR_JWT_CLAIM_VALIDATION_FAILED":
        return this.#invalid("invalid", `Token is not valid: ${(error as Error).message}`, error);
      case "ERR_JOSE_ALG_NOT_ALLOWED":
        return this.#invalid("invalid", "Token algorithm is not allowed", error);
      case "ERR_JWKS_NO_MATCHING_KEY":
        return this.#invalid("invalid", "No signing key matches the token", error);
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        return this.#invalid("invalid", "Token signature is not valid", error);
      case "ERR_JWS_INVALID":
      case "ERR_JWT_INVALID":
        return this.#invalid("malformed", "Token is malformed", error);
      default:
        return this.#invalid("invalid", "Token is not valid", error);
    }
  }

  #invalid(reason: AuthFailure, message: string, cause?: unknown): AuthError {
    const bearer = this.#jwt !== undefined && reason !== "missing";
    const challenge = bearer
      ? this.#challenge.replace(
        'Bearer realm="vanguard"',
        'Bearer realm="vanguard", error="invalid_token"',
      )
      : this.#challenge;
    return new AuthError(401, reason, message, challenge, cause);
  }
}
