/**
 * One canonical path per request. The router and the upstream must see the
 * same path, or an attacker can pick a spelling that one reads as "public"
 * and the other as "protected" (Envoy CVE-2019-9901, Traefik CVE-2025-32431).
 * So: decode percent-escapes once, refuse what cannot be made unambiguous,
 * merge repeated slashes, and re-encode the result for the upstream.
 */

/** A canonical path, decoded for routing and encoded for forwarding. */
export interface CanonicalPath {
  /** Decoded segments joined by `/`: what routes match on. */
  readonly path: string;
  /** The same segments, each percent-encoded where RFC 3986 requires. */
  readonly encoded: string;
}

/** Why a path was refused; the message is safe to show the client. */
export interface PathRejection {
  readonly rejected: string;
}

// A path made only of pchar and "/" (RFC 3986 3.3), without "%": nothing to
// decode or encode, so the fast path returns it as it is once the dot and
// empty segments are ruled out.
const PLAIN_PATH = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;
// Control characters are exactly what this must find.
// deno-lint-ignore no-control-regex
const UNSAFE_DECODED = /[\x00-\x1f\x7f/\\]/;
// Servlet containers cut a segment at ";" (path parameters) and others do not,
// so "/admin;x/y" is a different path to each: refuse it rather than guess.
const PATH_PARAMETER = ";";

/** Decodes and normalizes a raw request path (without the query), or says why not. */
export function canonicalizePath(raw: string): CanonicalPath | PathRejection {
  if (raw.length === 0 || raw.charCodeAt(0) !== 0x2f /* / */) {
    return { rejected: "Request path must start with /" };
  }
  if (PLAIN_PATH.test(raw) && !raw.includes("//") && !hasDotSegment(raw)) {
    return { path: raw, encoded: raw };
  }
  const parts = raw.split("/");
  const decoded: string[] = [];
  const encoded: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i];
    if (part === "") continue; // "//" merges into "/", as most upstreams read it
    if (part.includes("\\")) return { rejected: "Request path must not contain a backslash" };
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return { rejected: "Request path has an invalid percent-encoding" };
    }
    // A lone surrogate survives decodeURIComponent but makes encodeSegment throw.
    if (!segment.isWellFormed()) return { rejected: "Request path is not valid UTF-8" };
    if (UNSAFE_DECODED.test(segment)) {
      return {
        rejected:
          "Request path must not contain an encoded slash or backslash, or control characters",
      };
    }
    if (segment.includes(PATH_PARAMETER)) {
      return { rejected: "Request path must not contain ';' (path parameters are ambiguous)" };
    }
    if (segment === "." || segment === "..") {
      return { rejected: "Request path must not contain dot-segments" };
    }
    decoded.push(segment);
    encoded.push(encodeSegment(segment));
  }
  const trailing = raw.length > 1 && raw.endsWith("/") && decoded.length > 0 ? "/" : "";
  return {
    path: "/" + decoded.join("/") + trailing,
    encoded: "/" + encoded.join("/") + trailing,
  };
}

/** True when the argument is a rejection rather than a path. */
export function isRejection(result: CanonicalPath | PathRejection): result is PathRejection {
  return (result as PathRejection).rejected !== undefined;
}

function hasDotSegment(path: string): boolean {
  if (!path.includes(".")) return false;
  for (const segment of path.split("/")) {
    if (segment === "." || segment === "..") return true;
  }
  return false;
}

const KEEP_SUBDELIMS = /%(?:24|26|2B|2C|3D|3A|40)/g;

/** Percent-encodes one decoded segment, keeping the pchar characters readable. */
export function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    KEEP_SUBDELIMS,
    (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)),
  );
}

/**
 * Checks a configured route prefix (config file or Service annotation) and
 * returns it canonical (no trailing slash except `/`), or a problem. A
 * prefix must be a path that canonicalizePath() could produce, or no
 * request could ever match it.
 */
export function checkPathPrefix(value: string): { prefix: string } | { problem: string } {
  const shown = JSON.stringify(value);
  if (!value.startsWith("/")) return { problem: `must start with "/", got ${shown}` };
  const forbidden: [string, string][] = [
    ["%", `"%"`],
    ["\\", "a backslash"],
    ["?", `"?"`],
    ["#", `"#"`],
    [";", `";"`],
    ["//", `"//"`],
  ];
  for (const [needle, label] of forbidden) {
    if (value.includes(needle)) return { problem: `must not contain ${label}, got ${shown}` };
  }
  // Requests arrive percent-encoded, so a raw space or control character could never match.
  if ([...value].some((char) => char <= " " || char === "\x7f")) {
    return { problem: `must not contain whitespace or control characters, got ${shown}` };
  }
  if (value.split("/").some((segment) => segment === "." || segment === "..")) {
    return { problem: `must not contain "." or ".." segments, got ${shown}` };
  }
  return { prefix: value.length > 1 && value.endsWith("/") ? value.slice(0, -1) : value };
}
