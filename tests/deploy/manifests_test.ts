/**
 * Parses every document of every k8s/*.yaml, validates each object against
 * the Kubernetes OpenAPI schema (npm kubernetes-models), and checks the
 * properties the contract promises (section 8): least-privilege RBAC, a
 * locked-down gateway container, probes on the admin port, a Service that
 * exposes the proxy port only, and a ConfigMap whose config validates.
 */
import assert from "node:assert/strict";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { type IService, Service } from "kubernetes-models/v1/Service";
import { type IServiceAccount, ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import {
  ClusterRole,
  type IClusterRole,
} from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import {
  ClusterRoleBinding,
  type IClusterRoleBinding,
} from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { type IRole, Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import {
  type IRoleBinding,
  RoleBinding,
} from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { DockerfileParser } from "dockerfile-ast";

const root = new URL("../../", import.meta.url);
const CONTRACT_FILES = ["rbac.yaml", "configmap.yaml", "deployment.yaml", "service.yaml"];
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const FORBIDDEN = /^(-A|--allow-all|--allow-write|--allow-run|--allow-ffi)(=|$)/;

/** A model class: validates its data against the schema, throws when invalid. */
type ModelClass = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  object: Record<string, unknown>;
}

/** Every non-empty document of every k8s/*.yaml, in file order. */
function loadManifests(): Manifest[] {
  const dir = new URL("k8s/", root);
  const files = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort();
  const out: Manifest[] = [];
  for (const file of files) {
    const text = Deno.readTextFileSync(new URL(file, dir));
    for (const doc of parseAllDocuments(text)) {
      assert.deepEqual(doc.errors.map((e) => e.message), [], `${file}: YAML errors`);
      assert.deepEqual(doc.warnings.map((e) => e.message), [], `${file}: YAML warnings`);
      const object: unknown = doc.toJS();
      if (object === null || object === undefined) continue;
      assert.ok(typeof object === "object" && !Array.isArray(object), `${file}: not an object`);
      const o = object as Record<string, unknown>;
      const metadata = (o.metadata ?? {}) as { name?: string; namespace?: string };
      assert.equal(typeof o.apiVersion, "string", `${file}: apiVersion`);
      assert.equal(typeof o.kind, "string", `${file}: kind`);
      assert.ok(metadata.name, `${file}: ${o.kind} without metadata.name`);
      out.push({
        file,
        apiVersion: o.apiVersion as string,
        kind: o.kind as string,
        name: metadata.name,
        namespace: metadata.namespace ?? "default",
        object: o,
      });
    }
  }
  return out;
}

const manifests = loadManifests();
const contract = manifests.filter((m) => CONTRACT_FILES.includes(m.file));

function only<T>(kind: string, from: Manifest[] = contract): T[] {
  return from.filter((m) => m.kind === kind).map((m) => m.object as T);
}
function single<T>(kind: string, file: string): T {
  const found = contract.filter((m) => m.kind === kind && m.file === file);
  assert.equal(found.length, 1, `exactly one ${kind} in k8s/${file}`);
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
  server?: { port?: number; admin_port?: number; shutdown_grace_seconds?: number };
  redis?: { url?: string };
};
const proxyPort = config.server?.port ?? 8000;
const adminPort = config.server?.admin_port ?? 8001;

/** A probe's or Service's port (number or container port name) as a number. */
function containerPort(port: number | string | undefined): number | undefined {
  if (typeof port === "number") return port;
  if (typeof port === "string" && /^\d+$/.test(port)) return Number(port);
  return gateway.ports?.find((p) => p.name === port)?.containerPort;
}

function flagValue(args: string[], flag: string): string | undefined {
  const found = args.find((a) => a === flag || a.startsWith(`${flag}=`));
  return found?.includes("=") ? found.slice(found.indexOf("=") + 1) : found && "";
}

Deno.test("k8s: every document parses and validates against the Kubernetes schema", () => {
  for (const file of CONTRACT_FILES) {
    assert.ok(manifests.some((m) => m.file === file), `k8s/${file} has objects`);
  }
  for (const m of manifests) {
    const Model = MODELS[`${m.apiVersion}/${m.kind}`];
    assert.ok(Model, `${m.file}: no model for ${m.apiVersion} ${m.kind}`);
    try {
      new Model(m.object as never).validate();
    } catch (error) {
      assert.fail(`${m.file}: ${m.kind} ${m.name}: ${(error as Error).message}`);
    }
    assert.equal(m.namespace, "default", `${m.file}: ${m.kind} ${m.name} namespace`);
  }
  const names = manifests.map((m) => `${m.kind}/${m.namespace}/${m.name}`);
  assert.equal(new Set(names).size, names.length, `duplicate objects: ${names}`);
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
  const ours = bindings.filter((b) =>
    (b.subjects ?? []).some((s) =>
      s.kind === "ServiceAccount" && s.name === accountName &&
      (s.namespace ?? b.metadata?.namespace ?? "default") === "default"
    )
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

Deno.test("k8s: every container image is pinned to a version", () => {
  for (const d of only<IDeployment>("Deployment", manifests)) {
    for (const c of d.spec?.template.spec?.containers ?? []) {
      const image = c.image ?? "";
      const tag = image.includes("@") ? "digest" : image.split("/").pop()?.split(":")[1];
      assert.ok(tag && tag !== "latest", `${d.metadata?.name}: image ${image} is not pinned`);
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

Deno.test("k8s: the gateway's permission flags are explicit and narrow", () => {
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

  // --allow-net lists the listeners and every address it references resolves.
  const net = flagValue(denoFlags, "--allow-net");
  assert.ok(net, "--allow-net=LIST");
  const entries = net.split(",");
  assert.ok(entries.includes(`0.0.0.0:${proxyPort}`), "proxy listener");
  assert.ok(entries.includes(`0.0.0.0:${adminPort}`), "admin listener");
  const env = new Map((gateway.env ?? []).map((e) => [e.name, e.value]));
  for (const [, name] of net.matchAll(/\$\(([A-Z0-9_]+)\)/g)) {
    assert.ok(
      env.has(name) || /^KUBERNETES_SERVICE_(HOST|PORT)$/.test(name),
      `$(${name}) in --allow-net is defined`,
    );
  }
  assert.ok(net.includes("$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"), "API server");
  // Redis as configured is allowed.
  const redis = config.redis?.url && new URL(config.redis.url);
  if (redis) {
    const address = `${redis.hostname}:${redis.port || "6379"}`;
    const expanded = entries.map((e) =>
      e.replace(/\$\(([A-Z0-9_]+)\)/g, (_, n: string) => env.get(n) ?? "")
    );
    assert.ok(expanded.includes(address), `Redis ${address} is in --allow-net`);
  }
});

Deno.test("k8s: the Deployment's args are the image's CMD with --allow-net narrowed", () => {
  const dockerfile = DockerfileParser.parse(Deno.readTextFileSync(new URL("Dockerfile", root)));
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
  // Every Service that selects the gateway's pods (in any k8s/ file) routes to the proxy only.
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

Deno.test("k8s: the ConfigMap's config passes deno task validate", async () => {
  const dir = new URL("tests/.tmp/", root);
  Deno.mkdirSync(dir, { recursive: true });
  const path = "tests/.tmp/configmap-config.yaml";
  Deno.writeTextFileSync(new URL(path, root), configText);
  const output = await new Deno.Command("deno", {
    args: ["task", "-q", "validate", path],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `validate failed:\n${stdout}${stderr}`);
  assert.match(stdout, /config OK/);
});

Deno.test("k8s: the demo Redis, if present, is marked demo-only and locked down too", () => {
  const demo = manifests.filter((m) => m.file === "redis-demo.yaml");
  if (demo.length === 0) return;
  const text = Deno.readTextFileSync(new URL("k8s/redis-demo.yaml", root));
  assert.match(text, /not for production/i);
  for (const d of only<IDeployment>("Deployment", demo)) {
    const spec = d.spec?.template.spec;
    for (const c of spec?.containers ?? []) {
      const sc = c.securityContext ?? {};
      assert.equal(sc.runAsNonRoot ?? spec?.securityContext?.runAsNonRoot, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.ok(sc.capabilities?.drop?.includes("ALL"));
    }
  }
  for (const s of only<IService>("Service", demo)) {
    assert.equal(s.spec?.type ?? "ClusterIP", "ClusterIP", "the demo Redis is not exposed");
  }
});
