/**
 * Reading the Kubernetes manifests for the deploy tests: the source files a kustomization
 * lists, the objects `kubectl kustomize` renders from it (where kubectl is installed), schema
 * validation with kubernetes-models, and a container's environment and arguments expanded the
 * way the kubelet expands them.
 */
import assert from "node:assert/strict";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import type { IContainer } from "kubernetes-models/v1/Container";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url);

/** One object of a manifest file or of kustomize's output. */
export interface Manifest {
  /** Where it came from: a file relative to the repository, or `kustomize <dir>`. */
  source: string;
  apiVersion: string;
  kind: string;
  name: string;
  /** As written; undefined when the object names none. */
  namespace?: string;
  object: Record<string, unknown>;
}

/** The fields of a kustomization.yaml these manifests use. */
export interface Kustomization {
  namespace?: string;
  bases?: string[];
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  configMapGenerator?: { name: string; behavior?: string; literals?: string[] }[];
}

/** Kinds that live outside namespaces (of those these manifests hold). */
export const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding"]);

/** The names of the RBAC kinds, in the order kustomize emits them. */
export const RBAC_KINDS = [
  "ServiceAccount",
  "Role",
  "ClusterRole",
  "RoleBinding",
  "ClusterRoleBinding",
];

/** A model class: validates its data against the schema, throws when invalid. */
type ModelClass = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

/** Every non-empty YAML document of `text` as a Manifest; YAML errors and warnings fail. */
export function parseManifests(text: string, source: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    assert.deepEqual(doc.errors.map((e) => e.message), [], `${source}: YAML errors`);
    assert.deepEqual(doc.warnings.map((e) => e.message), [], `${source}: YAML warnings`);
    const object: unknown = doc.toJS();
    if (object === null || object === undefined) continue;
    assert.ok(typeof object === "object" && !Array.isArray(object), `${source}: not an object`);
    const o = object as Record<string, unknown>;
    const metadata = (o.metadata ?? {}) as { name?: string; namespace?: string };
    assert.equal(typeof o.apiVersion, "string", `${source}: apiVersion`);
    assert.equal(typeof o.kind, "string", `${source}: kind`);
    assert.ok(metadata.name, `${source}: ${o.kind} without metadata.name`);
    out.push({
      source,
      apiVersion: o.apiVersion as string,
      kind: o.kind as string,
      name: metadata.name,
      namespace: metadata.namespace,
      object: o,
    });
  }
  return out;
}

/** The kustomization.yaml of `dir` (relative to the repository). */
export function readKustomization(dir: string): Kustomization {
  const text = Deno.readTextFileSync(new URL(`${dir}/kustomization.yaml`, ROOT));
  return parseYaml(text) as Kustomization;
}

/** The objects of the files (not directories) a kustomization lists in `resources:`, in order. */
export function sourceManifests(dir: string): Manifest[] {
  return (readKustomization(dir).resources ?? []).flatMap((file) => {
    const path = `${dir}/${file}`;
    return parseManifests(Deno.readTextFileSync(new URL(path, ROOT)), path);
  });
}

/**
 * The ConfigMaps a kustomization's `configMapGenerator` makes, under their unhashed names
 * (kustomize appends a hash of the data and renames the references to match).
 */
export function generatedConfigMaps(dir: string): Manifest[] {
  return (readKustomization(dir).configMapGenerator ?? []).map((generator) => {
    const data = Object.fromEntries((generator.literals ?? []).map((literal) => {
      const at = literal.indexOf("=");
      return [literal.slice(0, at), literal.slice(at + 1)];
    }));
    const object = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: generator.name },
      data,
    };
    return {
      source: `${dir}/kustomization.yaml`,
      apiVersion: "v1",
      kind: "ConfigMap",
      name: generator.name,
      object,
    };
  });
}

/** Whether `kubectl` can be run here, and why not when it cannot. */
export type KubectlProbe = { ok: true; version: string } | { ok: false; reason: string };

