/**
 * A Gateway's listeners judged: which ones Vanguard programs (HTTP or
 * HTTPS on one of its own ports, with usable certificates), which routes
 * each admits (allowedRoutes), and the conditions each reports.
 *
 * @module
 */
import { isFalse, isTrue, type WantedCondition } from "./conditions.ts";
import {
  type Gateway,
  GATEWAY_GROUP,
  type LabelSelector,
  type Listener,
  type Namespace,
} from "./objects.ts";
import type { References } from "./references.ts";
import { pemPair } from "./tls_secret.ts";

/** The one route kind Vanguard serves. */
export const HTTP_ROUTE_KIND = { group: GATEWAY_GROUP, kind: "HTTPRoute" } as const;

/** A listener as the translation uses it. */
export interface ListenerState {
  readonly listener: Listener;
  /** Lowercase. */
  readonly hostname?: string;
  /** Whether HTTPRoutes may attach at all (protocol and allowedRoutes.kinds). */
  readonly admitsHTTPRoutes: boolean;
  /** Whether Vanguard serves it: its routes reach the routing table. */
  readonly programmed: boolean;
  readonly accepted: boolean;
  readonly supportedKinds: readonly { readonly group: string; readonly kind: string }[];
  readonly conditions: readonly WantedCondition[];
  readonly certificates: readonly { readonly certPem: string; readonly keyPem: string }[];
  /** Counted while routes attach. */
  attachedRoutes: number;
}

/** What judging listeners needs. */
export interface ListenerContext {
  readonly listenerPorts: readonly number[];
  readonly refs: References;
}

/** Judges every listener of `gateway`, in spec order. */
export function judgeListeners(gateway: Gateway, ctx: ListenerContext): ListenerState[] {
  return gateway.spec.listeners.map((listener) => judgeListener(gateway, listener, ctx));
}

