/**
 * The part of `Deno[Deno.internal]` the bounded listener runs on: Deno's
 * per-connection HTTP server and the resource table. Probed, not assumed,
 * since another Deno version may not have it.
 */

/** What the listener uses of `Deno[Deno.internal]` (present in Deno 2.9.6). */
export interface DenoInternals {
  serveHttpOnConnection(
    conn: Deno.Conn,
    /** Deno only subscribes to its "abort" event, which closes the connection at once. */
    signal: Pick<AbortSignal, "addEventListener">,
    handler: (
      request: Request,
      info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    ) => Response | Promise<Response>,
    onError: (error: unknown) => Response | Promise<Response>,
    onListen: () => void,
  ): Deno.HttpServer<Deno.NetAddr>;
  readonly core: {
    /** Adds a resource and returns its id (resource ids only ever increase). */
    createCancelHandle(): number;
    tryClose(rid: number): void;
    /** Closes a resource; throws BadResource when it is gone. */
    close(rid: number): void;
    readonly internalRidSymbol: symbol;
  };
  /**
   * The key of Deno.listenTls's unstable SNI option: a callback from the
   * client hello's server name ("" for none) to `{ cert, key }`. Deno calls
   * it once per distinct name for the listener's lifetime and keeps the
   * answer (Deno 2.9.6), so a new certificate needs a new listener.
   */
  readonly resolverSymbol?: symbol;
}

/** `Deno[Deno.internal]` when it has what the listener needs, else undefined. */
export function denoInternals(): DenoInternals | undefined {
  // deno-lint-ignore no-explicit-any
  const deno = Deno as any;
  const internal = deno[deno.internal];
  const core = internal?.core;
  if (
    typeof internal?.serveHttpOnConnection !== "function" ||
    typeof core?.createCancelHandle !== "function" ||
    typeof core.tryClose !== "function" ||
    typeof core.close !== "function" ||
    typeof core.internalRidSymbol !== "symbol"
  ) {
    return undefined;
  }
  return internal as DenoInternals;
}
