import type { Middleware } from "../pipeline/types.ts";
import { type MiddlewarePlugin, optionsObject, parsedPlugin, unknownKeys } from "./api.ts";

interface HeaderRules {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Hop-by-hop headers and the gateway's own identity headers are not for plugins to forge.
const RESERVED = new Set([
  "connection",
  "transfer-encoding",
  "content-length",
  "host",
  "x-vanguard-consumer",
]);

function parse(options: unknown): HeaderRules | string[] {
  const o = optionsObject(options);
  if (typeof o === "string") return [o];
  const problems = unknownKeys(o, ["set", "add", "remove"]);
  const pairs = (key: "set" | "add"): [string, string][] => {
    const value = o[key];
    if (value === undefined) return [];
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      problems.push(`${key}: must be a mapping of header name to value`);
      return [];
    }
    const out: [string, string][] = [];
    for (const [name, v] of Object.entries(value)) {
      if (!TOKEN.test(name)) problems.push(`${key}.${name}: not a valid header name`);
      else if (RESERVED.has(name.toLowerCase())) {
        problems.push(`${key}.${name}: may not be changed`);
      } else if (typeof v !== "string" && typeof v !== "number") {
        problems.push(`${key}.${name}: value must be a string`);
      } else if (/[\r\n\0]/.test(String(v))) {
        problems.push(`${key}.${name}: value must not contain CR, LF or NUL`);
      } else out.push([name.toLowerCase(), String(v)]);
    }
    return out;
  };
  const set = pairs("set");
  const add = pairs("add");
  const removeValue = o.remove ?? [];
  const remove: string[] = [];
  if (!Array.isArray(removeValue)) problems.push("remove: must be a list of header names");
  else {
    for (const name of removeValue) {
      if (typeof name !== "string" || !TOKEN.test(name)) {
        problems.push(`remove: ${JSON.stringify(name)} is not a header name`);
      } else remove.push(name.toLowerCase());
    }
  }
  if (set.length + add.length + remove.length === 0 && problems.length === 0) {
    problems.push("set, add or remove: give at least one");
  }
  return problems.length > 0 ? problems : { set, add, remove };
}

/** `request_headers`: set, add or remove headers on the request the upstream receives. */
export const requestHeaders: MiddlewarePlugin = parsedPlugin({
  name: "request_headers",
  parse,
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
export const responseHeaders: MiddlewarePlugin = parsedPlugin({
  name: "response_headers",
  parse,
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
