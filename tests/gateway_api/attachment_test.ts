/**
 * GatewayClasses, Gateways and their listeners, how HTTPRoutes attach to
 * them, and the status each object gets.
 */
import assert from "node:assert/strict";
import { translateGatewayApi } from "../../lib/gateway_api/translate.ts";
import {
  base64,
  conditionOf,
  manifest,
  options,
  PAIRS,
  routeCondition,
  routeId,
  statusOf,
  tableOf,
  translate,
} from "./fixtures.ts";

const CLASS = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: vanguard, generation: 1 }
spec: { controllerName: vanguard.io/gateway-controller }`;

const SERVICES = `
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { ports: [{ name: http, port: 80 }] }`;

/** A Gateway `edge` in namespace infra with these listeners (YAML list items). */
function gateway(listeners: string, generation = 3): string {
  return `
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: infra, generation: ${generation} }
spec:
  gatewayClassName: vanguard
  listeners:
${listeners}`;
}

function route(
  name: string,
  spec: { namespace?: string; parentRefs?: string; hostnames?: string; status?: string } = {},
): string {
  return `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: ${spec.namespace ?? "shop"}, generation: 5 }
spec:
  parentRefs: ${spec.parentRefs ?? "[{ name: edge, namespace: infra }]"}
  hostnames: ${spec.hostnames ?? "[]"}
  rules:
    - backendRefs: [{ name: web, namespace: shop, port: 80 }]
${spec.status ?? ""}`;
}

const HTTP_ALL = `
    - name: http
      protocol: HTTP
      port: 8000
      allowedRoutes: { namespaces: { from: All } }`;

function run(yaml: string, overrides = {}) {
  return translate(yaml, overrides, CLASS + SERVICES);
}

Deno.test("translateGatewayApi() accepts our GatewayClasses and leaves others alone", () => {
  const result = run(`
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: other, generation: 4 }
spec: { controllerName: example.com/other-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: tuned, generation: 2 }
spec:
  controllerName: vanguard.io/gateway-controller
  parametersRef: { group: example.com, kind: Params, name: p }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: tuned-gw, namespace: infra, generation: 1 }
spec:
  gatewayClassName: tuned
  listeners: [{ name: http, protocol: HTTP, port: 8000 }]