/** Runs `kubectl version --client` once. */
export async function probeKubectl(): Promise<KubectlProbe> {
  try {
    const output = await new Deno.Command("kubectl", {
      args: ["version", "--client"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    if (!output.success) {
      return {
        ok: false,
        reason: `kubectl version failed: ${new TextDecoder().decode(output.stderr)}`,
      };
    }
    const version = text.match(/v\d+\.\d+\.\d+/)?.[0] ?? "unknown version";
    return { ok: true, version };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { ok: false, reason: "kubectl is not installed" };
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return { ok: false, reason: "the test runs without --allow-run=kubectl" };
    }
    throw error;
  }
}

/** `kubectl kustomize <dir>` (dir relative to the repository, or absolute), parsed. */
export async function kustomize(dir: string | URL): Promise<Manifest[]> {
  const path = dir instanceof URL ? dir.pathname : new URL(dir, ROOT).pathname;
  const output = await new Deno.Command("kubectl", {
    args: ["kustomize", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `kubectl kustomize ${dir} failed:\n${stderr}`);
  const name = dir instanceof URL ? "a test overlay" : dir;
  return parseManifests(new TextDecoder().decode(output.stdout), `kustomize ${name}`);
}

/** A kustomization written into a fresh directory under tests/.tmp/, removed on dispose. */
export interface Overlay extends AsyncDisposable {
  dir: URL;
}

/**
 * Writes a kustomization into a new directory under tests/.tmp/. `text` gets the path from
 * that directory to the repository root, e.g. to write `bases: [${repo}/k8s]`.
 */
export async function writeOverlay(text: (repo: string) => string): Promise<Overlay> {
  const dir = new URL(`tests/.tmp/kustomize-${crypto.randomUUID()}/`, ROOT);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(new URL("kustomization.yaml", dir), text("../../.."));
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** "source: Kind name: schema message" for every object that fails its Kubernetes schema. */
export function schemaProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests) {
    const Model = MODELS[`${m.apiVersion}/${m.kind}`];
    if (!Model) {
      problems.push(`${m.source}: no schema model for ${m.apiVersion} ${m.kind}`);
      continue;
    }
    try {
      new Model(m.object as never).validate();
    } catch (error) {
      problems.push(`${m.source}: ${m.kind} ${m.name}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * `$(NAME)` references replaced as the kubelet does in env values, command and args:
 * defined names by their value, `$$` by `$`, undefined names left as written.
 */
export function expand(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name?: string) => {
    if (match === "$$") return "$";
    return env.get(name!) ?? match;
  });
}

/** What a container's environment draws on besides its own literals. */
export interface EnvironmentSources {
  /** The pod's namespace (for `fieldRef: metadata.namespace`). */
  namespace: string;
  /** The ConfigMaps the container may reference, by name. */
  configMaps: Manifest[];
  /** Values for the variables Kubernetes itself sets (KUBERNETES_SERVICE_HOST, ...). */
  cluster?: Record<string, string>;
}

/**
 * A container's environment as the kubelet builds it: `envFrom` ConfigMaps, then `env` in order,
 * each value expanded with the variables before it. A reference to a missing ConfigMap or key
 * fails (the kubelet would not start the container). Secrets are not known here: `envFrom`
 * Secrets and `secretKeyRef` values are left out.
 */
export function containerEnvironment(
  container: IContainer,
  sources: EnvironmentSources,
): Map<string, string> {
  const env = new Map<string, string>(Object.entries(sources.cluster ?? {}));
  const configMap = (name: string) => {
    const found = sources.configMaps.find((m) => m.kind === "ConfigMap" && m.name === name);
    assert.ok(found, `container ${container.name}: ConfigMap ${name} does not exist`);
    return (found.object.data ?? {}) as Record<string, string>;
  };
  for (const from of container.envFrom ?? []) {
    if (!from.configMapRef) continue;
    for (const [key, value] of Object.entries(configMap(from.configMapRef.name!))) {
      env.set(`${from.prefix ?? ""}${key}`, value);
    }
  }
  for (const variable of container.env ?? []) {
    const ref = variable.valueFrom;
    if (ref?.configMapKeyRef) {
      const data = configMap(ref.configMapKeyRef.name!);
      const value = data[ref.configMapKeyRef.key];
      assert.ok(
        value !== undefined,
        `${variable.name}: key ${ref.configMapKeyRef.key} of ConfigMap ${ref.configMapKeyRef.name}`,
      );
      env.set(variable.name, value);
    } else if (ref?.fieldRef?.fieldPath === "metadata.namespace") {
      env.set(variable.name, sources.namespace);
    } else if (ref === undefined) {
      env.set(variable.name, expand(variable.value ?? "", env));
    }
  }
  return env;
}

/** The value of `--flag=VALUE` in `args`; "" for a bare `--flag`; undefined when absent. */
export function flagValue(args: string[], flag: string): string | undefined {
  const found = args.find((a) => a === flag || a.startsWith(`${flag}=`));
  return found?.includes("=") ? found.slice(found.indexOf("=") + 1) : found && "";
}

/** Runs `deno task validate` on a config text with `env` added; returns exit code and output. */
export async function validateConfig(
  text: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const dir = new URL("tests/.tmp/", ROOT);
  await Deno.mkdir(dir, { recursive: true });
  const path = `tests/.tmp/k8s-config-${crypto.randomUUID()}.yaml`;
  await Deno.writeTextFile(new URL(path, ROOT), text);
  try {
    const result = await new Deno.Command("deno", {
      args: ["task", "-q", "validate", path],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).output();
    const decoder = new TextDecoder();
    return {
      code: result.code,
      output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
    };
  } finally {
    await Deno.remove(new URL(path, ROOT));
  }
}
