/**
 * The source files of the kustomize base k8s/ (and of the demo overlay examples/k8s-demo/):
 * every object validates against the Kubernetes OpenAPI schema (npm kubernetes-models), and
 * the properties the contract promises (section 8) hold: least-privilege RBAC, a locked-down
 * gateway container, probes on the admin port, a Service that exposes the proxy port only, a
 * ConfigMap whose config validates, the namespace in one place and no API key in the objects. What
 * kustomize makes of them (`kubectl kustomize`) is checked by kustomize_test.ts.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IService } from "kubernetes-models/v1/Service";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import type { IRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import type { IRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { DockerfileParser } from "dockerfile-ast";
import {
  CLUSTER_SCOPED,
  containerEnvironment,
  expand,
  flagValue,
  generatedConfigMaps,
  type Manifest,
  readKustomization,
  ROOT,
  schemaProblems,
  sourceManifests,
  validateConfig,
} from "./k8s_objects.ts";

const BASE = "k8s";
const DEMO = "examples/k8s-demo";
const CONTRACT_FILES = ["rbac.yaml", "configmap.yaml", "deployment.yaml", "service.yaml"];
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const FORBIDDEN = /^(-A|--allow-all|--allow-write|--allow-run|--allow-ffi)(=|$)/;
/** Stand-ins for what Kubernetes sets in every container. */
const CLUSTER_ENV = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

const kustomization = readKustomization(BASE);
const contract = sourceManifests(BASE);
const demo = sourceManifests(DEMO);
const manifests = [...contract, ...demo];

function only<T>(kind: string, from: Manifest[] = contract): T[] {
  return from.filter((m) => m.kind === kind).map((m) => m.object as T);
}
function single<T>(kind: string, file: string): T {
  const found = contract.filter((m) => m.kind === kind && m.source === `${BASE}/${file}`);
  assert.equal(found.length, 1, `exactly one ${kind} in ${BASE}/${file}`);
  return found[0].object as T;
}

const deployment = single<IDeployment>("Deployment", "deployment.yaml");
const podSpec = deployment.spec?.template.spec;
assert.ok(podSpec, "the Deployment has a pod template spec");
const gateway = podSpec.containers.find((c) => c.name === "vanguard") ?? podSpec.containers[0];
const configMap = single<IConfigMap>("ConfigMap", "configmap.yaml");
const configText = configMap.data?.["config.yaml"];
assert.ok(configText, "the ConfigMap holds config.yaml");
const config = parseYaml(configText) as {
  server?: {
    port?: number;
    admin_port?: number;
    admin_host?: string;
    admin_token_env?: string;
    shutdown_grace_seconds?: number;
  };
  redis?: { url?: string; url_env?: string };
  auth?: { api_key?: { keys?: { id: string; sha256?: string; value_env?: string }[] } };
};
const proxyPort = config.server?.port ?? 8000;
const adminPort = config.server?.admin_port ?? 8001;
/** The gateway's environment, with the settings the kustomization generates. */
const env = containerEnvironment(gateway, {
  namespace: kustomization.namespace ?? "default",
  configMaps: generatedConfigMaps(BASE),
  cluster: CLUSTER_ENV,
});
/** The variables that hold API keys (auth.api_key.keys[].value_env). */
const keyVariables = [
  ...(config.auth?.api_key?.keys ?? []).flatMap((k) => k.value_env ?? []),
  // The admin token (the admin listener binds the pod's address for the kubelet's probes).
  ...(config.server?.admin_token_env === undefined ? [] : [config.server.admin_token_env]),
];

/** A probe's or Service's port (number or container port name) as a number. */
function containerPort(port: number | string | undefined): number | undefined {
  if (typeof port === "number") return port;
  if (typeof port === "string" && /^\d+$/.test(port)) return Number(port);
  return gateway.ports?.find((p) => p.name === port)?.containerPort;
}