${route("r", { parentRefs: "[{ name: tuned-gw, namespace: infra }]" })}`);
  assert.deepEqual(
    conditionOf(
      statusOf(result.statuses, "GatewayClass", "vanguard")!.status.conditions,
      "Accepted",
    ),
    {
      type: "Accepted",
      status: "True",
      reason: "Accepted",
      message: "Vanguard serves the Gateways of this class",
      observedGeneration: 1,
      lastTransitionTime: "2025-01-01T00:00:00Z",
    },
  );
  assert.equal(statusOf(result.statuses, "GatewayClass", "other"), undefined);
  const tuned = conditionOf(
    statusOf(result.statuses, "GatewayClass", "tuned")!.status.conditions,
    "Accepted",
  );
  assert.deepEqual([tuned?.status, tuned?.reason, tuned?.observedGeneration], [
    "False",
    "InvalidParameters",
    2,
  ]);
  // A Gateway of a class that is not accepted serves nothing, and says why.
  assert.equal(result.routes.length, 0);
  const gw = statusOf(result.statuses, "Gateway", "tuned-gw")!.status;
  assert.equal(conditionOf(gw.conditions, "Accepted")?.status, "False");
  assert.equal(conditionOf(gw.listeners![0].conditions, "Programmed")?.status, "False");
});

Deno.test("translateGatewayApi() Gateway status: addresses, listeners, attached routes, generation", () => {
  const result = run(gateway(HTTP_ALL) + route("a") + route("b"), {
    addresses: ["10.0.0.9", "2001:db8::1", "lb.example.com"],
  });
  const status = statusOf(result.statuses, "Gateway", "edge", "infra")!.status;
  assert.deepEqual(status.addresses, [
    { type: "IPAddress", value: "10.0.0.9" },
    { type: "IPAddress", value: "2001:db8::1" },
    { type: "Hostname", value: "lb.example.com" },
  ]);
  assert.deepEqual(
    status.conditions!.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
    [
      ["Accepted", "True", "Accepted", 3],
      ["Programmed", "True", "Programmed", 3],
    ],
  );
  assert.equal(status.listeners!.length, 1);
  const listener = status.listeners![0];
  assert.equal(listener.name, "http");
  assert.equal(listener.attachedRoutes, 2);
  assert.deepEqual(listener.supportedKinds, [{
    group: "gateway.networking.k8s.io",
    kind: "HTTPRoute",
  }]);
  assert.deepEqual(listener.conditions.map((c) => [c.type, c.status, c.reason]), [
    ["Accepted", "True", "Accepted"],
    ["Programmed", "True", "Programmed"],
    ["ResolvedRefs", "True", "ResolvedRefs"],
  ]);
  const parent = statusOf(result.statuses, "HTTPRoute", "a")!.status.parents[0];
  assert.equal(parent.controllerName, "vanguard.io/gateway-controller");
  assert.deepEqual(parent.parentRef, { name: "edge", namespace: "infra" });
  assert.ok(parent.conditions.every((c) => c.observedGeneration === 5));
});

Deno.test("translateGatewayApi() a listener on a port Vanguard does not listen on is not programmed", () => {
  const result = run(
    gateway(
      HTTP_ALL + `
    - name: admin
      protocol: HTTP
      port: 9000
      allowedRoutes: { namespaces: { from: All } }`,
    ) +
      route("only-admin", { parentRefs: "[{ name: edge, namespace: infra, sectionName: admin }]" }),
  );
  const status = statusOf(result.statuses, "Gateway", "edge")!.status;
  const admin = status.listeners!.find((l) => l.name === "admin")!;
  const programmed = conditionOf(admin.conditions, "Programmed")!;
  assert.deepEqual([programmed.status, programmed.reason], ["False", "PortUnavailable"]);
  assert.equal(
    programmed.message,
    "Port 9000 is not one of Vanguard's listener ports (8000, 8443)",
  );
  assert.equal(conditionOf(admin.conditions, "Accepted")?.reason, "PortUnavailable");
  // The Gateway stays accepted and programmed for its other listener.
  assert.deepEqual(conditionOf(status.conditions, "Accepted")?.reason, "ListenersNotValid");
  assert.deepEqual(conditionOf(status.conditions, "Programmed")?.status, "True");
  // A route attached only there is accepted, counted, and not served.
  assert.equal(admin.attachedRoutes, 1);
  assert.equal(result.routes.length, 0);
  assert.equal(routeId(result.table, "http://example.com/"), "404");
  const accepted =
    statusOf(result.statuses, "HTTPRoute", "only-admin")!.status.parents[0].conditions[0];
  assert.match(accepted.message, /not served on listener admin: not programmed/);
});

Deno.test("translateGatewayApi() HTTPS listeners: certificates from TLS Secrets, granted across namespaces", () => {
  const https = (ref: string) =>
    gateway(`
    - name: https
      protocol: HTTPS
      port: 8443
      hostname: "*.example.com"
      tls: { certificateRefs: [${ref}] }
      allowedRoutes: { namespaces: { from: All } }`);
  const secret = (
    namespace: string,
    type = "kubernetes.io/tls",
    key = PAIRS.one.keyPem,
  ) => `
