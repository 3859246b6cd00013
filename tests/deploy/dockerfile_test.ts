/**
 * Lints the Dockerfile (there is no Docker engine to build it here): stages,
 * pinned base images, a non-root user, the exposed ports, and a command line
 * with explicit, narrow permission flags that writes nothing at run time.
 */
import assert from "node:assert/strict";
import {
  Copy,
  DockerfileParser,
  Env,
  From,
  type Instruction,
  JSONInstruction,
} from "dockerfile-ast";

const root = new URL("../../", import.meta.url);
const dockerfileText = Deno.readTextFileSync(new URL("Dockerfile", root));

interface Stage {
  from: From;
  instructions: Instruction[];
}

/** The build stages in order, each with the instructions after its FROM. */
function stages(text: string): Stage[] {
  const out: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction instanceof From) out.push({ from: instruction, instructions: [] });
    else if (out.length > 0) out[out.length - 1].instructions.push(instruction);
    else assert.equal(instruction.getKeyword(), "ARG", "only ARG may precede the first FROM");
  }
  return out;
}

const all = stages(dockerfileText);
const final = all[all.length - 1];
const of = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.getKeyword() === keyword);

/** An exec-form (JSON array) CMD or ENTRYPOINT, as its list of strings. */
function execForm(instruction: Instruction): string[] {
  assert.ok(
    instruction instanceof JSONInstruction && instruction.getOpeningBracket() !== null,
    `${instruction.getKeyword()} must use the exec form ["...", ...]: the final image has no shell`,
  );
  const parsed: unknown = JSON.parse(instruction.getArgumentsContent() ?? "");
  assert.ok(Array.isArray(parsed) && parsed.every((s) => typeof s === "string"));
  return parsed as string[];
}

/** The final stage's command line: ENTRYPOINT (if set here) followed by CMD. */
function finalCommand(): string[] {
  const entrypoints = of(final, "ENTRYPOINT");
  const cmds = of(final, "CMD");
  assert.ok(cmds.length + entrypoints.length > 0, "the final stage needs a CMD or ENTRYPOINT");
  return [
    ...(entrypoints.length > 0 ? execForm(entrypoints[entrypoints.length - 1]) : []),
    ...(cmds.length > 0 ? execForm(cmds[cmds.length - 1]) : []),
  ];
}

/** The `--flag` / `--flag=value` entries of a deno task's command line. */
function taskFlags(name: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root)));
  const task: unknown = config.tasks?.[name];
  const command = typeof task === "string" ? task : (task as { command: string }).command;
  return command.split(/\s+/).filter((token) => token.startsWith("--"));
}

const FORBIDDEN = /^(-A|--allow-all|--allow-write|--allow-run|--allow-ffi)(=|$)/;

Deno.test("Dockerfile: multi-stage, every base image pinned to an exact version", () => {
  assert.ok(all.length >= 2, `expected a build stage and a final stage, got ${all.length} FROM`);
  const stageNames = new Set<string>();
  for (const { from } of all) {
    const image = from.getImage() ?? "";
    assert.ok(!image.includes("$"), `FROM ${image}: no build-arg images, pin it literally`);
    if (stageNames.has(image)) continue; // FROM an earlier stage
    const tag = from.getImageTag();
    const digest = from.getImageDigest();
    if (digest !== null) {
      assert.match(digest, /^sha256:[0-9a-f]{64}$/, `FROM ${image}: bad digest`);
    } else {
      assert.ok(tag !== null, `FROM ${image}: untagged (means latest), pin a version`);
      assert.notEqual(tag, "latest", `FROM ${image}: latest is not a version`);
      assert.match(tag, /\d+\.\d+\.\d+/, `FROM ${image}: the tag must name an exact version`);
    }
    const name = from.getBuildStage();
    if (name !== null) stageNames.add(name);
  }
});

Deno.test("Dockerfile: the Deno version of the base images is the one the project uses", () => {
  const [major, minor] = Deno.version.deno.split(".").map(Number);
  for (const { from } of all) {
    const image = from.getImageName() ?? "";
    if (!image.endsWith("denoland/deno")) continue;
    const version = (from.getImageTag() ?? "").match(/(\d+)\.(\d+)\.(\d+)/);
    assert.ok(version, `FROM ${from.getImage()}: no version`);
    // The same version for build and run stages, and no newer than the tested one.
    const [, a, b] = version.map(Number);
    assert.ok(a < major || (a === major && b <= minor), `${from.getImage()} is newer than deno`);
  }
  const versions = all
    .filter(({ from }) => (from.getImageName() ?? "").endsWith("denoland/deno"))
    .map(({ from }) => (from.getImageTag() ?? "").match(/\d+\.\d+\.\d+/)?.[0]);
  assert.ok(versions.length >= 2, "build and final stages both come from denoland/deno");
  assert.equal(new Set(versions).size, 1, `one Deno version for every stage: ${versions}`);
});

Deno.test("Dockerfile: the final stage runs as a numeric non-root USER", () => {
  const users = of(final, "USER");
  assert.ok(users.length > 0, "the final stage must set USER");
  const user = (users[users.length - 1].getArgumentsContent() ?? "").trim().split(":")[0];
  assert.notEqual(user, "root");
  assert.notEqual(user, "0");
  // Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
  assert.match(user, /^[1-9]\d*$/);
});

Deno.test("Dockerfile: EXPOSE the proxy (8000) and admin (8001) ports", () => {
  const ports = of(final, "EXPOSE").flatMap((i) =>
    i.getArguments().map((a) => a.getValue().replace(/\/tcp$/, ""))
  );
  assert.ok(ports.includes("8000"), `EXPOSE ${ports}`);
  assert.ok(ports.includes("8001"), `EXPOSE ${ports}`);
});

