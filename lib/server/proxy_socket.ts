/**
 * The sockets of the proxy listener: opening the TCP or TLS listener (ALPN,
 * SNI), and plain Deno.serve for a Deno without the internal API.
 */
import type { ClientHandler, ListenerOptions, ProxyListener } from "./listener_types.ts";
import type { CertificateSource } from "./tls.ts";

/**
 * Whether a second listener may share a port (SO_REUSEPORT): Deno.listenTls
 * takes `reusePort` only under `--unstable-net` (and exits the process when
 * given it without), which is on exactly when its unstable APIs exist.
 */
export const REUSE_PORT =
  typeof (Deno as unknown as Record<string, unknown>).listenDatagram === "function";

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function closeListener(listener: Deno.Listener): void {
  try {
    listener.close();
  } catch { /* already closed */ }
}

export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Plain Deno.serve: what the gateway ran before, for a Deno without the internal API. */
export function serveUnbounded(options: ListenerOptions, handler: ClientHandler): ProxyListener {
  const abort = new AbortController();
  // With TLS: the default pair only, read once (no SNI, no reload).
  const pair = options.tls?.select("");
  const secure = pair !== undefined;
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    signal: abort.signal,
    onListen() {},
    onError: options.onError,
    reusePort: options.reusePort,
    ...pair,
  }, function serve(request, info) {
    return handler(request, { remoteAddr: info.remoteAddr, localAddr: server.addr, secure });
  });
  let stopped: Promise<void> | undefined;
  return {
    addr: server.addr,
    bounded: false,
    setBounds() {},
    shutdown: () => stopped ??= server.shutdown(),
    async close() {
      // Once a graceful shutdown has begun, the server's resource is gone and
      // an abort would throw (uncaught): nothing more can be cut off then.
      if (stopped !== undefined) return;
      abort.abort();
      await server.finished.catch(() => {});
    },
  };
}

/** Opens the proxy's TCP or TLS listener; with TLS, ALPN offers h2 and http/1.1 and SNI picks the pair. */
export function openSocket(options: {
  hostname: string;
  port: number;
  tls?: CertificateSource;
  /** Deno's unstable SNI resolver key; absent: one pair for every client. */
  resolverSymbol?: symbol;
  /** Called for every server name the resolver is asked for. */
  onServerName: () => void;
  /** SO_REUSEPORT on the plain TCP listener too (worker threads share the port). */
  reusePort?: boolean;
}): Deno.Listener {
  const { hostname, port, tls, resolverSymbol } = options;
  if (tls === undefined) return Deno.listen({ hostname, port, reusePort: options.reusePort });
  const tlsOptions: Deno.ListenTlsOptions & Record<symbol, unknown> = {
    hostname,
    port,
    alpnProtocols: ["h2", "http/1.1"],
  };
  // A later listener on this port takes over when the certificates change.
  if (REUSE_PORT) tlsOptions.reusePort = true;
  if (resolverSymbol === undefined) {
    // No SNI: the default pair for every client.
    return Deno.listenTls({ ...tlsOptions, ...tls.select("") });
  }
  tlsOptions[resolverSymbol] = (serverName: string) => {
    options.onServerName();
    return tls.select(serverName);
  };
  return Deno.listenTls(tlsOptions as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem);
}
