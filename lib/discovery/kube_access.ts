/**
 * How to reach the API server: address, TLS material and credentials, taken
 * from a kubeconfig or the in-cluster service account by
 * @kubernetes/client-node's KubeConfig. The requests themselves go through
 * Deno's fetch, which reports timeouts and resets that the client's own
 * watch machinery misses under Deno (platform notes).
 */

/** A way to send authenticated requests to the API server. */
export interface KubeAccess {
  /** The API server's base URL, without a trailing slash. */
  readonly server: string;
  /** Sends a GET for `path` (with query) with fresh credentials. */
  get(path: string, signal: AbortSignal): Promise<Response>;
  /** Releases the TLS client. */
  close(): void;
}

/** Where the credentials come from. */
export interface KubeAccessOptions {
  /** An explicit kubeconfig file (absolute). */
  readonly kubeconfig?: string;
  readonly env: (name: string) => string | undefined;
}

/** Loads the kubeconfig (or in-cluster credentials); throws with a clear message when it cannot. */
export async function loadKubeAccess(options: KubeAccessOptions): Promise<KubeAccess> {
  // Loaded only when discovery is on: the client is large, and its `debug`
  // dependency reads the whole environment at import.
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  let source: string;
  try {
    if (options.kubeconfig !== undefined) {
      source = options.kubeconfig;
      kc.loadFromFile(options.kubeconfig);
    } else if (options.env("KUBERNETES_SERVICE_HOST")) {
      source = "the in-cluster service account";
      kc.loadFromCluster();
    } else {
      source = options.env("KUBECONFIG") ?? "~/.kube/config";
      kc.loadFromDefault();
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new Error(
      `Kubernetes discovery is on but its credentials cannot be loaded (${reason}). ` +
        "Allow reading the kubeconfig (--allow-read), or set discovery.kubernetes.enabled: false",
    );
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null || !cluster.server) {
    throw new Error(`Kubernetes credentials from ${source} name no current cluster`);
  }
  if (cluster.skipTLSVerify) {
    throw new Error(
      `Kubernetes cluster "${cluster.name}" sets insecure-skip-tls-verify, which Vanguard does not support: give its CA instead`,
    );
  }
  type HttpsOptions = Parameters<typeof kc.applyToHTTPSOptions>[0];
  const credentials = async () => {
    const opts: { ca?: unknown; cert?: unknown; key?: unknown; headers?: Record<string, string> } =
      { headers: {} };
    try {
      await kc.applyToHTTPSOptions(opts as HttpsOptions);
    } catch (error) {
      // For a plain-HTTP server (a local proxy, a test server) the client
      // fills in the credentials and then refuses to build an HTTPS agent,
      // which we do not use anyway.
      if (!cluster.server.startsWith("http:")) throw error;
    }
    return opts;
  };
  const tls = await credentials();
  const text = (value: unknown) =>
    value === undefined || value === null ? undefined : String(value);
  const ca = text(tls.ca);
  const cert = text(tls.cert);
  const key = text(tls.key);
  const client = ca !== undefined || cert !== undefined
    ? Deno.createHttpClient({
      ...(ca !== undefined ? { caCerts: [ca] } : {}),
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
    })
    : undefined;
  const server = cluster.server.replace(/\/+$/, "");
  return {
    server,
    async get(path, signal) {
      // Asked per request: a projected service-account token rotates.
      const { headers } = await credentials();
      return await fetch(server + path, {
        headers: { ...headers, accept: "application/json" },
        signal,
        client,
      });
    },
    close() {
      client?.close();
    },
  };
}
