/**
 * The RBAC of k8s/rbac.yaml, as `kubectl kustomize` builds it into a namespace other than
 * `default`, against the calls the code really makes: a
 * gateway with everything Kubernetes-facing switched on (discovery,
 * Gateway API, Ingress, TLS Secrets, status writing, the Lease, the
 * published Service) runs against the fake API server, and every request
 * it sent is turned into the verb, resource and namespace the API server's
 * authorizer would check. Each must be granted to the gateway's
 * ServiceAccount (in the namespace the gateway runs in) by a binding of the
 * built manifests, and each resource granted must be one the code touches.
 * Without kubectl, the source file is read with the kustomization's namespace
 * filled in where kustomize would put it (the test's name says so).
 */
import assert from "node:assert/strict";
import { closedPort, eventually, startTestGateway } from "../helpers.ts";
import {
  CLUSTER_SCOPED,
  kustomize,
  probeKubectl,
  RBAC_KINDS,
  readKustomization,
  sourceManifests,
  writeOverlay,
} from "./k8s_objects.ts";
import {
  endpointSlice,
  gateway,
  gatewayClass,
  httpRoute,
  ingress,
  ingressClass,
  type RecordedRequest,
  service,
  startFakeApiServer,
} from "../discovery/fake_apiserver.ts";

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
}

interface RbacObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** What an authorizer checks for one request. */
interface Attributes {
  verb: string;
  /** `group/resource` or `group/resource/subresource`; the core group is "". */
  resource: string;
  /** Absent for cluster-scoped objects and cluster-wide lists. */
  namespace?: string;
}

/** The attributes of a request, as kube-apiserver derives them from its path and method. */
function attributesOf(request: RecordedRequest): Attributes {
  const parts = request.path.split("/").filter((p) => p !== "");
  const rest = parts[0] === "api" ? parts.slice(2) : parts.slice(3);
  const group = parts[0] === "api" ? "" : parts[1];
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest.splice(0, 2);
  }
  const [plural, name, sub] = rest;
  const watching = request.query.watch === "true" || request.query.watch === "1";
  const verb = request.method === "GET"
    ? (watching ? "watch" : name === undefined ? "list" : "get")
    : { POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[request.method] ??
      request.method;
  return {
    verb,
    resource: `${group}/${plural}${sub === undefined ? "" : `/${sub}`}`,
    namespace,
  };
}

/** The namespace the built manifests are put in: not `default`, so a forgotten one shows. */
const NAMESPACE = "edge-gw";
const kubectl = await probeKubectl();

/** The RBAC objects of the base k8s/ as kustomize builds them into `namespace`. */
async function builtRbac(namespace: string): Promise<RbacObject[]> {
  const isRbac = (kind: string) => RBAC_KINDS.includes(kind);
  if (kubectl.ok) {
    await using overlay = await writeOverlay((repo) =>
      `namespace: ${namespace}\nbases:\n  - ${repo}/k8s\n`
    );
    const built = await kustomize(overlay.dir);
    return built.filter((m) => isRbac(m.kind)).map((m) => m.object as unknown as RbacObject);
  }
  // What kustomize's namespace transformer does to these objects: namespaced objects and
  // ServiceAccount subjects get the namespace.
  assert.equal(typeof readKustomization("k8s").namespace, "string");
  return sourceManifests("k8s").filter((m) => isRbac(m.kind)).map((m) => {
    const o = structuredClone(m.object) as unknown as RbacObject;
    if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = namespace;
    for (const s of o.subjects ?? []) if (s.kind === "ServiceAccount") s.namespace = namespace;
    return o;
  });
}

/**
 * The grants of ServiceAccount `namespace`/vanguard: [namespace or undefined (cluster-wide),
 * rule].
 */
function grants(objects: RbacObject[], namespace: string): [string | undefined, Rule][] {
  const out: [string | undefined, Rule][] = [];
  for (const binding of objects) {
    if (binding.kind !== "ClusterRoleBinding" && binding.kind !== "RoleBinding") continue;
    const ours = (binding.subjects ?? []).some((s) =>
      s.kind === "ServiceAccount" && s.name === "vanguard" &&
      (s.namespace ?? binding.metadata.namespace) === namespace
    );
    if (!ours) continue;
    const role = objects.find((o) =>
      o.kind === binding.roleRef!.kind && o.metadata.name === binding.roleRef!.name &&
      (o.kind === "ClusterRole" || o.metadata.namespace === binding.metadata.namespace)
    );
    assert.ok(role, `${binding.kind} ${binding.metadata.name} binds a defined role`);
    const scope = binding.kind === "RoleBinding" ? binding.metadata.namespace : undefined;
    for (const rule of role.rules ?? []) out.push([scope, rule]);
  }
  return out;
}

