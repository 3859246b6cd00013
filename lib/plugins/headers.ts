import type { Middleware } from "../pipeline/types.ts";
import { isMap } from "yaml";
import {
  defaulted,
  deref,
  INVALID,
  type Invalid,
  joinPath,
  type Node,
  reject,
  report,
  type Walk,
} from "../config/schema.ts";
import { items, orDefault, plainValue, pluginOptions } from "../config/plugin_options.ts";
import { type MiddlewarePlugin, schemaPlugin } from "./api.ts";

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Hop-by-hop headers and the gateway's own identity headers are not for plugins to forge.
const RESERVED = new Set([
  "connection",
  "transfer-encoding",
  "content-length",
  "host",
  "x-vanguard-consumer",
]);

/** `set:` or `add:`: header name to value, each problem at its own name or value. */
function headerPairs(node: Node, path: string, walk: Walk): [string, string][] | Invalid {
  if (!isMap(node)) {
    report(walk, { node, field: path, message: "must be a mapping of header name to value" });
    return INVALID;
  }
  const out: [string, string][] = [];
  const before = walk.problems.length;
  for (const pair of node.items) {
    const keyNode = deref(pair.key as Node, walk, node);
    const name = String(plainValue(keyNode, walk));
    const valueNode = deref(pair.value as Node, walk, keyNode);
    const value = plainValue(valueNode, walk);
    const field = joinPath(path, name);
    if (!TOKEN.test(name)) {
      report(walk, { node: keyNode, field, message: "not a valid header name" });
    } else if (RESERVED.has(name.toLowerCase())) {
      report(walk, { node: keyNode, field, message: "may not be changed" });
    } else if (typeof value !== "string" && typeof value !== "number") {
      report(walk, { node: valueNode, field, message: "value must be a string" });
    } else if (/[\r\n\0]/.test(String(value))) {
      report(walk, { node: valueNode, field, message: "value must not contain CR, LF or NUL" });
    } else out.push([name.toLowerCase(), String(value)]);
  }
  return walk.problems.length === before ? out : INVALID;
}

function headerToRemove(name: unknown): string {
  if (typeof name === "string" && TOKEN.test(name)) return name.toLowerCase();
  return reject(`${JSON.stringify(name)} is not a header name`);
}

const options = pluginOptions({
  set: defaulted(headerPairs, []),
  add: defaulted(headerPairs, []),
  remove: orDefault(items("must be a list of header names", headerToRemove), []),
}, {
  refine({ set, add, remove }, refiner) {
    if (set.length + add.length + remove.length === 0) {
      refiner.mappingProblem("set, add or remove: give at least one");
    }
  },
});

/** `request_headers`: set, add or remove headers on the request the upstream receives. */
export const requestHeaders: MiddlewarePlugin = schemaPlugin({
  name: "request_headers",
  options,
  build({ set, add, remove }) {
    const middleware: Middleware = function requestHeaders(ctx, next) {
      const changes: Record<string, string | null> = { ...ctx.upstreamHeaders };
      for (const name of remove) changes[name] = null;
      for (const [name, value] of add) {
        const existing = changes[name] ?? ctx.request.headers.get(name);
        changes[name] = existing ? `${existing}, ${value}` : value;
      }
      for (const [name, value] of set) changes[name] = value;
      ctx.upstreamHeaders = changes;
      return next();
    };
    return middleware;
  },
});

/**
 * `response_headers`: set, add or remove headers on the response the
 * client receives (set and add also apply to the gateway's error answers).
 */
export const responseHeaders: MiddlewarePlugin = schemaPlugin({
  name: "response_headers",
  options,
  build({ set, add, remove }) {
    const middleware: Middleware = async function responseHeaders(ctx, next) {
      // Error answers get the set/added headers too (removal only concerns upstream headers).
      ctx.responseHeaders = [...(ctx.responseHeaders ?? []), ...set, ...add];
      const response = await next();
      if (response.status === 101) return response; // a WebSocket upgrade: nothing to edit
      for (const name of remove) response.headers.delete(name);
      for (const [name, value] of add) response.headers.append(name, value);
      for (const [name, value] of set) response.headers.set(name, value);
      return response;
    };
    return middleware;
  },
});