Deno.test("k8s: the kustomization applies the contract files and names the namespace once", () => {
  assert.deepEqual(kustomization.resources, CONTRACT_FILES);
  assert.equal(typeof kustomization.namespace, "string", "k8s/kustomization.yaml namespace:");
  // Each file also applies alone (`kubectl apply -f`, contract section 8): every namespaced
  // object and every subject says the kustomization's namespace, which an overlay rewrites
  // (tests/deploy/kustomize_test.ts renders one and finds no trace of the old namespace).
  for (const m of manifests.filter((m) => m.source.startsWith(`${BASE}/`))) {
    const expected = CLUSTER_SCOPED.has(m.kind) ? undefined : kustomization.namespace;
    assert.equal(m.namespace, expected, `${m.source}: ${m.kind} ${m.name} namespace`);
    for (const subject of (m.object.subjects ?? []) as { namespace?: string }[]) {
      assert.equal(
        subject.namespace,
        kustomization.namespace,
        `${m.source}: ${m.name} subject's namespace`,
      );
    }
  }
  // A manifest in k8s/ that the kustomization does not list would never be applied.
  const files = [...Deno.readDirSync(new URL(`${BASE}/`, ROOT))]
    .map((e) => e.name)
    .filter((name) => /\.ya?ml$/.test(name) && name !== "kustomization.yaml");
  assert.deepEqual(files.sort(), [...CONTRACT_FILES].sort(), "k8s/*.yaml not in resources:");
});

Deno.test("k8s: every document parses and validates against the Kubernetes schema", () => {
  assert.deepEqual(schemaProblems(manifests), []);
  const names = manifests.map((m) => `${m.kind}/${m.name}`);
  assert.equal(new Set(names).size, names.length, `duplicate objects: ${names}`);
  assert.ok(!manifests.some((m) => m.kind === "Secret"), "no Secret is shipped");
});

Deno.test("k8s: RBAC grants only get/list/watch on services and endpointslices to the gateway's ServiceAccount", () => {
  const accountName = podSpec.serviceAccountName;
  assert.ok(accountName, "the Deployment names its serviceAccountName");
  const accounts = only<IServiceAccount>("ServiceAccount").filter((a) =>
    a.metadata?.name === accountName
  );
  assert.equal(accounts.length, 1, `the ServiceAccount ${accountName} is in k8s/rbac.yaml`);
  assert.notEqual(podSpec.automountServiceAccountToken, false, "the token is mounted");
  if (podSpec.automountServiceAccountToken === undefined) {
    assert.notEqual(accounts[0].automountServiceAccountToken, false, "the token is mounted");
  }

  const roles = [...only<IClusterRole>("ClusterRole"), ...only<IRole>("Role")];
  const bindings = [
    ...only<IClusterRoleBinding>("ClusterRoleBinding"),
    ...only<IRoleBinding>("RoleBinding"),
  ];
  // The subjects name the account's namespace, which kustomize sets to the kustomization's.
  const ours = bindings.filter((b) =>
    (b.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === accountName)
  );
  assert.ok(ours.length > 0, `a binding for ServiceAccount ${accountName}`);

  const granted = new Map<string, Set<string>>();
  for (const binding of ours) {
    // Every subject of these bindings is the gateway's account: nobody else gets the role.
    for (const s of binding.subjects ?? []) {
      assert.deepEqual([s.kind, s.name], ["ServiceAccount", accountName]);
    }
    const role = roles.find((r) =>
      r.kind === binding.roleRef.kind && r.metadata?.name === binding.roleRef.name
    );
    assert.ok(role, `the bound ${binding.roleRef.kind} ${binding.roleRef.name} is defined`);
    assert.equal(binding.roleRef.apiGroup, "rbac.authorization.k8s.io");
    if (binding.kind === "ClusterRoleBinding") assert.equal(binding.roleRef.kind, "ClusterRole");
    for (const rule of role.rules ?? []) {
      assert.equal(rule.nonResourceURLs, undefined, "no non-resource URLs");
      for (const group of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          const key = `${group}/${resource}`;
          const verbs = granted.get(key) ?? new Set<string>();
          for (const verb of rule.verbs) verbs.add(verb);
          granted.set(key, verbs);
        }
      }
    }
  }
  // Reads for discovery and the Gateway API / Ingress controller, writes only to
  // status subresources and to the status-writer Lease: nothing else.
  const READ = ["get", "list", "watch"];
  assert.deepEqual(
    Object.fromEntries([...granted].map(([key, verbs]) => [key, [...verbs].sort()])),
    {
      "/services": READ,
      "/namespaces": READ,
      "/secrets": READ,
      "discovery.k8s.io/endpointslices": READ,
      "gateway.networking.k8s.io/gatewayclasses": READ,
      "gateway.networking.k8s.io/gateways": READ,
      "gateway.networking.k8s.io/httproutes": READ,
      "gateway.networking.k8s.io/referencegrants": READ,
      "gateway.networking.k8s.io/gatewayclasses/status": ["update"],
      "gateway.networking.k8s.io/gateways/status": ["update"],
      "gateway.networking.k8s.io/httproutes/status": ["update"],
      "networking.k8s.io/ingresses": READ,
      "networking.k8s.io/ingressclasses": READ,
      "networking.k8s.io/ingresses/status": ["update"],
      "coordination.k8s.io/leases": ["create", "get", "update"],
    },
  );
});

