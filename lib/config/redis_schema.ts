/**
 * The `redis:` section: one server (`url`, `url_env`), a Redis Cluster (`cluster`) or a master
 * found through Sentinel (`sentinel`), exactly one of them, and how the limiter behaves when
 * Redis fails. Passwords come from environment variables (`*_env`), TLS from `rediss://`.
 *
 * @module
 */

import {
  choice,
  defaulted,
  integer,
  INVALID,
  list,
  object,
  optional,
  reject,
  report,
  required,
  text,
} from "./schema.ts";
import { nonEmpty, redisUrl } from "./rules.ts";
import { setEnv } from "./secrets.ts";

/**
 * A Redis Cluster node or Sentinel (`redis.cluster.nodes[]`, `redis.sentinel.sentinels[]`):
 * `redis://host[:port]` or `rediss://` for TLS, `defaultPort` when none is written. Without
 * credentials (they come from `password_env`), database, path or query.
 */
export function redisNode(
  defaultPort: number,
): (value: string) => { host: string; port: number; tls: boolean } {
  return function convertRedisNode(value) {
    redisUrl(value);
    const url = new URL(value);
    if (url.username !== "" || url.password !== "") {
      reject("must not hold credentials; give the password with password_env");
    }
    if (url.hostname === "") reject(`must name a host, got ${JSON.stringify(value)}`);
    if ((url.pathname !== "" && url.pathname !== "/") || /[?#]/.test(value)) {
      reject(
        `must be only ${url.protocol}//host:port (no database, path or query), got ${
          JSON.stringify(value)
        }`,
      );
    }
    return {
      // An IPv6 literal comes bracketed; the client wants it bare.
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? defaultPort : Number(url.port),
      tls: url.protocol === "rediss:",
    };
  };
}

/** Node URLs of one scheme (TLS for all or none), no node twice. */
function redisNodes(defaultPort: number) {
  return required(list(text(redisNode(defaultPort)), {
    nonEmpty: true,
    refine(items, { nodes, path, walk }) {
      const seen = new Map<string, number>();
      let first: { index: number; tls: boolean } | undefined;
      items.forEach((item, index) => {
        if (item === INVALID) return;
        const field = `${path}[${index}]`;
        first ??= { index, tls: item.tls };
        if (item.tls !== first.tls) {
          report(walk, {
            node: nodes[index],
            field,
            message: `must use the scheme of ${path}[${first.index}] (${
              first.tls ? "rediss" : "redis"
            }://): TLS is for all nodes or none`,
          });
        }
        const address = `${item.host}:${item.port}`;
        const earlier = seen.get(address);
        if (earlier === undefined) seen.set(address, index);
        else {
          report(walk, {
            node: nodes[index],
            field,
            message: `duplicate node ${address} (already ${path}[${earlier}])`,
          });
        }
      });
    },
  }));
}

/** `redis:` */
export const redisSchema = object({
  url: optional(text(redisUrl)),
  url_env: optional(text(setEnv)),
  cluster: optional(object({
    nodes: redisNodes(6379),
    password_env: optional(text(setEnv)),
  })),
  sentinel: optional(object({
    sentinels: redisNodes(26379),
    name: required(text(nonEmpty)),
    password_env: optional(text(setEnv)),
    sentinel_password_env: optional(text(setEnv)),
  })),
  failure_mode: defaulted(choice(["open", "closed", "local"]), "local"),
  timeout_ms: defaulted(integer(1, 10_000), 50),
}, { exclusive: [["url", "url_env", "cluster", "sentinel"]] });
