import assert from "node:assert/strict";

const DIR = new URL("../../lib/config/", import.meta.url);

async function sources(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const entry of Deno.readDir(DIR)) {
    if (entry.isFile && entry.name.endsWith(".ts")) {
      out.set(entry.name, await Deno.readTextFile(new URL(entry.name, DIR)));
    }
  }
  return out;
}

/** The code without its comments (block comments and whole-line `//` comments). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

Deno.test("lib/config: only secrets.ts reads the environment or files", async () => {
  const readers = [...await sources()]
    .filter(([name, text]) => name !== "secrets.ts" && /\bDeno\./.test(code(text)))
    .map(([name]) => name);
  assert.deepEqual(readers, []);
});

Deno.test("lib/config: every file stays readable in one sitting (at most 400 lines)", async () => {
  const long = [...await sources()]
    .map(([name, text]) => [name, text.split("\n").length] as const)
    .filter(([, lines]) => lines > 400);
  assert.deepEqual(long, []);
});
