/**
 * Path values of HTTPRoute matches, redirects and rewrites, and of Ingress
 * paths, turned into the routing model's path fields. Requests are routed
 * on their canonical path (lib/routing/path.ts: percent-escapes decoded
 * once), so a value is decoded the same way here; one that no canonical
 * request path could ever equal is refused rather than left never to match.
 *
 * @module
 */
import type { RouteEntry } from "../routing/route.ts";
import { countSegments } from "../routing/table.ts";

/** The path fields of a RouteEntry. */
export type PathFields = Pick<RouteEntry, "pathPrefix" | "pathKind" | "prefixSegments">;

// Control characters are exactly what this must find.
// deno-lint-ignore no-control-regex
const UNROUTABLE = /[\x00-\x1f\x7f/\\;]/;

/**
 * `value` decoded as a canonical request path spells it (a trailing slash
 * kept), or why no request could have that path.
 */
export function canonicalPathValue(value: string): { path: string } | { problem: string } {
  const shown = JSON.stringify(value);
  if (!value.startsWith("/")) return { problem: `must start with "/", got ${shown}` };
  if (value.includes("?") || value.includes("#")) {
    return { problem: `must not contain "?" or "#", got ${shown}` };
  }
  const parts = value.split("/").slice(1);
  const decoded: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === "") {
      if (i === parts.length - 1) break; // a trailing slash (or the root)
      return { problem: `must not contain "//", got ${shown}` };
    }
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return { problem: `has an invalid percent-encoding, got ${shown}` };
    }
    if (UNROUTABLE.test(segment) || segment === "." || segment === "..") {
      return {
        problem: `must not contain an encoded "/" or "\\", ";", control characters or ` +
          `dot-segments (Vanguard refuses such request paths), got ${shown}`,
      };
    }
    decoded.push(segment);
  }
  const trailing = value.length > 1 && value.endsWith("/") ? "/" : "";
  return { path: "/" + decoded.join("/") + (decoded.length > 0 ? trailing : "") };
}

/** A canonical prefix: no trailing slash except the root (`/foo/` matches as `/foo`). */
export function canonicalPrefix(value: string): { path: string } | { problem: string } {
  const checked = canonicalPathValue(value);
  if ("problem" in checked) return checked;
  const path = checked.path;
  return { path: path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path };
}

/** The path fields of an exact-path route. */
export function exactPath(value: string): PathFields | { problem: string } {
  const checked = canonicalPathValue(value);
  if ("problem" in checked) return checked;
  const path = checked.path;
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  return { pathPrefix: path, pathKind: "exact", prefixSegments: countSegments(trimmed) };
}

/** The path fields of a prefix route: `/foo` matches `/foo`, `/foo/` and `/foo/...`. */
export function prefixPath(value: string): PathFields | { problem: string } {
  const checked = canonicalPrefix(value);
  if ("problem" in checked) return checked;
  return { pathPrefix: checked.path, prefixSegments: countSegments(checked.path) };
}