---
apiVersion: v1
kind: Secret
metadata: { name: wildcard, namespace: ${namespace} }
type: ${type}
data: { tls.crt: ${base64(PAIRS.one.certPem)}, tls.key: ${base64(key)} }`;
  const grant = `
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: gateways-read-certs, namespace: certs }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: Gateway, namespace: infra }]
  to: [{ group: "", kind: Secret }]`;
  const listenerOf = (r: ReturnType<typeof run>) =>
    statusOf(r.statuses, "Gateway", "edge")!.status.listeners![0];

  const same = run(https("{ name: wildcard }") + secret("infra") + route("r"));
  assert.deepEqual(same.certificates, [{
    hostnames: ["*.example.com"],
    certPem: PAIRS.one.certPem,
    keyPem: PAIRS.one.keyPem,
  }]);
  assert.equal(conditionOf(listenerOf(same).conditions, "Programmed")?.status, "True");
  assert.equal(routeId(same.table, "https://shop.example.com/"), "gw-shop.r-r0-m0");

  const cases: [string, string, string][] = [
    [
      "other namespace, no grant",
      https("{ name: wildcard, namespace: certs }") + secret("certs"),
      "RefNotPermitted",
    ],
    ["missing Secret", https("{ name: nowhere }"), "InvalidCertificateRef"],
    [
      "key of another certificate",
      https("{ name: wildcard }") + secret("infra", "kubernetes.io/tls", PAIRS.two.keyPem),
      "InvalidCertificateRef",
    ],
    [
      "Opaque Secret",
      https("{ name: wildcard }") + secret("infra", "Opaque"),
      "InvalidCertificateRef",
    ],
    [
      "not a Secret",
      https("{ name: wildcard, kind: ConfigMap }") + secret("infra"),
      "InvalidCertificateRef",
    ],
  ];
  for (const [what, yaml, reason] of cases) {
    const result = run(yaml + route("r"));
    const listener = listenerOf(result);
    assert.deepEqual(
      [
        conditionOf(listener.conditions, "ResolvedRefs")?.status,
        conditionOf(listener.conditions, "ResolvedRefs")?.reason,
      ],
      ["False", reason],
      what,
    );
    assert.equal(conditionOf(listener.conditions, "Programmed")?.status, "False", what);
    assert.equal(result.certificates.length, 0, what);
    assert.equal(result.routes.length, 0, what);
  }
  const granted = run(
    https("{ name: wildcard, namespace: certs }") + secret("certs") + grant + route("r"),
  );
  assert.equal(granted.certificates.length, 1);
  assert.equal(conditionOf(listenerOf(granted).conditions, "ResolvedRefs")?.status, "True");
});

Deno.test("translateGatewayApi() intersects route and listener hostnames", () => {
  const listeners = `
    - name: wild
      protocol: HTTP
      port: 8000
      hostname: "*.example.com"
      allowedRoutes: { namespaces: { from: All } }
    - name: exact
      protocol: HTTP
      port: 8000
      hostname: api.example.net
      allowedRoutes: { namespaces: { from: All } }`;
  const cases: { hostnames: string; section?: string; hosts?: string[]; reason: string }[] = [
    {
      hostnames: "[shop.example.com, other.org]",
      section: "wild",
      hosts: ["shop.example.com"],
      reason: "Accepted",
    },
    { hostnames: "[]", section: "wild", hosts: ["*.example.com"], reason: "Accepted" },
    { hostnames: '["*.com"]', section: "wild", hosts: ["*.example.com"], reason: "Accepted" },
    {
      hostnames: '["*.shop.example.com"]',
      section: "wild",
      hosts: ["*.shop.example.com"],
      reason: "Accepted",
    },
    { hostnames: "[example.com]", section: "wild", reason: "NoMatchingListenerHostname" },
    {
      hostnames: '["*.example.net"]',
      section: "exact",
      hosts: ["api.example.net"],
      reason: "Accepted",
    },
    // No sectionName: every listener; the hosts are the union of both intersections.
    {
      hostnames: '["*.example.com", api.example.net]',
      hosts: ["*.example.com", "api.example.net"],
      reason: "Accepted",
    },
  ];
  for (const { hostnames, section, hosts, reason } of cases) {
    const parentRefs = section === undefined
      ? "[{ name: edge, namespace: infra }]"
      : `[{ name: edge, namespace: infra, sectionName: ${section} }]`;
    const result = run(gateway(listeners) + route("r", { hostnames, parentRefs }));
    assert.deepEqual(result.routes[0]?.hosts, hosts, hostnames);
    assert.equal(routeCondition(result, "r", "Accepted")?.[1], reason, hostnames);
  }

  // What a user sees: names outside the intersection get no route.
  const result = run(
    gateway(listeners) + route("r", {
      hostnames: "[shop.example.com, other.org]",
      parentRefs: "[{ name: edge, namespace: infra, sectionName: wild }]",
    }),
  );
  assert.equal(routeId(result.table, "http://SHOP.example.com:8000/"), "gw-shop.r-r0-m0");
  assert.equal(routeId(result.table, "http://other.org/"), "404");
  assert.equal(routeId(result.table, "http://deep.shop.example.com/"), "404");
});

Deno.test("translateGatewayApi() parentRefs select listeners by sectionName and port", () => {
  const cases: [string, string][] = [
    ["[{ name: edge, namespace: infra, sectionName: http }]", "Accepted"],
    ["[{ name: edge, namespace: infra, port: 8000 }]", "Accepted"],
    ["[{ name: edge, namespace: infra, sectionName: https }]", "NoMatchingParent"],
    ["[{ name: edge, namespace: infra, sectionName: http, port: 8443 }]", "NoMatchingParent"],
  ];
  for (const [parentRefs, reason] of cases) {
    const result = run(gateway(HTTP_ALL) + route("r", { parentRefs }));
    assert.equal(routeCondition(result, "r", "Accepted")?.[1], reason, parentRefs);
    assert.equal(result.routes.length, reason === "Accepted" ? 1 : 0, parentRefs);
  }
  // A parent that is not one of our Gateways gets no status from us.
  const elsewhere = run(gateway(HTTP_ALL) + route("r", { parentRefs: "[{ name: not-ours }]" }));
  assert.equal(statusOf(elsewhere.statuses, "HTTPRoute", "r"), undefined);
});

Deno.test("translateGatewayApi() allowedRoutes: namespaces Same, Selector, and route kinds", () => {
  const listener = (allowed: string) =>
    gateway(`
    - name: http
      protocol: HTTP
      port: 8000
      allowedRoutes: ${allowed}`);
  const namespaces = `
