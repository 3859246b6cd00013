/**
 * Gateway API v1 (GatewayClass, Gateway, HTTPRoute, ReferenceGrant) into
 * Vanguard's routing model, plus the status every object of ours should
 * have (contract section 10). Pure: no I/O, the time comes in as
 * `options.now`; the same objects give the same result, so the caller
 * swaps a table and writes a status only when something changed.
 *
 * What Vanguard serves: every GatewayClass naming our controller, every
 * Gateway of such a class, every listener of it on one of Vanguard's own
 * ports, and every HTTPRoute attached to such a listener, with hosts the
 * intersection of the route's and the listener's hostnames. All of them
 * share one routing table (a route attached to a programmed listener is
 * served on every Vanguard port).
 *
 * @example
 * ```ts
 * const { routes, statuses } = translateGatewayApi(objects, {
 *   controllerName: GATEWAY_CONTROLLER,
 *   listenerPorts: [8000, 8443],
 *   addresses: ["10.0.0.9"],
 *   services,
 *   now: new Date().toISOString(),
 * });
 * ```
 *
 * @module
 */
import type { RouteEntry } from "../routing/route.ts";
import {
  isFalse,
  isTrue,
  mergeConditions,
  type WantedCondition,
  writtenForNewer,
} from "./conditions.ts";
import { ANY_HOST, routeHostsOnListener } from "./hostnames.ts";
import { type CompiledRules, compileRules } from "./http_rule.ts";
import { judgeListeners, type ListenerState, namespaceAdmitted } from "./listeners.ts";
import {
  type Gateway,
  GATEWAY_GROUP,
  type GatewayClass,
  type HTTPRoute,
  type Namespace,
  type ParentReference,
  type ReferenceGrant,
  type RouteParentStatus,
  type Secret,
  type Service,
} from "./objects.ts";
import { References } from "./references.ts";
import { addCertificate, isIpAddress, olderFirst, type Translation } from "./result.ts";

/** Vanguard's Gateway API controller name. */
export const GATEWAY_CONTROLLER = "vanguard.io/gateway-controller";

/** The objects one translation reads (the watches' current contents). */
export interface GatewayApiObjects {
  readonly gatewayClasses: readonly GatewayClass[];
  readonly gateways: readonly Gateway[];
  readonly httpRoutes: readonly HTTPRoute[];
  readonly referenceGrants?: readonly ReferenceGrant[];
  /** TLS Secrets the HTTPS listeners may name. */
  readonly secrets?: readonly Secret[];
  /** Needed only for `allowedRoutes.namespaces.from: Selector` (their labels). */
  readonly namespaces?: readonly Namespace[];
}

/** How Vanguard is deployed, as the translation needs it. */
export interface GatewayApiOptions {
  /** Normally {@linkcode GATEWAY_CONTROLLER}. */
  readonly controllerName: string;
  /** Vanguard's ports: `server.port` and the TLS listener's. */
  readonly listenerPorts: readonly number[];
  /** Where clients reach Vanguard (IP addresses or host names), for Gateway `status.addresses`. */
  readonly addresses: readonly string[];
  /** The Services backendRefs may name. */
  readonly services: readonly Service[];
  /** RFC 3339 time of this translation, for conditions whose status changes. */
  readonly now: string;
}

const ROUTE_CONDITIONS = ["Accepted", "ResolvedRefs", "PartiallyInvalid"];
const GATEWAY_CONDITIONS = ["Accepted", "Programmed"];
const LISTENER_CONDITIONS = ["Accepted", "Programmed", "ResolvedRefs"];

interface GatewayState {
  readonly gateway: Gateway;
  readonly className: string;
  /** False when its GatewayClass is ours but not accepted: nothing of it is served. */
  readonly serving: boolean;
  readonly listeners: ListenerState[];
}

