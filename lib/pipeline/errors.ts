/**
 * The one error family of the request path: middleware throws these and the
 * error boundary turns them into JSON responses with a stable `code`.
 */
export class GatewayError extends Error {
  /** HTTP status sent to the client. */
  readonly status: number;
  /** Stable machine-readable code, e.g. `route_not_found`. */
  readonly code: string;
  /** Extra response headers, e.g. `WWW-Authenticate` or `Retry-After`. */
  readonly headers?: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: string,
    message: string,
    options?: { headers?: Record<string, string>; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GatewayError";
    this.status = status;
    this.code = code;
    this.headers = options?.headers;
  }
}
