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
  /** Where the address and credentials came from, for messages: `kubeconfig /etc/vanguard/kubeconfig`. */
  readonly source: string;
  /** What an operator can change when the server cannot be used, for messages. */
  readonly advice: string;
  /**
   * The namespace of the current context (in a cluster: the pod's, from the
   * service account), if it names one.
   */
  readonly namespace?: string;
  /** Sends a GET for `path` (with query) with fresh credentials. */
  get(path: string, signal: AbortSignal): Promise<Response>;
  /**
   * Sends a write (`POST`, `PUT`, `PATCH`) with a JSON body; `contentType`
   * defaults to `application/json` (a merge patch names its own).
   */
  send(request: KubeWrite): Promise<Response>;
  /** Releases the TLS client. */
  close(): void;
}

/** One write to the API server. */
export interface KubeWrite {
  readonly method: "POST" | "PUT" | "PATCH";
  readonly path: string;
  readonly body: unknown;
  readonly contentType?: string;
  readonly signal: AbortSignal;
}

/** Where the credentials come from. */
export interface KubeAccessOptions {
  /** An explicit kubeconfig file (absolute). */
  readonly kubeconfig?: string;
  readonly env: (name: string) => string | undefined;
}

type KubeConfig = InstanceType<typeof import("@kubernetes/client-node").KubeConfig>;

/** Where credentials will be loaded from, decided before the client is imported. */
interface Origin {
  readonly source: string;
  readonly advice: string;
  load(kc: KubeConfig, fresh: () => KubeConfig): void;
}

const OR_DISABLE = "or set discovery.kubernetes.enabled: false";

/**
 * Loads the kubeconfig (or in-cluster credentials); throws a one-line
 * message that names the file or address and what to change when it cannot.
 */
export async function loadKubeAccess(options: KubeAccessOptions): Promise<KubeAccess> {
  const origin = locateCredentials(options);
  // Loaded only when discovery is on: the client is large, and its `debug`
  // dependency reads the whole environment at import.
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  const { source, advice } = origin;
  try {
    origin.load(kc, () => new KubeConfig());
  } catch (error) {
    throw new Error(
      `Kubernetes credentials from ${source} cannot be loaded: ${firstLine(error)}; ${advice}`,
    );
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null || !cluster.server) {
    throw new Error(`Kubernetes credentials from ${source} name no current cluster; ${advice}`);
  }
  try {
    new URL(cluster.server);
  } catch {
    throw new Error(
      `Kubernetes cluster "${cluster.name}" in ${source} has server ${
        JSON.stringify(cluster.server)
      }, which is not a URL; ${advice}`,
    );
  }
  const plainHttp = cluster.server.startsWith("http:");
  // Over plain HTTP there is no certificate to skip: the flag means nothing
  // (kubectl proxy and local test servers are often written this way).
  if (cluster.skipTLSVerify && !plainHttp) {
    throw new Error(
      `Kubernetes cluster "${cluster.name}" in ${source} sets insecure-skip-tls-verify, which Vanguard does not support for ${cluster.server}: give its CA (certificate-authority or certificate-authority-data) instead`,
    );
  }
  type HttpsOptions = Parameters<typeof kc.applyToHTTPSOptions>[0];
  const credentials = async () => {
    const opts: { ca?: unknown; cert?: unknown; key?: unknown; headers?: Record<string, string> } =
      { headers: {} };
    try {
      await kc.applyToHTTPSOptions(opts as HttpsOptions);
    } catch (error) {
      // For a plain-HTTP server without insecure-skip-tls-verify the client
      // fills in the credentials and then refuses to build an HTTP agent,
      // which we do not use anyway.
      if (!plainHttp) throw error;
    }
    return opts;
  };
  let tls: Awaited<ReturnType<typeof credentials>>;
  try {
    tls = await credentials();
  } catch (error) {
    throw new Error(
      `Kubernetes credentials from ${source} cannot be used: ${firstLine(error)}; ${advice}`,
    );
  }
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
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace || undefined;
  return {
    server,
    source,
    advice,
    namespace,
    async get(path, signal) {
      // Asked per request: a projected service-account token rotates.
      const { headers } = await credentials();
      return await fetch(server + path, {
        headers: { ...headers, accept: "application/json" },
        signal,
        client,
      });
    },
    async send(request) {
      const { headers } = await credentials();
      return await fetch(server + request.path, {
        method: request.method,
        headers: {
          ...headers,
          accept: "application/json",
          "content-type": request.contentType ?? "application/json",
        },
        body: JSON.stringify(request.body),
        signal: request.signal,
        client,
      });
    },
    close() {
      client?.close();
    },
  };
}

/**
 * Chooses the credentials as client-go does (explicit file, in-cluster,
 * $KUBECONFIG, ~/.kube/config) and checks that the files exist, so that a
 * wrong path is reported as such rather than as a permission problem or as
 * the client's silent fallback to http://localhost:8080.
 */
function locateCredentials(options: KubeAccessOptions): Origin {
  if (options.kubeconfig !== undefined) {
    const path = options.kubeconfig;
    const advice = `check discovery.kubernetes.kubeconfig ${OR_DISABLE}`;
    requireFile(path, `Kubernetes kubeconfig ${path}`, advice);
    return { source: `kubeconfig ${path}`, advice, load: (kc) => kc.loadFromFile(path) };
  }
  if (options.env("KUBERNETES_SERVICE_HOST")) {
    return {
      source: "the in-cluster service account",
      advice:
        `check the pod's service account and its network access to the API server ${OR_DISABLE}`,
      load: (kc) => kc.loadFromCluster(),
    };
  }
  const variable = options.env("KUBECONFIG");
  if (variable) {
    const files = variable.split(Deno.build.os === "windows" ? ";" : ":").filter(Boolean);
    const advice = `check $KUBECONFIG, set discovery.kubernetes.kubeconfig ${OR_DISABLE}`;
    for (const file of files) {
      requireFile(file, `Kubernetes kubeconfig ${file} (from $KUBECONFIG)`, advice);
    }
    return {
      source: `$KUBECONFIG ${variable}`,
      advice,
      load(kc, fresh) {
        kc.loadFromFile(files[0]);
        for (const file of files.slice(1)) {
          const more = fresh();
          more.loadFromFile(file);
          kc.mergeConfig(more);
        }
      },
    };
  }
  const home = options.env("HOME");
  const path = home ? `${home}/.kube/config` : undefined;
  const problem = path === undefined ? "$HOME is not set" : fileProblem(path);
  const advice = `set discovery.kubernetes.kubeconfig ${OR_DISABLE}`;
  if (problem !== undefined) {
    throw new Error(
      `Kubernetes discovery is on but has no usable kubeconfig (not in a cluster, $KUBECONFIG is not set, ${
        path ?? "~/.kube/config"
      } ${problem}); ${advice}`,
    );
  }
  return { source: `kubeconfig ${path}`, advice, load: (kc) => kc.loadFromFile(path!) };
}

function requireFile(path: string, what: string, advice: string): void {
  const problem = fileProblem(path);
  if (problem !== undefined) throw new Error(`${what} ${problem}; ${advice}`);
}

/** Why `path` cannot be read as a file, or undefined when it can. */
function fileProblem(path: string): string | undefined {
  try {
    return Deno.statSync(path).isFile ? undefined : "is not a file";
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "does not exist";
    if (error instanceof Deno.errors.NotCapable) {
      return "cannot be read under this process's --allow-read (deno task start may read only files inside the project directory)";
    }
    if (error instanceof Deno.errors.PermissionDenied) return "cannot be read: permission denied";
    return `cannot be read: ${firstLine(error)}`;
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}