/** Translates the Gateway API objects into routes, statuses and certificates. */
export function translateGatewayApi(
  objects: GatewayApiObjects,
  options: GatewayApiOptions,
): Translation {
  const out: Translation = { routes: [], statuses: [], certificates: [], warnings: [] };
  const refs = new References({
    services: options.services,
    secrets: objects.secrets,
    referenceGrants: objects.referenceGrants,
  });

  const classes = new Map<string, boolean>();
  for (const gatewayClass of [...objects.gatewayClasses].sort(olderFirst)) {
    // Another controller's class: not ours to judge, nor to write.
    if (gatewayClass.spec.controllerName !== options.controllerName) continue;
    const accepted = gatewayClass.spec.parametersRef === undefined;
    classes.set(gatewayClass.metadata.name, accepted);
    const generation = gatewayClass.metadata.generation ?? 0;
    const previous = gatewayClass.status?.conditions;
    if (writtenForNewer(previous, generation, ["Accepted"])) continue;
    const wanted = accepted
      ? isTrue("Accepted", "Accepted", "Vanguard serves the Gateways of this class")
      : isFalse(
        "Accepted",
        "InvalidParameters",
        "Vanguard takes no parameters: remove spec.parametersRef",
      );
    out.statuses.push({
      kind: "GatewayClass",
      name: gatewayClass.metadata.name,
      status: {
        conditions: mergeConditions(previous, [wanted], {
          generation,
          now: options.now,
          managed: ["Accepted"],
        }),
      },
    });
  }

  const gateways = new Map<string, GatewayState>();
  for (const gateway of [...objects.gateways].sort(olderFirst)) {
    const accepted = classes.get(gateway.spec.gatewayClassName);
    if (accepted === undefined) continue;
    const { namespace, name } = gateway.metadata;
    if ((gateway.spec.addresses ?? []).length > 0) {
      out.warnings.push(
        `Gateway ${namespace}/${name}: spec.addresses is ignored; Vanguard serves on ` +
          `${options.addresses.join(", ") || "its own addresses"}`,
      );
    }
    gateways.set(`${namespace}/${name}`, {
      gateway,
      className: gateway.spec.gatewayClassName,
      serving: accepted,
      listeners: judgeListeners(gateway, { listenerPorts: options.listenerPorts, refs }),
    });
  }

  const namespaces = new Map((objects.namespaces ?? []).map((n) => [n.metadata.name, n]));
  for (const route of [...objects.httpRoutes].sort(olderFirst)) {
    translateRoute(route, { options, refs, gateways, namespaces, out });
  }

  for (const state of gateways.values()) {
    const status = gatewayStatus(state, options);
    if (status !== undefined) out.statuses.push(status);
    if (!state.serving) continue;
    for (const listener of state.listeners) {
      for (const pair of listener.certificates) {
        addCertificate(out.certificates, {
          hostnames: listener.hostname === undefined ? [] : [listener.hostname],
          ...pair,
        });
      }
    }
  }
  return out;
}

interface RouteContext {
  readonly options: GatewayApiOptions;
  readonly refs: References;
  readonly gateways: ReadonlyMap<string, GatewayState>;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly out: Translation;
}

function translateRoute(route: HTTPRoute, ctx: RouteContext): void {
  const { options, out } = ctx;
  const routeNamespace = route.metadata.namespace;
  const compiled = compileRules(route, ctx.refs);
  out.warnings.push(...compiled.warnings);

  const generation = route.metadata.generation ?? 0;
  const previous = route.status?.parents ?? [];
  const ours = previous.filter((p) => p.controllerName === options.controllerName);
  const parents: RouteParentStatus[] = [];
  const hosts = new Set<string>();
  const counted = new Set<ListenerState>();
  let served = false;

  for (const ref of route.spec.parentRefs ?? []) {
    if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (ref.kind ?? "Gateway") !== "Gateway") {
      continue;
    }
    const state = ctx.gateways.get(`${ref.namespace ?? routeNamespace}/${ref.name}`);
    // A Gateway we do not know or do not own: its controller, if any, writes this parent.
    if (state === undefined) continue;
    const attachment = attach(route, ref, state, ctx.namespaces);
    let accepted = attachment.accepted;
    if (accepted.status === "True" && compiled.rules.length === 0) {
      accepted = isFalse(
        "Accepted",
        compiled.dropped[0].reason,
        `No rule of the route can be served: ${droppedMessages(compiled)}`,
      );
    }
    if (accepted.status === "True") {
      const idle: string[] = [];
      for (const { listener, hosts: names } of attachment.attached) {
        // Two parentRefs may select the same listener: the route still counts once there.
        if (!counted.has(listener)) listener.attachedRoutes++;
        counted.add(listener);
        if (state.serving && listener.programmed) {
          served = true;
          for (const host of names) hosts.add(host);
        } else idle.push(listener.listener.name);
      }
      if (idle.length > 0) {
        accepted = isTrue(
          "Accepted",
          "Accepted",
          `${accepted.message}; not served on listener ${idle.join(", ")}: not programmed`,
        );
      }
    }
    const wanted: WantedCondition[] = [accepted, resolvedRefs(compiled)];
    if (accepted.status === "True" && compiled.dropped.length > 0) {
      wanted.push(
        isTrue(
          "PartiallyInvalid",
          "UnsupportedValue",
          `Dropped Rule ${compiled.dropped.map((d) => d.index).join(", ")}: ` +
            droppedMessages(compiled),
        ),
      );
    }
    const before = ours.find((p) => sameParent(p.parentRef, ref, routeNamespace));
    parents.push({
      parentRef: ref,
      controllerName: options.controllerName,
      conditions: mergeConditions(before?.conditions, wanted, {
        generation,
        now: options.now,
        managed: ROUTE_CONDITIONS,
      }),
    });
  }

  if (served) out.routes.push(...routeEntries(route, compiled, hosts));
  // Write when we have something to say, or stale entries of ours to clean up.
  const stale = ours.some((p) => writtenForNewer(p.conditions, generation, ROUTE_CONDITIONS));
  if ((parents.length > 0 || ours.length > 0) && !stale) {
    out.statuses.push({
      kind: "HTTPRoute",
      namespace: routeNamespace,
      name: route.metadata.name,
      status: {
        parents: [
          ...previous.filter((p) => p.controllerName !== options.controllerName),
          ...parents,
        ],
      },
    });
  }
}