Deno.test("k8s: the gateway container is locked down (non-root, read-only, no privileges)", () => {
  const pod = podSpec.securityContext ?? {};
  const c = gateway.securityContext ?? {};
  assert.equal(c.runAsNonRoot ?? pod.runAsNonRoot, true, "runAsNonRoot");
  const uid = c.runAsUser ?? pod.runAsUser;
  if (uid !== undefined) assert.notEqual(uid, 0, "runAsUser is not root");
  assert.equal(c.readOnlyRootFilesystem, true, "readOnlyRootFilesystem");
  assert.equal(c.allowPrivilegeEscalation, false, "allowPrivilegeEscalation");
  assert.notEqual(c.privileged, true, "not privileged");
  assert.ok(c.capabilities?.drop?.includes("ALL"), "capabilities.drop includes ALL");
  assert.deepEqual(c.capabilities?.add ?? [], [], "no capabilities added");
  assert.equal((c.seccompProfile ?? pod.seccompProfile)?.type, "RuntimeDefault", "seccomp");
  assert.notEqual(podSpec.hostNetwork, true);
  assert.notEqual(podSpec.hostPID, true);
});

Deno.test("k8s: every container image is pinned to a version (by the kustomization's images:)", () => {
  const images = kustomization.images ?? [];
  for (const d of only<IDeployment>("Deployment", manifests)) {
    for (const c of d.spec?.template.spec?.containers ?? []) {
      const [name, ownTag] = (c.image ?? "").split("@")[0].split(/:(?=[^/:]+$)/);
      const entry = images.find((i) => i.name === name);
      const pinned = c.image?.includes("@") || entry?.digest !== undefined
        ? "digest"
        : entry?.newTag ?? ownTag;
      assert.ok(pinned && pinned !== "latest", `${d.metadata?.name}: image ${c.image} unpinned`);
    }
  }
});