---
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: retail } }`;
  const cases: [string, string][] = [
    ["{}", "NotAllowedByListeners"], // Same is the default; the route is in shop, the Gateway in infra
    ["{ namespaces: { from: Same } }", "NotAllowedByListeners"],
    ["{ namespaces: { from: All } }", "Accepted"],
    ["{ namespaces: { from: Selector, selector: { matchLabels: { team: retail } } } }", "Accepted"],
    [
      "{ namespaces: { from: Selector, selector: { matchLabels: { team: ops } } } }",
      "NotAllowedByListeners",
    ],
    [
      "{ namespaces: { from: Selector, selector: { matchExpressions: [{ key: kubernetes.io/metadata.name, operator: In, values: [shop] }] } } }",
      "Accepted",
    ],
    ["{ namespaces: { from: All }, kinds: [{ kind: GRPCRoute }] }", "NotAllowedByListeners"],
  ];
  for (const [allowed, reason] of cases) {
    const result = run(listener(allowed) + namespaces + route("r"));
    assert.equal(routeCondition(result, "r", "Accepted")?.[1], reason, allowed);
  }
  const grpc = run(
    listener("{ namespaces: { from: All }, kinds: [{ kind: GRPCRoute }] }") + route("r"),
  );
  const status = statusOf(grpc.statuses, "Gateway", "edge")!.status.listeners![0];
  assert.deepEqual(status.supportedKinds, []);
  assert.equal(conditionOf(status.conditions, "ResolvedRefs")?.reason, "InvalidRouteKinds");
  // A route in the Gateway's own namespace is admitted by Same.
  const local = run(listener("{}") + route("r", { namespace: "infra" }));
  assert.equal(routeCondition(local, "r", "Accepted")?.[1], "Accepted");
});

Deno.test("translateGatewayApi() keeps lastTransitionTime while a condition's status holds", () => {
  const objects = manifest(CLASS + SERVICES, gateway(HTTP_ALL) + route("r"));
  const first = translateGatewayApi(
    objects,
    options({ now: "2025-01-01T00:00:00Z" }, objects.services),
  );
  // The objects come back with the status written, and a newer generation.
  const written = (kind: string, name: string) =>
    first.statuses.find((s) => s.kind === kind && s.name === name)!.status;
  const foreignParent = {
    parentRef: { name: "other-gw" },
    controllerName: "example.com/other",
    conditions: [],
  };
  const routeStatus = written("HTTPRoute", "r") as { parents: { conditions: unknown[] }[] };
  const withForeign = {
    parents: [foreignParent, {
      ...routeStatus.parents[0],
      conditions: [
        ...routeStatus.parents[0].conditions,
        {
          type: "example.com/Audited",
          status: "True",
          reason: "Seen",
          message: "",
          lastTransitionTime: "2020-01-01T00:00:00Z",
        },
      ],
    }],
  };
  const again = {
    ...objects,
    gateways: objects.gateways.map((g) => ({
      ...g,
      metadata: { ...g.metadata, generation: 4 },
      status: written("Gateway", "edge"),
    })),
    httpRoutes: objects.httpRoutes.map((r) => ({
      ...r,
      metadata: { ...r.metadata, generation: 6 },
      spec: { ...r.spec, rules: [{ backendRefs: [{ name: "missing", port: 80 }] }] },
      status: withForeign,
    })),
  } as typeof objects;
  const second = translateGatewayApi(
    again,
    options({ now: "2025-02-02T00:00:00Z" }, objects.services),
  );

  const gw = statusOf(second.statuses, "Gateway", "edge")!.status;
  assert.deepEqual(
    conditionOf(gw.conditions, "Accepted")?.lastTransitionTime,
    "2025-01-01T00:00:00Z",
  );
  assert.equal(conditionOf(gw.conditions, "Accepted")?.observedGeneration, 4);
  const parents = statusOf(second.statuses, "HTTPRoute", "r")!.status.parents;
  assert.deepEqual(parents[0], foreignParent, "another controller's parent stays");
  const ours = parents[1].conditions;
  assert.deepEqual(
    ours.map((c) => [c.type, c.status, c.observedGeneration, c.lastTransitionTime]),
    [
      ["Accepted", "True", 6, "2025-01-01T00:00:00Z"], // unchanged status: time kept
      ["ResolvedRefs", "False", 6, "2025-02-02T00:00:00Z"], // changed: now
      ["example.com/Audited", "True", undefined, "2020-01-01T00:00:00Z"], // not ours: untouched
    ],
  );

  // A status written for a newer generation than ours: our copy is stale, nothing is written.
  const stale = {
    ...again,
    httpRoutes: again.httpRoutes.map((r) => ({ ...r, metadata: { ...r.metadata, generation: 1 } })),
  };
  const third = translateGatewayApi(stale, options({}, objects.services));
  assert.equal(statusOf(third.statuses, "HTTPRoute", "r"), undefined);
});

Deno.test("translateGatewayApi() clears our parent entry when a route leaves our Gateway", () => {
  const objects = manifest(CLASS + SERVICES, gateway(HTTP_ALL) + route("r"));
  const first = translateGatewayApi(objects, options({}, objects.services));
  const moved = {
    ...objects,
    httpRoutes: objects.httpRoutes.map((r) => ({
      ...r,
      spec: { ...r.spec, parentRefs: [{ name: "someone-elses" }] },
      status: statusOf(first.statuses, "HTTPRoute", "r")!.status,
    })),
  };
  const second = translateGatewayApi(moved, options({}, objects.services));
  assert.deepEqual(statusOf(second.statuses, "HTTPRoute", "r")?.status, { parents: [] });
  assert.equal(second.routes.length, 0);
  assert.equal(tableOf(second.routes, objects.services).match("/"), undefined);
});
