import assert from "node:assert/strict";
import { importCycles } from "./import_cycles.ts";

Deno.test("importCycles() finds a cycle of type-only imports, and none where there is none", async () => {
  await Deno.mkdir("tests/.tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "tests/.tmp", prefix: "cycles-" });
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.writeTextFile(
      `${dir}/a/one.ts`,
      'import type { Two } from "../b/two.ts";\nexport type One = Two;\n',
    );
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/b/two.ts`, 'export type { One as Two } from "../a/one.ts";\n');
    await Deno.writeTextFile(
      `${dir}/leaf.ts`,
      'import { x } from "./plain.ts";\nexport const y = x;\n',
    );
    await Deno.writeTextFile(`${dir}/plain.ts`, "export const x = 1;\n");
    const cycles = await importCycles(dir);
    assert.deepEqual(cycles.map((cycle) => [...new Set(cycle)].sort()), [["a/one.ts", "b/two.ts"]]);
    await Deno.remove(`${dir}/b/two.ts`);
    await Deno.writeTextFile(`${dir}/b/two.ts`, "export type Two = number;\n");
    assert.deepEqual(await importCycles(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lib/ has no import cycles", async () => {
  assert.deepEqual(await importCycles(`${Deno.cwd()}/lib`), []);
});