/** The route's listeners on one Gateway, and whether (and why not) it is accepted there. */
function attach(
  route: HTTPRoute,
  ref: ParentReference,
  state: GatewayState,
  namespaces: ReadonlyMap<string, Namespace>,
): {
  accepted: WantedCondition;
  attached: { listener: ListenerState; hosts: string[] }[];
} {
  const gateway = state.gateway.metadata;
  const shown = `Gateway ${gateway.namespace}/${gateway.name}`;
  const candidates = state.listeners.filter((l) =>
    (ref.sectionName === undefined || l.listener.name === ref.sectionName) &&
    (ref.port === undefined || l.listener.port === ref.port)
  );
  if (candidates.length === 0) {
    const wanted = [
      ref.sectionName !== undefined ? `named ${ref.sectionName}` : "",
      ref.port !== undefined ? `on port ${ref.port}` : "",
    ].filter((s) => s !== "").join(" ");
    return {
      accepted: isFalse("Accepted", "NoMatchingParent", `${shown} has no listener ${wanted}`),
      attached: [],
    };
  }
  const allowed = candidates.filter((l) =>
    l.admitsHTTPRoutes &&
    namespaceAdmitted(l.listener, gateway.namespace, route.metadata.namespace, namespaces)
  );
  if (allowed.length === 0) {
    return {
      accepted: isFalse(
        "Accepted",
        "NotAllowedByListeners",
        `No listener of ${shown} admits HTTPRoutes of namespace ${route.metadata.namespace}`,
      ),
      attached: [],
    };
  }
  const attached = allowed
    .map((listener) => ({
      listener,
      hosts: routeHostsOnListener(listener.hostname, route.spec.hostnames),
    }))
    .filter((a) => a.hosts.length > 0);
  if (attached.length === 0) {
    const names = allowed.map((l) => l.hostname ?? "any host").join(", ");
    return {
      accepted: isFalse(
        "Accepted",
        "NoMatchingListenerHostname",
        `No hostname of the route (${(route.spec.hostnames ?? []).join(", ")}) matches ` +
          `a listener hostname of ${shown} (${names})`,
      ),
      attached: [],
    };
  }
  return {
    accepted: isTrue(
      "Accepted",
      "Accepted",
      `Accepted by listener ${attached.map((a) => a.listener.listener.name).join(", ")}`,
    ),
    attached,
  };
}

function resolvedRefs(compiled: CompiledRules): WantedCondition {
  if (compiled.refProblems.length === 0) {
    return isTrue("ResolvedRefs", "ResolvedRefs", "All references are resolved");
  }
  return isFalse(
    "ResolvedRefs",
    compiled.refProblems[0].reason,
    compiled.refProblems.map((p) => p.message).join("; "),
  );
}

function droppedMessages(compiled: CompiledRules): string {
  return compiled.dropped.map((d) => d.message).join("; ");
}

