/**
 * A smoke run of `deno task bench` (1-second rounds): the benchmark keeps
 * working as the code changes. Load figures come from full runs, not this.
 * Skipped, with the reason, where wrk is not installed.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
const haveWrk = (await new Deno.Command("sh", { args: ["-c", "command -v wrk"], stdout: "null" })
  .output()).success;

Deno.test({
  name: haveWrk
    ? "deno task bench runs every scenario without errors (smoke run)"
    : "deno task bench runs every scenario without errors (skipped: wrk is not installed)",
  ignore: !haveWrk,
  async fn() {
    const output = await new Deno.Command("deno", {
      args: ["task", "-q", "bench", "--seconds", "1", "--rounds", "1"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, text + new TextDecoder().decode(output.stderr));
    for (
      const scenario of [
        "backend direct",
        "vanguard plain",
        "vanguard auth+limit (memory)",
        "vanguard 100 KB response",
      ]
    ) {
      const row = text.split("\n").find((line) => line.startsWith(`| ${scenario} |`));
      assert.ok(row, `no row for ${scenario}:\n${text}`);
      const cells = row.split("|").map((cell) => cell.trim());
      assert.ok(Number(cells[2]) > 0, `${scenario}: no requests`);
      assert.equal(cells[5], "0", `${scenario}: errors`);
    }
    assert.match(text, /Peak RSS: gateway \(memory\) \d+ MB/);
  },
});