Deno.test("Dockerfile: the command has explicit, narrow permissions and needs no writes", () => {
  const command = finalCommand();
  assert.equal(command[0], "run", `deno run ...: ${command.join(" ")}`);
  for (const arg of command) assert.doesNotMatch(arg, FORBIDDEN, `forbidden flag ${arg}`);
  assert.ok(!command.some((a) => /^-[a-zA-Z]*A/.test(a) && !a.startsWith("--")), "no -A");
  assert.ok(command.includes("--cached-only"), "--cached-only: nothing downloaded at run time");
  assert.ok(
    command.some((a) => /^--(frozen|frozen-lockfile|no-lock)(=true)?$/.test(a)),
    "--frozen or --no-lock: the lockfile is never written at run time",
  );
  const script = command.indexOf("main.ts");
  assert.ok(script > 0, "runs main.ts");
  const denoFlags = command.slice(0, script);
  const appArgs = command.slice(script + 1);

  // --allow-env and --allow-sys exactly as `deno task start` has them.
  const start = taskFlags("start");
  for (const name of ["--allow-env", "--allow-sys"]) {
    const pick = (flags: string[]) =>
      flags.filter((f) => f === name || f.startsWith(`${name}=`)).sort();
    assert.deepEqual(pick(denoFlags), pick(start), `${name} differs from deno task start`);
  }
  assert.ok(denoFlags.some((f) => f === "--allow-net" || f.startsWith("--allow-net=")));

  // Reads: the config directory, the service-account credentials, and the
  // gateway's own code (a worker thread, server.workers, loads its modules
  // from /app/lib and Deno checks read permission for them).
  const reads = denoFlags.filter((f) => f.startsWith("--allow-read"));
  assert.equal(reads.length, 1, `one --allow-read with a list: ${reads}`);
  const readPaths = reads[0].replace(/^--allow-read=?/, "").split(",");
  assert.deepEqual(readPaths.sort(), [
    "/app/lib",
    "/etc/vanguard",
    "/var/run/secrets/kubernetes.io/serviceaccount",
  ]);

  // The config it loads is inside the readable directory.
  const at = appArgs.indexOf("--config");
  assert.ok(at >= 0, "main.ts --config PATH");
  assert.ok(appArgs[at + 1].startsWith("/etc/vanguard/"), appArgs[at + 1]);

  // The project's deno.json (unstable no-legacy-abort, imports) is the config.
  const config = denoFlags.indexOf("--config");
  assert.ok(config >= 0 && denoFlags[config + 1] === "/app/deno.json", "--config /app/deno.json");
});

Deno.test("Dockerfile: the build stage caches dependencies from the lockfile", () => {
  const build = all.slice(0, -1);
  const copies = build.flatMap((s) => of(s, "COPY")) as Copy[];
  const sources = copies.flatMap((c) => {
    const args = c.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
    return args.slice(0, -1);
  });
  for (const file of ["deno.json", "deno.lock", "main.ts"]) {
    assert.ok(sources.some((s) => s.replace(/^\.\//, "") === file), `COPY ${file}`);
  }
  // Every copied source exists in the repository (the build would fail otherwise).
  const finalCopies = (of(final, "COPY") as Copy[]).filter((c) => c.getFromFlag() === null);
  for (
    const source of [
      ...sources,
      ...finalCopies.flatMap((c) => c.getArguments().map((a) => a.getValue()).slice(0, -1)),
    ]
  ) {
    Deno.statSync(new URL(source.replace(/^\.\//, ""), root));
  }
  const runs = build.flatMap((s) => of(s, "RUN")).map((r) => r.getArgumentsContent() ?? "");
  assert.ok(
    runs.some((r) => /\bdeno (install|cache)\b/.test(r) && /--frozen\b/.test(r)),
    `a RUN deno install/cache --frozen: ${runs}`,
  );
});

Deno.test("Dockerfile: the final stage gets the dependency cache and uses it", () => {
  const fromBuild = (of(final, "COPY") as Copy[]).filter((c) => c.getFromFlag() !== null);
  const targets = fromBuild.map((c) => {
    const args = c.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
    return args[args.length - 1].replace(/\/$/, "");
  });
  const env = new Map(
    (of(final, "ENV") as Env[]).flatMap((e) =>
      e.getProperties().map((p) => [p.getName(), p.getValue()] as const)
    ),
  );
  const denoDir = (env.get("DENO_DIR") ?? "").replace(/\/$/, "");
  assert.ok(denoDir !== "", "ENV DENO_DIR in the final stage");
  assert.ok(targets.includes(denoDir), `COPY --from=... ${denoDir}: ${targets}`);
  assert.ok(targets.includes("/app"), `COPY --from=... /app: ${targets}`);
});

Deno.test("Dockerfile: health is checked by a HEALTHCHECK or documented probes", () => {
  if (of(final, "HEALTHCHECK").length > 0) return;
  assert.match(dockerfileText, /\/healthz/, "document the liveness probe");
  assert.match(dockerfileText, /\/readyz/, "document the readiness probe");
});

Deno.test(".dockerignore keeps tests, git and local state out of the build context", () => {
  const lines = Deno.readTextFileSync(new URL(".dockerignore", root)).split("\n")
    .map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  // Either an allow-list (`*` then `!...`) or explicit exclusions.
  if (lines[0] === "*") {
    const allowed = lines.filter((l) => l.startsWith("!")).map((l) => l.slice(1));
    assert.ok(!allowed.some((l) => /^(tests|\.git|bench|k8s)\b/.test(l)), `${allowed}`);
  } else {
    for (const path of [".git", "tests"]) assert.ok(lines.includes(path), `ignore ${path}`);
  }
});
