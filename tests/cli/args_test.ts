import assert from "node:assert/strict";
import { parseArgs } from "../../lib/cli/args.ts";
import { readPermissionHint } from "../../lib/cli/read_hint.ts";

Deno.test("parseArgs() reads each command's arguments", () => {
  const rows: [string[], unknown][] = [
    [[], { kind: "start", config: "config.yaml" }],
    [["--config", "a.yaml"], { kind: "start", config: "a.yaml" }],
    [["start", "--config=a.yaml"], { kind: "start", config: "a.yaml" }],
    [["validate"], { kind: "validate", config: "config.yaml" }],
    [["validate", "a.yaml"], { kind: "validate", config: "a.yaml" }],
    [["validate", "--config", "a.yaml"], { kind: "validate", config: "a.yaml" }],
    [["demo"], { kind: "demo" }],
    [["apikey", "app"], { kind: "apikey", id: "app" }],
    [["apikey"], { kind: "apikey", id: undefined }],
    [["--help"], { kind: "help", command: "start" }],
    [["validate", "broken.yaml", "-h"], { kind: "help", command: "validate" }],
    [["help"], { kind: "help" }],
    [["help", "apikey"], { kind: "help", command: "apikey" }],
  ];
  for (const [args, expected] of rows) assert.deepEqual(parseArgs(args), expected, args.join(" "));
});

Deno.test("parseArgs() turns mistakes into the line to type instead", () => {
  const message = (args: string[], isFile = (_: string) => false) => {
    const result = parseArgs(args, { isFile });
    assert.equal(result.kind, "error", args.join(" "));
    return result.kind === "error" ? result.message : "";
  };
  assert.match(message(["my.yml"]), /^ {2}deno task start --config my\.yml$/m);
  assert.match(
    message(["conf/gw"], (path) => path === "conf/gw"),
    /deno task start --config conf\/gw$/m,
  );
  assert.equal(message(["gw"]), 'Unknown command "gw"');
  assert.equal(message(["strat"]), 'Unknown command "strat"; did you mean "start"?');
  assert.equal(message(["--config"]), "--config needs a file: deno task start --config FILE");
  assert.equal(message(["--config="]), "--config needs a file: deno task start --config FILE");
  assert.equal(
    message(["--config", "a.yaml", "--config", "b.yaml"]),
    '--config is given twice ("a.yaml" and "b.yaml")',
  );
  assert.equal(message(["--port", "80"]), 'Unknown argument "--port"');
  assert.equal(message(["validate", "--strcit"]), 'Unknown argument "--strcit"');
  assert.equal(
    message(["validate", "a.yaml", "b.yaml"]),
    'deno task validate checks one file at a time, got "a.yaml" "b.yaml"',
  );
  assert.equal(message(["demo", "x"]), 'deno task demo takes no arguments, got "x"');
  assert.equal(message(["apikey", "a", "b"]), 'deno task apikey takes one ID, got "a" "b"');
});

const DENO_JSON = JSON.stringify({
  tasks: {
    start: "deno run --allow-net --allow-read=. --allow-env main.ts",
    validate: { command: "deno run --allow-read=. main.ts validate" },
  },
});

Deno.test("readPermissionHint() adds the file's directory to the task's own --allow-read", () => {
  const base = { denoJson: DENO_JSON, projectDir: "/p", cwd: "/p", mayRead: () => false };
  const start = readPermissionHint({ ...base, task: "start", configPath: "/etc/vg/gw.yaml" });
  assert.match(
    start ?? "",
    /^ {2}deno run --allow-net --allow-read=\.,\/etc\/vg --allow-env main\.ts start --config \/etc\/vg\/gw\.yaml$/m,
  );
  const validate = readPermissionHint({ ...base, task: "validate", configPath: "../o t/gw.yaml" });
  assert.match(
    validate ?? "",
    /^ {2}deno run '--allow-read=\.,\/o t' main\.ts validate '\/o t\/gw\.yaml'$/m,
  );
  assert.equal(
    readPermissionHint({ ...base, task: "start", configPath: "gw.yaml", mayRead: () => true }),
    undefined,
  );
  assert.equal(
    readPermissionHint({ ...base, task: "start", configPath: "/etc/gw.yaml", denoJson: undefined }),
    "/etc/gw.yaml is outside the directories this process may read: add /etc to its --allow-read flag, or copy the file into /p",
  );
});