function judgeListener(gateway: Gateway, listener: Listener, ctx: ListenerContext): ListenerState {
  const hostname = listener.hostname?.toLowerCase();
  const http = listener.protocol === "HTTP" || listener.protocol === "HTTPS";

  // allowedRoutes.kinds: HTTPRoute is the only kind served.
  const kinds = listener.allowedRoutes?.kinds;
  const supportedKinds = !http
    ? []
    : kinds === undefined
    ? [HTTP_ROUTE_KIND]
    : kinds.some((k) => (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && k.kind === "HTTPRoute")
    ? [HTTP_ROUTE_KIND]
    : [];
  const invalidKinds = (kinds ?? []).filter((k) =>
    !((k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && k.kind === "HTTPRoute")
  );

  let kindsProblem: WantedCondition | undefined;
  if (invalidKinds.length > 0) {
    const shown = invalidKinds.map((k) => k.group ? `${k.kind}.${k.group}` : k.kind).join(", ");
    kindsProblem = isFalse(
      "ResolvedRefs",
      "InvalidRouteKinds",
      `Route kinds ${shown} are not supported: Vanguard serves HTTPRoute`,
    );
  }

  let acceptProblem: WantedCondition | undefined;
  let portProblem = false;
  if (!http) {
    acceptProblem = isFalse(
      "Accepted",
      "UnsupportedProtocol",
      `Protocol ${listener.protocol} is not supported: Vanguard serves HTTP and HTTPS`,
    );
  } else if (!ctx.listenerPorts.includes(listener.port)) {
    portProblem = true;
    acceptProblem = isFalse(
      "Accepted",
      "PortUnavailable",
      `Port ${listener.port} is not one of Vanguard's listener ports ` +
        `(${ctx.listenerPorts.join(", ") || "none"})`,
    );
  }

  const certificates: { certPem: string; keyPem: string }[] = [];
  let tlsProblem: WantedCondition | undefined;
  if (listener.protocol === "HTTPS") {
    const mode = listener.tls?.mode ?? "Terminate";
    if (mode !== "Terminate") {
      acceptProblem ??= isFalse(
        "Accepted",
        "UnsupportedValue",
        `TLS mode ${mode} is not supported on HTTPS listeners: Vanguard terminates TLS`,
      );
    }
    const tls = certificatesOf(gateway, listener, ctx.refs);
    certificates.push(...tls.pairs);
    tlsProblem = tls.problem;
  }

  const accepted = acceptProblem === undefined;
  // Unsupported route kinds leave the listener serving the kinds it supports.
  const programmed = accepted && tlsProblem === undefined;
  const refProblem = tlsProblem ?? kindsProblem;
  const programmedCondition = programmed
    ? isTrue("Programmed", "Programmed", "Listener is served by Vanguard")
    : isFalse(
      "Programmed",
      portProblem ? "PortUnavailable" : "Invalid",
      acceptProblem?.message ?? refProblem?.message ?? "Listener is not valid",
    );
  return {
    listener,
    ...(hostname !== undefined ? { hostname } : {}),
    admitsHTTPRoutes: supportedKinds.length > 0,
    programmed,
    accepted,
    supportedKinds,
    conditions: [
      acceptProblem ?? isTrue("Accepted", "Accepted", "Listener is accepted"),
      programmedCondition,
      refProblem ?? isTrue("ResolvedRefs", "ResolvedRefs", "All references are resolved"),
    ],
    certificates: programmed ? certificates : [],
    attachedRoutes: 0,
  };
}

/** The PEM pairs of an HTTPS listener's certificateRefs, and the first problem with them. */
function certificatesOf(
  gateway: Gateway,
  listener: Listener,
  refs: References,
): { pairs: { certPem: string; keyPem: string }[]; problem?: WantedCondition } {
  const certificateRefs = listener.tls?.certificateRefs ?? [];
  if (certificateRefs.length === 0) {
    return {
      pairs: [],
      problem: isFalse(
        "ResolvedRefs",
        "InvalidCertificateRef",
        "HTTPS listener has no tls.certificateRefs",
      ),
    };
  }
  const pairs: { certPem: string; keyPem: string }[] = [];
  let problem: WantedCondition | undefined;
  const gwNamespace = gateway.metadata.namespace;
  for (const ref of certificateRefs) {
    const namespace = ref.namespace ?? gwNamespace;
    const shown = `${namespace}/${ref.name}`;
    const group = ref.group ?? "";
    const kind = ref.kind ?? "Secret";
    let found: WantedCondition | undefined;
    if (group !== "" || kind !== "Secret") {
      found = isFalse(
        "ResolvedRefs",
        "InvalidCertificateRef",
        `Certificate reference ${shown} is a ${kind}${group ? `.${group}` : ""}, not a Secret`,
      );
    } else if (
      !refs.granted(
        { group: GATEWAY_GROUP, kind: "Gateway", namespace: gwNamespace },
        { group: "", kind: "Secret", namespace, name: ref.name },
      )
    ) {
      found = isFalse(
        "ResolvedRefs",
        "RefNotPermitted",
        `Certificate Secret ${shown} is not permitted: no ReferenceGrant in namespace ` +
          `${namespace} lets Gateways of namespace ${gwNamespace} refer to it`,
      );
    } else {
      const secret = refs.secret(namespace, ref.name);
      const pair = secret === undefined
        ? { problem: `Secret ${shown} does not exist` }
        : pemPair(secret);
      if ("problem" in pair) found = isFalse("ResolvedRefs", "InvalidCertificateRef", pair.problem);
      else pairs.push(pair);
    }
    problem ??= found;
  }
  return { pairs, ...(problem !== undefined ? { problem } : {}) };
}

/** Whether `listener` admits routes of `routeNamespace` (allowedRoutes.namespaces). */
export function namespaceAdmitted(
  listener: Listener,
  gatewayNamespace: string,
  routeNamespace: string,
  namespaces: ReadonlyMap<string, Namespace>,
): boolean {
  const from = listener.allowedRoutes?.namespaces?.from ?? "Same";
  if (from === "All") return true;
  if (from === "Same") return routeNamespace === gatewayNamespace;
  if (from !== "Selector") return false;
  const selector = listener.allowedRoutes?.namespaces?.selector;
  if (selector === undefined) return false;
  const labels = {
    // The API server sets this label on every Namespace; a test's object may lack it.
    "kubernetes.io/metadata.name": routeNamespace,
    ...namespaces.get(routeNamespace)?.metadata.labels,
  };
  return selects(selector, labels);
}

/** Whether a label selector selects `labels` (an empty selector selects everything). */
export function selects(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const expression of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, expression.key);
    const values = expression.values ?? [];
    const ok = expression.operator === "In"
      ? has && values.includes(labels[expression.key])
      : expression.operator === "NotIn"
      ? !has || !values.includes(labels[expression.key])
      : expression.operator === "Exists"
      ? has
      : expression.operator === "DoesNotExist"
      ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}
