/**
 * How an upstream exchange fails before its response starts: the error the
 * upstream client rejects with, and the mapping from what Deno throws.
 */
import { ProtocolError } from "./http1.ts";
import { TlsVerifyError } from "./pool.ts";

/** Why an upstream exchange failed before a response started. */
export type UpstreamFailure =
  | "refused"
  | "reset"
  | "timeout"
  | "dns"
  | "aborted"
  | "body_too_large"
  | "protocol"
  | "denied"
  | "invalid_request"
  | "tls";

/** An upstream exchange that failed before response headers arrived. */
export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  /** Whether any request body byte was read from the client to be sent. */
  readonly bodyStarted: boolean;
  /** Whether the request went out on a pooled (reused) connection. */
  readonly reusedConnection: boolean;
  /** Whether any byte of a response arrived on this exchange. */
  readonly responseStarted: boolean;

  constructor(
    kind: UpstreamFailure,
    message: string,
    options: {
      bodyStarted: boolean;
      reusedConnection: boolean;
      responseStarted?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "UpstreamError";
    this.kind = kind;
    this.bodyStarted = options.bodyStarted;
    this.reusedConnection = options.reusedConnection;
    this.responseStarted = options.responseStarted ?? false;
  }
}

/** `error` (from connecting, writing or reading) as an UpstreamError of the right kind. */
export function classify(
  error: unknown,
  options: { bodyStarted: boolean; reusedConnection: boolean; responseStarted: boolean },
): UpstreamError {
  if (error instanceof UpstreamError) return error;
  const withCause = { ...options, cause: error };
  if (error instanceof ProtocolError) {
    return new UpstreamError("protocol", error.message, withCause);
  }
  if (error instanceof TlsVerifyError) return new UpstreamError("tls", error.message, withCause);
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new UpstreamError("refused", "connection refused", withCause);
  }
  if (error instanceof Deno.errors.TimedOut) {
    return new UpstreamError("timeout", "connect timed out", withCause);
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return new UpstreamError(
      "denied",
      "connection not permitted by the gateway's --allow-net permission",
      withCause,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.NotFound || /lookup|resolve|dns/i.test(message)) {
    return new UpstreamError("dns", "host name not found", withCause);
  }
  return new UpstreamError("reset", "connection reset before a response", withCause);
}
