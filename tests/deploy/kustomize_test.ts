/**
 * What `kubectl apply -k` would apply: the output of `kubectl kustomize` for the base k8s/,
 * the demo overlay examples/k8s-demo/ and an overlay written by the test that sets every knob
 * once (namespace, image, Redis address, upstream CIDR). Each is validated against the
 * Kubernetes schemas (kubernetes-models), and each knob must reach every place that uses it.
 * Skipped, with the reason in the test names, where kubectl cannot be run.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IService } from "kubernetes-models/v1/Service";
import {
  CLUSTER_SCOPED,
  containerEnvironment,
  expand,
  flagValue,
  kustomize,
  type Manifest,
  probeKubectl,
  RBAC_KINDS,
  schemaProblems,
  validateConfig,
  writeOverlay,
} from "./k8s_objects.ts";

const kubectl = await probeKubectl();
const skipped = kubectl.ok ? "" : ` (skipped: ${kubectl.reason})`;
const CLUSTER_ENV = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

/** The one object of `kind` named `name` (a generated ConfigMap by its unhashed name). */
function find(objects: Manifest[], kind: string, name: string): Manifest {
  const found = objects.filter((m) =>
    m.kind === kind && (m.name === name || m.name.match(/^(.*)-[a-z0-9]{10}$/)?.[1] === name)
  );
  assert.equal(found.length, 1, `one ${kind} ${name} in ${objects[0]?.source}`);
  return found[0];
}

/** The gateway: its Deployment, container, environment (as the kubelet makes it) and flags. */
function gatewayOf(objects: Manifest[]) {
  const deployment = find(objects, "Deployment", "vanguard");
  const spec = (deployment.object as unknown as IDeployment).spec?.template.spec;
  const container = spec?.containers.find((c) => c.name === "vanguard") as IContainer;
  assert.ok(container, "the gateway container");
  const env = containerEnvironment(container, {
    namespace: deployment.namespace ?? "default",
    configMaps: objects.filter((m) => m.namespace === deployment.namespace),
    cluster: CLUSTER_ENV,
  });
  const args = (container.args ?? []).map((arg) => expand(arg, env));
  const allowNet = (flagValue(args, "--allow-net") ?? "").split(",");
  return { deployment, container, env, allowNet };
}

/** "problem" lines for every namespaced object (and binding subject) not in `namespace`. */
function namespaceProblems(objects: Manifest[], namespace: string): string[] {
  const problems: string[] = [];
  for (const m of objects) {
    const expected = CLUSTER_SCOPED.has(m.kind) ? undefined : namespace;
    if (m.namespace !== expected) problems.push(`${m.kind} ${m.name} in ${m.namespace}`);
    for (const s of (m.object.subjects ?? []) as { kind: string; namespace?: string }[]) {
      if (s.kind === "ServiceAccount" && s.namespace !== namespace) {
        problems.push(`${m.kind} ${m.name}: subject in ${s.namespace}`);
      }
    }
  }
  return problems;
}

/** The rendered config.yaml validates with the environment the Deployment gives the gateway. */
async function assertConfigValidates(objects: Manifest[]) {
  const { env } = gatewayOf(objects);
  const data = find(objects, "ConfigMap", "vanguard-config").object.data as Record<string, string>;
  const config = parseYaml(data["config.yaml"]) as {
    redis?: { url_env?: string };
    auth?: { api_key?: { keys?: { value_env?: string }[] } };
  };
  // Stand-ins for the Secret vanguard-api-keys, which is never part of the manifests.
  const secret = Object.fromEntries(
    (config.auth?.api_key?.keys ?? []).flatMap((k) => k.value_env ?? [])
      .map((name) => [name, crypto.randomUUID()]),
  );
  const result = await validateConfig(data["config.yaml"], {
    ...Object.fromEntries(env),
    ...secret,
  });
  assert.equal(result.code, 0, result.output);
  return { config, env };
}

Deno.test({
  name:
    `kustomize: kubectl kustomize k8s/ renders valid objects, RBAC and config before the Deployment${skipped}`,
  ignore: !kubectl.ok,
  async fn() {
    const objects = await kustomize("k8s");
    assert.deepEqual(schemaProblems(objects), []);
    assert.deepEqual(
      objects.map((m) => `${m.kind}/${m.name.replace(/-[a-z0-9]{10}$/, "")}`).sort(),
      [
        "ClusterRole/vanguard-discovery",
        "ClusterRoleBinding/vanguard-discovery",
        "ConfigMap/vanguard-config",
        "ConfigMap/vanguard-settings",
        "Deployment/vanguard",
        "Role/vanguard-status-lease",
        "RoleBinding/vanguard-status-lease",
        "Service/vanguard",
        "ServiceAccount/vanguard",
      ],
      "the base holds the gateway only (the demo Redis is in examples/k8s-demo)",
    );
    // kubectl apply -k applies in this order: the permissions and the config exist before the
    // first pod asks for them. (kustomize puts Services before Deployments.)
    const kinds = objects.map((m) => m.kind);
    const lastRbac = Math.max(...RBAC_KINDS.map((kind) => kinds.lastIndexOf(kind)));
    assert.ok(lastRbac < kinds.indexOf("ConfigMap"), `RBAC before ConfigMaps: ${kinds}`);
    assert.ok(kinds.lastIndexOf("ConfigMap") < kinds.indexOf("Deployment"), `${kinds}`);
    assert.deepEqual(namespaceProblems(objects, "default"), []);

    const { container, env, allowNet } = gatewayOf(objects);
    assert.equal(container.image, "ghcr.io/example/vanguard:1.0.0");
    assert.equal(env.get("REDIS_URL"), "redis://vanguard-redis:6379");
    assert.ok(allowNet.includes("vanguard-redis:6379"), `${allowNet}`);
    assert.ok(allowNet.includes("10.0.0.0/8"), `${allowNet}`);
    await assertConfigValidates(objects);
  },
});

