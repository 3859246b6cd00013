/**
 * The filters of one HTTPRoute rule: header modifiers, RequestRedirect,
 * URLRewrite, RequestMirror, ExtensionRef. What Vanguard cannot run
 * exactly drops the rule; an ExtensionRef (which must not be skipped)
 * makes the rule answer 500; a mirror to an unresolvable backend is left
 * out with ResolvedRefs False (spec).
 *
 * @module
 */
import type {
  HeaderChanges,
  MirrorConfig,
  RedirectConfig,
  RewriteConfig,
} from "../config/types.ts";
import { checkHostPattern } from "../routing/match.ts";
import type { HTTPHeaderFilter, HTTPPathModifier, HTTPRouteFilter } from "./objects.ts";
import { canonicalPathValue, canonicalPrefix } from "./paths.ts";
import { resolveBackendRef } from "./references.ts";
import {
  type CompiledMatch,
  drop,
  HEADER_NAME,
  routeName,
  type RuleContext,
} from "./rule_context.ts";

/** Headers a filter may not change (as for the config's request_headers). */
const RESERVED = new Set([
  "connection",
  "transfer-encoding",
  "content-length",
  "host",
  "x-vanguard-consumer",
]);
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);

/** A rule's filters, compiled. */
export interface CompiledFilters {
  readonly changes: {
    readonly requestHeaders?: HeaderChanges;
    readonly responseHeaders?: HeaderChanges;
    readonly rewrite?: RewriteConfig;
    readonly mirror?: MirrorConfig;
  };
  readonly redirect?: RedirectConfig;
  /** Set when a filter cannot run: every request of the rule answers 500 with this. */
  readonly failure?: string;
}

/** Compiles a rule's filters, in order. */
export function compileFilters(
  filters: readonly HTTPRouteFilter[],
  matches: readonly CompiledMatch[],
  at: string,
  ctx: RuleContext,
): CompiledFilters {
  const changes: {
    requestHeaders?: HeaderChanges;
    responseHeaders?: HeaderChanges;
    rewrite?: RewriteConfig;
    mirror?: MirrorConfig;
  } = {};
  let redirect: RedirectConfig | undefined;
  let failure: string | undefined;
  const seen = new Set<string>();
  filters.forEach((filter, i) => {
    const field = `${at}.filters[${i}]`;
    if (
      seen.has(filter.type) && filter.type !== "RequestMirror" && filter.type !== "ExtensionRef"
    ) {
      drop(field, `filter ${filter.type} may appear only once in a rule`);
    }
    seen.add(filter.type);
    switch (filter.type) {
      case "RequestHeaderModifier":
        changes.requestHeaders = headerChanges(filter.requestHeaderModifier, field);
        break;
      case "ResponseHeaderModifier":
        changes.responseHeaders = headerChanges(filter.responseHeaderModifier, field);
        break;
      case "RequestRedirect":
        redirect = redirectOf(filter.requestRedirect, matches, field);
        break;
      case "URLRewrite":
        changes.rewrite = rewriteOf(filter.urlRewrite, matches, field);
        break;
      case "RequestMirror": {
        const mirror = mirrorOf(filter.requestMirror, field, ctx);
        if (mirror !== undefined && changes.mirror !== undefined) {
          ctx.warnings.push(
            `${routeName(ctx.route)} ${field}: only the first RequestMirror of a rule is served`,
          );
        } else if (mirror !== undefined) changes.mirror = mirror;
        break;
      }
      case "ExtensionRef": {
        const ref = filter.extensionRef;
        const shown = ref === undefined ? "" : ` ${ref.kind}.${ref.group} ${ref.name}`;
        failure = `Filter ExtensionRef${shown} is not supported by Vanguard`;
        ctx.problems.push({
          reason: "InvalidKind",
          message: `${field}: ExtensionRef${shown} is not a filter Vanguard knows`,
        });
        break;
      }
      default:
        drop(field, `filter type ${JSON.stringify(filter.type)} is not supported by Vanguard`);
    }
  });
  if (redirect !== undefined && changes.rewrite !== undefined) {
    drop(
      `${at}.filters`,
      "RequestRedirect and URLRewrite cannot be combined",
      "IncompatibleFilters",
    );
  }
  // A filter that cannot run must not be skipped: the rule answers 500 instead (spec).
  if (failure !== undefined) return { changes, failure };
  return { changes, ...(redirect !== undefined ? { redirect } : {}) };
}

