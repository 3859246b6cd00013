/**
 * Fails (exit 1) when modules under lib/ import each other in a cycle,
 * type-only imports included: a cycle means two concepts that cannot be
 * understood, tested or split apart on their own. Run by `deno task check`.
 *
 *   deno run --allow-read=. tests/tools/import_cycles.ts [DIR]
 */
import { dirname, join, relative, resolve } from "node:path";

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["'](\.[^"']+)["']/g;

async function modules(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await modules(path));
    else if (entry.name.endsWith(".ts")) out.push(resolve(path));
  }
  return out;
}

/** Every cycle, each as the list of modules along it (relative to `root`). */
export async function importCycles(root: string): Promise<string[][]> {
  const files = await modules(root);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    graph.set(
      file,
      [...text.matchAll(IMPORT)].map((m) => resolve(dirname(file), m[1])).filter((target) =>
        graph.has(target) || files.includes(target)
      ),
    );
  }
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...stack.slice(stack.indexOf(next)), next].map((f) => relative(root, f)));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return cycles;
}

if (import.meta.main) {
  const root = resolve(Deno.args[0] ?? "lib");
  const cycles = await importCycles(root);
  for (const cycle of cycles) console.error(`import cycle: ${cycle.join(" -> ")}`);
  if (cycles.length > 0) {
    console.error(
      `${cycles.length} import cycle(s) under ${root}: move the shared types down a layer`,
    );
    Deno.exit(1);
  }
  console.log(`no import cycles under ${root}`);
}