Deno.test({
  name:
    `kustomize: an overlay that sets namespace, image, Redis address and upstream CIDR once changes every place that uses them${skipped}`,
  ignore: !kubectl.ok,
  async fn() {
    const base = await kustomize("k8s");
    // `bases:` so that kubectl before 1.21 (kustomize v2) reads the directory too.
    await using overlay = await writeOverlay((repo) => `
namespace: edge-gw
bases:
  - ${repo}/k8s
images:
  - name: ghcr.io/example/vanguard
    newName: registry.example.test/platform/vanguard
    newTag: "2.4.1"
configMapGenerator:
  - name: vanguard-settings
    behavior: merge
    literals:
      - redis_address=redis.cache.svc.cluster.local:6380
      - upstream_cidr=172.20.0.0/16,192.168.7.0/24
`);
    const objects = await kustomize(overlay.dir);
    assert.deepEqual(schemaProblems(objects), []);
    assert.equal(objects.length, base.length, "the same objects");

    // The namespace: every object, both bindings' subjects, the Lease's Role (POD_NAMESPACE
    // comes from the pod itself).
    assert.deepEqual(namespaceProblems(objects, "edge-gw"), []);
    const { container, env, allowNet, deployment } = gatewayOf(objects);
    assert.equal(env.get("POD_NAMESPACE"), "edge-gw");
    assert.equal(find(objects, "Role", "vanguard-status-lease").namespace, "edge-gw");

    // The image.
    assert.equal(container.image, "registry.example.test/platform/vanguard:2.4.1");

    // Redis: the URL the config reads and the address --allow-net lets through.
    const { config } = await assertConfigValidates(objects);
    assert.equal(config.redis?.url_env, "REDIS_URL");
    assert.equal(env.get("REDIS_URL"), "redis://redis.cache.svc.cluster.local:6380");
    assert.ok(allowNet.includes("redis.cache.svc.cluster.local:6380"), `${allowNet}`);

    // The upstream CIDRs, in --allow-net.
    assert.ok(allowNet.includes("172.20.0.0/16") && allowNet.includes("192.168.7.0/24"));

    // No trace of the base's values is left anywhere (the config's own
    // discovery.kubernetes.namespace, where applications live, is not the gateway's).
    const text = JSON.stringify(objects.map((m) => m.object));
    for (const old of ["ghcr.io/example/vanguard", "vanguard-redis:6379", "10.0.0.0/8"]) {
      assert.ok(!text.includes(old), `${old} is still in the output`);
    }

    // A new address changes the generated ConfigMap's name, so applying it rolls the pods
    // (which --allow-net needs: the flags are fixed when a pod starts).
    const settingsName = (objects: Manifest[]) =>
      find(objects, "ConfigMap", "vanguard-settings").name;
    assert.notEqual(settingsName(objects), settingsName(base));
    assert.ok(JSON.stringify(deployment.object).includes(settingsName(objects)));
  },
});

Deno.test({
  name:
    `kustomize: the demo overlay runs the gateway and a throwaway Redis in a namespace of their own${skipped}`,
  ignore: !kubectl.ok,
  async fn() {
    const objects = await kustomize("examples/k8s-demo");
    assert.deepEqual(schemaProblems(objects), []);
    assert.equal(objects[0].kind, "Namespace", "the namespace is created first");
    assert.equal(objects[0].name, "vanguard-demo");
    assert.deepEqual(namespaceProblems(objects, "vanguard-demo"), []);

    const redis = find(objects, "Service", "vanguard-redis").object as unknown as IService;
    find(objects, "Deployment", "vanguard-redis");
    const { env, allowNet } = gatewayOf(objects);
    const address = `${redis.metadata?.name}:${redis.spec?.ports?.[0].port}`;
    assert.equal(env.get("REDIS_URL"), `redis://${address}`, "the gateway uses the demo Redis");
    assert.ok(allowNet.includes(address));
    await assertConfigValidates(objects);
  },
});