function headerChanges(spec: HTTPHeaderFilter | undefined, at: string): HeaderChanges {
  if (spec === undefined) drop(at, "the filter's settings are missing");
  const names = new Set<string>();
  const name = (raw: string, field: string) => {
    const lower = raw.toLowerCase();
    if (!HEADER_NAME.test(raw)) drop(field, `${JSON.stringify(raw)} is not a header name`);
    if (RESERVED.has(lower)) drop(field, `header ${JSON.stringify(raw)} may not be changed`);
    // The spec: one action per header name, or the filter is invalid.
    if (names.has(lower)) drop(field, `header ${JSON.stringify(raw)} is named twice`);
    names.add(lower);
    return lower;
  };
  const pairs = (list: HTTPHeaderFilter["set"], kind: string) =>
    (list ?? []).map((h, i): [string, string] => {
      const field = `${at}.${kind}[${i}]`;
      if (/[\r\n\0]/.test(h.value)) drop(field, "value must not contain CR, LF or NUL");
      return [name(h.name, field), h.value];
    });
  return {
    set: pairs(spec.set, "set"),
    add: pairs(spec.add, "add"),
    remove: (spec.remove ?? []).map((n, i) => name(n, `${at}.remove[${i}]`)),
  };
}

/** A ReplaceFullPath or ReplacePrefixMatch, as RedirectConfig / RewriteConfig fields. */
function pathChange(
  modifier: HTTPPathModifier | undefined,
  matches: readonly CompiledMatch[],
  at: string,
): { path: string } | { pathPrefix: string } | Record<never, never> {
  if (modifier === undefined) return {};
  if (modifier.type === "ReplaceFullPath") {
    const checked = canonicalPathValue(modifier.replaceFullPath ?? "");
    if ("problem" in checked) drop(`${at}.replaceFullPath`, checked.problem);
    return { path: checked.path };
  }
  if (modifier.type === "ReplacePrefixMatch") {
    if (matches.some((m) => m.path.pathKind !== undefined)) {
      drop(at, "ReplacePrefixMatch needs PathPrefix matches only");
    }
    const raw = modifier.replacePrefixMatch ?? "";
    const checked = canonicalPrefix(raw === "" ? "/" : raw);
    if ("problem" in checked) drop(`${at}.replacePrefixMatch`, checked.problem);
    return { pathPrefix: checked.path };
  }
  drop(`${at}.type`, `path modifier ${JSON.stringify(modifier.type)} is not supported`);
}

function preciseHost(value: string, at: string): string {
  const checked = checkHostPattern(value);
  if ("problem" in checked || checked.host.startsWith("*.")) {
    drop(at, `must be a host name, got ${JSON.stringify(value)}`);
  }
  return checked.host;
}

function redirectOf(
  spec: HTTPRouteFilter["requestRedirect"],
  matches: readonly CompiledMatch[],
  at: string,
): RedirectConfig {
  if (spec === undefined) drop(at, "the filter's settings are missing");
  const scheme = spec.scheme;
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
    drop(`${at}.scheme`, `scheme ${JSON.stringify(scheme)} is not supported`);
  }
  const status = spec.statusCode ?? 302;
  if (!REDIRECT_CODES.has(status)) {
    drop(`${at}.statusCode`, `status ${status} is not one of 301, 302, 303, 307, 308`);
  }
  if (
    spec.port !== undefined &&
    !(Number.isInteger(spec.port) && spec.port >= 1 && spec.port <= 65535)
  ) {
    drop(`${at}.port`, `port ${spec.port} is not a port number`);
  }
  return {
    ...(scheme !== undefined ? { scheme } : {}),
    ...(spec.hostname !== undefined ? { host: preciseHost(spec.hostname, `${at}.hostname`) } : {}),
    ...(spec.port !== undefined ? { port: spec.port } : {}),
    ...pathChange(spec.path, matches, `${at}.path`),
    status: status as RedirectConfig["status"],
  };
}

function rewriteOf(
  spec: HTTPRouteFilter["urlRewrite"],
  matches: readonly CompiledMatch[],
  at: string,
): RewriteConfig {
  if (spec === undefined) drop(at, "the filter's settings are missing");
  return {
    ...(spec.hostname !== undefined ? { host: preciseHost(spec.hostname, `${at}.hostname`) } : {}),
    ...pathChange(spec.path, matches, `${at}.path`),
  };
}

function mirrorOf(
  spec: HTTPRouteFilter["requestMirror"],
  at: string,
  ctx: RuleContext,
): MirrorConfig | undefined {
  if (spec === undefined) drop(at, "the filter's settings are missing");
  let percent = 100;
  if (spec.percent !== undefined) percent = spec.percent;
  else if (spec.fraction !== undefined) {
    const { numerator, denominator = 100 } = spec.fraction;
    if (!(denominator > 0) || !(numerator >= 0) || numerator > denominator) {
      drop(`${at}.fraction`, `${numerator}/${denominator} is not a fraction between 0 and 1`);
    }
    percent = (numerator / denominator) * 100;
  }
  if (!(percent >= 0 && percent <= 100)) drop(`${at}.percent`, `${percent} is not 0 to 100`);
  const resolved = resolveBackendRef(spec.backendRef, ctx.route.metadata.namespace, ctx.refs);
  if (resolved.problem !== undefined) {
    // An unresolved mirror is dropped, the rule still served (spec).
    ctx.problems.push({ ...resolved.problem, message: `${at}: ${resolved.problem.message}` });
    return undefined;
  }
  return { serviceName: resolved.serviceName, percent };
}