Deno.test("k8s: 2+ replicas, resources, probes on the admin port", () => {
  assert.ok((deployment.spec?.replicas ?? 1) >= 2, "replicas >= 2");
  const { requests, limits } = gateway.resources ?? {};
  for (const [name, values] of [["requests", requests], ["limits", limits]] as const) {
    assert.ok(values?.cpu !== undefined, `resources.${name}.cpu`);
    assert.ok(values?.memory !== undefined, `resources.${name}.memory`);
  }
  assert.equal(gateway.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(containerPort(gateway.livenessProbe?.httpGet?.port), adminPort);
  assert.equal(gateway.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(containerPort(gateway.readinessProbe?.httpGet?.port), adminPort);
  const ports = (gateway.ports ?? []).map((p) => p.containerPort).sort();
  assert.deepEqual(ports, [proxyPort, adminPort].sort(), "container ports");
});

Deno.test("k8s: shutdown lets in-flight requests drain", () => {
  const preStop = gateway.lifecycle?.preStop;
  assert.ok(preStop, "a preStop hook");
  let preStopSeconds = preStop.sleep?.seconds;
  if (preStopSeconds === undefined) {
    const command = preStop.exec?.command?.join(" ") ?? "";
    preStopSeconds = Number(command.match(/sleep\s+(\d+)/)?.[1]);
  }
  assert.ok(Number.isFinite(preStopSeconds) && preStopSeconds > 0, "preStop waits");
  const grace = config.server?.shutdown_grace_seconds ?? 25;
  const termination = podSpec.terminationGracePeriodSeconds ?? 30;
  assert.ok(
    termination > grace + preStopSeconds,
    `terminationGracePeriodSeconds ${termination} > shutdown_grace_seconds ${grace} + preStop ${preStopSeconds}`,
  );
  const rolling = deployment.spec?.strategy?.rollingUpdate;
  assert.equal(String(rolling?.maxUnavailable ?? "25%"), "0", "rollouts keep full capacity");
});

Deno.test("k8s: the Kubernetes 1.30 requirement of the preStop sleep action is stated where deployers read", () => {
  assert.ok(gateway.lifecycle?.preStop?.sleep, "the preStop hook is the sleep action");
  for (const path of [`${BASE}/kustomization.yaml`, `${BASE}/deployment.yaml`]) {
    assert.match(Deno.readTextFileSync(new URL(path, ROOT)), /Kubernetes 1\.30/i, path);
  }
  const docs = Deno.readTextFileSync(new URL("docs/kubernetes.md", ROOT));
  const deploymentDocs = docs.slice(docs.indexOf("\n# Deployment"));
  // In the section's opening lines, not buried further down.
  assert.match(deploymentDocs.split("\n").slice(0, 12).join("\n"), /Kubernetes 1\.30/);
});

Deno.test("k8s: the ConfigMap is mounted as the directory /etc/vanguard and the gateway reads it", () => {
  const mount = (gateway.volumeMounts ?? []).find((m) => m.mountPath === "/etc/vanguard");
  assert.ok(mount, "a volumeMount at /etc/vanguard");
  assert.equal(mount.subPath, undefined, "no subPath (it would stop updates propagating)");
  assert.equal(mount.subPathExpr, undefined, "no subPathExpr");
  assert.notEqual(mount.readOnly, false);
  const volume = (podSpec.volumes ?? []).find((v) => v.name === mount.name);
  assert.equal(volume?.configMap?.name, configMap.metadata?.name, "the volume is the ConfigMap");
  const args = gateway.args ?? [];
  const script = args.indexOf("main.ts");
  assert.ok(script >= 0, "args run main.ts");
  const appArgs = args.slice(script + 1);
  assert.equal(appArgs[appArgs.indexOf("--config") + 1], "/etc/vanguard/config.yaml");
});

Deno.test("k8s: the gateway's permission flags are explicit and narrow, and allow its Redis and upstreams", () => {
  assert.equal(gateway.command, undefined, "command is the image's (deno)");
  const args = gateway.args ?? [];
  assert.equal(args[0], "run");
  for (const arg of args) assert.doesNotMatch(arg, FORBIDDEN, `forbidden flag ${arg}`);
  assert.ok(args.includes("--cached-only"), "--cached-only");
  const denoFlags = args.slice(0, args.indexOf("main.ts"));

  const read = flagValue(denoFlags, "--allow-read");
  assert.ok(read, "--allow-read=LIST (an unrestricted --allow-read is too broad)");
  // The gateway's own code too: worker threads (server.workers) load their modules from it.
  assert.deepEqual(read.split(",").sort(), ["/app/lib", "/etc/vanguard", SA_DIR]);

  // --allow-net lists the listeners, and every $(VAR) in it is defined.
  const net = flagValue(denoFlags, "--allow-net");
  assert.ok(net, "--allow-net=LIST");
  const expanded = expand(net, env);
  assert.doesNotMatch(expanded, /\$\(/, `undefined variables in --allow-net: ${expanded}`);
  const entries = expanded.split(",");
  assert.ok(entries.includes(`0.0.0.0:${proxyPort}`), "proxy listener");
  assert.ok(entries.includes(`0.0.0.0:${adminPort}`), "admin listener");
  assert.ok(entries.includes(`${CLUSTER_ENV.KUBERNETES_SERVICE_HOST}:443`), "API server");

  // The Redis the config connects to (its url_env, as the kubelet sets it) is allowed, and the
  // upstream CIDR of the kustomization's settings.
  assert.equal(config.redis?.url, undefined, "the Redis URL is not written into the config");
  const redisUrl = env.get(config.redis?.url_env ?? "");
  assert.ok(redisUrl, `the Deployment sets ${config.redis?.url_env}`);
  const redis = new URL(redisUrl);
  assert.ok(entries.includes(`${redis.hostname}:${redis.port || "6379"}`), `${redis.host} allowed`);
  const settings = generatedConfigMaps(BASE).find((m) => m.name === "vanguard-settings");
  const cidr = (settings?.object.data as Record<string, string>)?.upstream_cidr;
  assert.ok(cidr && entries.includes(cidr), `upstream CIDR ${cidr} allowed`);
});

Deno.test("k8s: the Deployment's args are the image's CMD with --allow-net narrowed", () => {
  const dockerfile = DockerfileParser.parse(Deno.readTextFileSync(new URL("Dockerfile", ROOT)));
  const cmds = dockerfile.getInstructions().filter((i) => i.getKeyword() === "CMD");
  const cmd: string[] = JSON.parse(cmds[cmds.length - 1].getArgumentsContent() ?? "[]");
  const withoutNet = (list: string[]) => list.filter((a) => !a.startsWith("--allow-net"));
  assert.deepEqual(withoutNet(gateway.args ?? []), withoutNet(cmd));
});

Deno.test("k8s: the Service exposes the proxy port only", () => {
  const service = single<IService>("Service", "service.yaml");
  assert.ok(["LoadBalancer", "NodePort"].includes(service.spec?.type ?? ""), "type");
  const ports = service.spec?.ports ?? [];
  assert.ok(ports.length > 0, "a port");
  const podLabels = deployment.spec?.template.metadata?.labels ?? {};
  // Every Service that selects the gateway's pods (base or demo) routes to the proxy only.
  const selecting = only<IService>("Service", manifests).filter((s) => {
    const selector = Object.entries(s.spec?.selector ?? {});
    return selector.length > 0 && selector.every(([k, v]) => podLabels[k] === v);
  });
  assert.ok(selecting.includes(service), "the Service selects the gateway's pods");
  for (const s of selecting) {
    for (const p of s.spec?.ports ?? []) {
      const target = containerPort(p.targetPort ?? p.port);
      assert.equal(target, proxyPort, `${s.metadata?.name}: port ${p.port} -> ${p.targetPort}`);
      assert.notEqual(p.port, adminPort, "the admin port is not exposed");
    }
  }
});

Deno.test("k8s: no API key is shipped; the keys come from the Secret the docs tell you to create", () => {
  const keys = config.auth?.api_key?.keys ?? [];
  assert.ok(keys.length > 0, "the example config has API-key clients");
  for (const key of keys) {
    assert.equal(key.sha256, undefined, `${key.id}: a digest written into the ConfigMap`);
    assert.ok(key.value_env, `${key.id}: value_env`);
  }
  // Every key variable of the Secret reaches the container; a missing Secret stops the pod.
  const fromSecret = (gateway.envFrom ?? []).filter((f) => f.secretRef);
  assert.deepEqual(fromSecret.map((f) => f.secretRef?.name), ["vanguard-api-keys"]);
  assert.notEqual(fromSecret[0].secretRef?.optional, true, "the Secret is not optional");
  for (const name of keyVariables) {
    assert.ok(!(gateway.env ?? []).some((e) => e.name === name), `${name} is not a literal`);
  }
  // The documented `kubectl create secret` commands create exactly those variables.
  for (
    const path of ["docs/kubernetes.md", `${BASE}/kustomization.yaml`, `${DEMO}/kustomization.yaml`]
  ) {
    const text = Deno.readTextFileSync(new URL(path, ROOT)).replaceAll("\\\n", " ");
    const commands = [...text.matchAll(/create secret generic vanguard-api-keys([^\n]*)/g)];
    assert.ok(commands.length > 0, `${path} shows how to create the Secret`);
    for (const [, rest] of commands) {
      const created = [...rest.matchAll(/--from-literal=([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) =>
        m[1]
      );
      assert.deepEqual(created.sort(), [...keyVariables].sort(), `${path}: ${rest}`);
    }
  }
});

Deno.test("k8s: the ConfigMap's config passes deno task validate with the Deployment's environment, and anywhere else with a warning per variable the gateway would refuse to start without", async () => {
  for (const name of keyVariables) assert.equal(Deno.env.get(name), undefined, `${name} is unset`);
  const secret = Object.fromEntries(keyVariables.map((name) => [name, crypto.randomUUID()]));
  const ok = await validateConfig(configText, { ...Object.fromEntries(env), ...secret });
  assert.equal(ok.code, 0, `validate failed:\n${ok.output}`);
  assert.match(ok.output, /config OK/);
  assert.doesNotMatch(ok.output, /warning/i);

  // Away from the cluster (contract section 8: the ConfigMap's config passes validate), every
  // variable the Deployment sets is missing: each is a warning saying start refuses it, so the
  // gateway would not start without the Secret instead of answering 401 to every request.
  const away = await validateConfig(configText, {});
  assert.equal(away.code, 0, away.output);
  assert.match(away.output, /config OK/);
  for (const name of [...keyVariables, "REDIS_URL"]) {
    assert.match(
      away.output,
      new RegExp(`"${name}" is not set here; deno task start refuses to start without it`),
    );
  }
});

Deno.test("k8s: the demo overlay's Redis is marked demo-only, locked down, and where the gateway looks", () => {
  const redisFile = `${DEMO}/redis-demo.yaml`;
  assert.match(Deno.readTextFileSync(new URL(redisFile, ROOT)), /not for production/i);
  const redis = demo.filter((m) => m.source === redisFile);
  for (const d of only<IDeployment>("Deployment", redis)) {
    const spec = d.spec?.template.spec;
    for (const c of spec?.containers ?? []) {
      const sc = c.securityContext ?? {};
      assert.equal(sc.runAsNonRoot ?? spec?.securityContext?.runAsNonRoot, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.ok(sc.capabilities?.drop?.includes("ALL"));
    }
  }
  const services = only<IService>("Service", redis);
  assert.equal(services.length, 1);
  assert.equal(services[0].spec?.type ?? "ClusterIP", "ClusterIP", "the demo Redis is not exposed");
  // The demo's redis_address names that Service (same namespace) and its port.
  const demoKustomization = readKustomization(DEMO);
  const literal = [...generatedConfigMaps(DEMO), ...generatedConfigMaps(BASE)]
    .map((m) => (m.object.data as Record<string, string>).redis_address)
    .find((value) => value !== undefined);
  assert.equal(literal, `${services[0].metadata?.name}:${services[0].spec?.ports?.[0].port}`);
  // The demo has its own namespace, created by the overlay itself.
  const namespaces = demo.filter((m) => m.kind === "Namespace").map((m) => m.name);
  assert.deepEqual(namespaces, [demoKustomization.namespace]);
});

Deno.test("k8s: the admin listener binds the pod's address for the probes and is protected by a token from the Secret", () => {
  assert.equal(config.server?.admin_host, "0.0.0.0", "the kubelet probes the pod's address");
  const token = config.server?.admin_token_env;
  assert.ok(
    token,
    "admin_token_env: the dashboard, /metrics and /routes are not open to the pod network",
  );
  assert.ok(!(gateway.env ?? []).some((e) => e.name === token), `${token} is not a literal`);
  // The probes need no token: /healthz and /readyz stay open on the admin port.
  assert.equal(gateway.readinessProbe?.httpGet?.httpHeaders, undefined);
});
