/**
 * The rules of the admin listener's keys (`server.admin_host`, `server.admin_token_env`): the
 * token's variable must hold a token long enough to resist guessing, and an admin listener
 * reachable from other hosts without a token is a loud warning.
 *
 * @module
 */

import { type Node, reject, report, type Walk } from "./schema.ts";
import { readEnv, setEnv } from "./secrets.ts";

/** The shortest admin token accepted, in characters (as for API keys). */
export const MIN_ADMIN_TOKEN_CHARS = 16;

/** `server.admin_token_env`: a variable that is set and holds a token long enough. */
export function adminTokenEnv(value: string, walk: Walk): string {
  // Set and not empty, judged as every other `*_env` key is.
  setEnv(value, walk);
  const read = readEnv(value, walk);
  if ("value" in read && [...read.value].length < MIN_ADMIN_TOKEN_CHARS) {
    reject(
      `token in ${
        JSON.stringify(value)
      } is too short (at least ${MIN_ADMIN_TOKEN_CHARS} characters; make one with: openssl rand -hex 32)`,
    );
  }
  return value;
}

/**
 * Whether `host` (an address or name to bind to) only accepts connections from this machine:
 * 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`.
 */
export function isLoopbackHost(host: string): boolean {
  const name = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (/^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) return true;
  return /^(0{0,4}:){2,7}0{0,3}1$/.test(name) || name === "::1";
}

/**
 * Warns when the admin listener is reachable from other hosts and asks for no token: /metrics,
 * /routes and the dashboard then show the topology of the cluster to anyone who can connect.
 * A warning, not a problem: a Kubernetes pod must bind beyond loopback for the kubelet's probes,
 * and a NetworkPolicy or an unpublished port may be all the protection some operators want.
 */
export function warnAboutOpenAdmin(
  server: { adminHost: string; adminPort: number; adminTokenEnv?: string },
  walk: Walk,
): void {
  if (server.adminTokenEnv !== undefined || isLoopbackHost(server.adminHost)) return;
  report(walk, {
    node: walk.doc.getIn(["server", "admin_host"], true) as Node | undefined,
    field: "server.admin_host",
    message: `${server.adminHost} is not a loopback address and server.admin_token_env is not ` +
      `set: /metrics, /routes and /dashboard on port ${server.adminPort} answer anyone who can ` +
      "reach it; set admin_token_env, or keep the port unreachable from outside",
    warning: true,
  });
}