/** Whether a status entry's parentRef is the spec's `ref` (defaults applied to both). */
function sameParent(a: ParentReference, b: ParentReference, routeNamespace: string): boolean {
  const key = (r: ParentReference) =>
    JSON.stringify([
      r.group ?? GATEWAY_GROUP,
      r.kind ?? "Gateway",
      r.namespace ?? routeNamespace,
      r.name,
      r.sectionName ?? null,
      r.port ?? null,
    ]);
  return key(a) === key(b);
}

/** One RouteEntry per (rule, match), in rule and match order. */
function routeEntries(route: HTTPRoute, compiled: CompiledRules, hosts: Set<string>): RouteEntry[] {
  const { namespace, name } = route.metadata;
  const hostList = hosts.has(ANY_HOST) ? undefined : [...hosts];
  const entries: RouteEntry[] = [];
  for (const rule of compiled.rules) {
    for (const match of rule.matches) {
      entries.push(Object.freeze({
        id: `gw-${namespace}.${name}-r${rule.index}-m${match.index}`,
        ...match.path,
        ...(hostList !== undefined ? { hosts: hostList } : {}),
        ...(match.methods !== undefined ? { methods: match.methods } : {}),
        ...(match.headers !== undefined ? { headers: match.headers } : {}),
        ...(match.query !== undefined ? { query: match.query } : {}),
        ...rule.action,
        preserveHost: true,
        authRequired: false,
        forwardCredentials: false,
        stripPrefix: false,
        source: "kubernetes" as const,
      }));
    }
  }
  return entries;
}

function gatewayStatus(
  state: GatewayState,
  options: GatewayApiOptions,
): Translation["statuses"][number] | undefined {
  const { gateway } = state;
  const generation = gateway.metadata.generation ?? 0;
  const previous = gateway.status;
  const previousListeners = new Map((previous?.listeners ?? []).map((l) => [l.name, l]));
  if (
    writtenForNewer(previous?.conditions, generation, GATEWAY_CONDITIONS) ||
    [...previousListeners.values()].some((l) =>
      writtenForNewer(l.conditions, generation, LISTENER_CONDITIONS)
    )
  ) return undefined;
  const clock = { generation, now: options.now };

  const notServed = isFalse(
    "Programmed",
    "Invalid",
    `GatewayClass ${state.className} is not accepted`,
  );
  const listeners = state.listeners.map((l) => ({
    name: l.listener.name,
    supportedKinds: l.supportedKinds,
    attachedRoutes: l.attachedRoutes,
    conditions: mergeConditions(
      previousListeners.get(l.listener.name)?.conditions,
      state.serving
        ? l.conditions
        : l.conditions.map((c) => c.type === "Programmed" ? notServed : c),
      { ...clock, managed: LISTENER_CONDITIONS },
    ),
  }));

  const invalid = state.listeners.filter((l) => !l.accepted).map((l) => l.listener.name);
  const accepted = !state.serving
    ? isFalse("Accepted", "Invalid", `GatewayClass ${state.className} is not accepted`)
    : invalid.length === 0
    ? isTrue("Accepted", "Accepted", "Gateway is accepted")
    : isTrue(
      "Accepted",
      "ListenersNotValid",
      `Listener ${invalid.join(", ")} is not valid; the others are accepted`,
    );
  const allInvalid = state.serving && invalid.length === state.listeners.length;
  const programmedPorts = [
    ...new Set(state.listeners.filter((l) => l.programmed).map((l) => l.listener.port)),
  ];
  const programmed = !state.serving
    ? notServed
    : programmedPorts.length > 0
    ? isTrue("Programmed", "Programmed", `Served by Vanguard on port ${programmedPorts.join(", ")}`)
    : isFalse("Programmed", "Invalid", "No listener of the Gateway is programmed");

  return {
    kind: "Gateway",
    namespace: gateway.metadata.namespace,
    name: gateway.metadata.name,
    status: {
      addresses: options.addresses.map((value) => ({
        type: isIpAddress(value) ? "IPAddress" as const : "Hostname" as const,
        value,
      })),
      conditions: mergeConditions(
        previous?.conditions,
        [
          allInvalid
            ? isFalse("Accepted", "ListenersNotValid", "No listener of the Gateway is valid")
            : accepted,
          programmed,
        ],
        { ...clock, managed: GATEWAY_CONDITIONS },
      ),
      listeners,
    },
  };
}