function allows(rule: Rule, wanted: Attributes): boolean {
  return (rule.apiGroups ?? []).some((group) =>
    (rule.resources ?? []).some((resource) => `${group}/${resource}` === wanted.resource)
  ) && rule.verbs.includes(wanted.verb);
}

const built = kubectl.ok
  ? `kubectl kustomize, namespace ${NAMESPACE}`
  : `k8s/rbac.yaml with namespace ${NAMESPACE} filled in: ${kubectl.reason}`;

Deno.test(`k8s: every call the gateway makes to the API server is granted by the built RBAC (${built}), and every grant is used`, async () => {
  const objects = await builtRbac(NAMESPACE);
  const granted = grants(objects, NAMESPACE);
  assert.ok(granted.length > 0, `the ServiceAccount ${NAMESPACE}/vanguard is bound`);
  // The gateway runs in the namespace it is deployed to (POD_NAMESPACE, from the pod itself).
  const leaseNamespace = NAMESPACE;
  assert.equal(objects.find((o) => o.kind === "Role")?.metadata.namespace, leaseNamespace);

  const fake = await startFakeApiServer({ bookmarkIntervalMs: 300 });
  const port = closedPort();
  const upstream = Deno.serve(
    { hostname: "127.0.0.2", port, onListen() {} },
    () => new Response("ok"),
  );
  fake.apply(service("default", "web", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(
    endpointSlice("default", "web-a", "web", [{ address: "127.0.0.2" }], [{ name: "http", port }]),
  );
  fake.apply(service(leaseNamespace, "vanguard", { ports: [{ name: "http", port: 80 }] }));
  fake.apply(gatewayClass("vanguard", "vanguard.io/gateway-controller"));
  fake.apply(gateway("default", "gw", "vanguard"));
  fake.apply(httpRoute("default", "web", {
    parent: "gw",
    rules: [{ pathPrefix: "/web", backends: [{ name: "web", port: 80 }] }],
  }));
  fake.apply(ingressClass("vanguard", "vanguard.io/ingress-controller"));
  fake.apply(ingress("default", "shop", {
    className: "vanguard",
    paths: [{ path: "/shop", service: "web", port: 80 }],
  }));
  const gw = await startTestGateway(
    `
discovery:
  kubernetes:
    enabled: true
    namespace: default
    kubeconfig: ${fake.kubeconfigPath}
routes: []
`,
    {
      discoveryTuning: {
        coalesceMs: 10,
        status: { leaseDurationSeconds: 1, renewIntervalMs: 100, addressRefreshMs: 100 },
      },
      env: (name) =>
        name === "HOSTNAME" ? "pod-a" : name === "POD_NAMESPACE" ? leaseNamespace : undefined,
    },
  );
  try {
    await eventually(4000, "status written for the class, Gateway, HTTPRoute and Ingress", () => {
      const kinds = new Set<string>(fake.statusWrites.map((w) => w.kind));
      return ["GatewayClass", "Gateway", "HTTPRoute", "Ingress"].every((k) => kinds.has(k));
    });
    // A renewal of the Lease (an update) and a read of the published Service.
    await eventually(
      2000,
      "a Lease renewal",
      () => fake.requests.some((r) => r.method === "PUT" && r.path.includes("/leases/")),
    );
  } finally {
    await gw.close();
    await fake.close();
    await upstream.shutdown();
  }

  const used = new Set<string>();
  const refused: string[] = [];
  for (const request of fake.requests) {
    const wanted = attributesOf(request);
    const ok = granted.some(([scope, rule]) =>
      (scope === undefined || scope === wanted.namespace) && allows(rule, wanted)
    );
    const shown = `${wanted.verb} ${wanted.resource}${
      wanted.namespace ? ` in ${wanted.namespace}` : " (cluster-wide)"
    }`;
    if (!ok) refused.push(`${shown}: ${request.method} ${request.path}`);
    used.add(wanted.resource);
  }
  assert.deepEqual([...new Set(refused)], [], "calls the built RBAC does not grant");
  const grantedResources = new Set(
    granted.flatMap(([, rule]) =>
      (rule.apiGroups ?? []).flatMap((g) => (rule.resources ?? []).map((r) => `${g}/${r}`))
    ),
  );
  const unused = [...grantedResources].filter((r) => !used.has(r)).sort();
  assert.deepEqual(unused, [], "resources the built RBAC grants that the code never touches");
});
