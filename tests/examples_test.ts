/**
 * Every ready config in examples/ passes `deno task validate`, run as the task runs it (a child
 * process with the task's own flags), so the files the README points newcomers to keep loading.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), ".."));
const EXAMPLES = [
  "quickstart.yaml",
  "redis.yaml",
  "redis-cluster.yaml",
  "redis-sentinel.yaml",
  "kubernetes.yaml",
  "plugin.yaml",
  "edge-routing.yaml",
];

for (const name of EXAMPLES) {
  Deno.test(`examples/${name} passes deno task validate`, async () => {
    const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
    delete env.KUBECONFIG;
    const output = await new Deno.Command("deno", {
      args: ["run", "--allow-read=.", "--allow-env", "main.ts", "validate", `examples/${name}`],
      cwd: ROOT,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, text);
    assert.match(text, /config OK/);
    assert.doesNotMatch(text, /warning/, "an example should load without warnings");
  });
}
