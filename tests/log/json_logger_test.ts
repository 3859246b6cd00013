/** JSON log lines, and the batched stdout sink that writes them. */
import assert from "node:assert/strict";
import { jsonLogger } from "../../lib/log/logger.ts";

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** The line jsonLogger() writes for one info record, and its time. */
function line(fields: Record<string, unknown> | undefined): { text: string; time: string } {
  const lines: string[] = [];
  jsonLogger({ write: (text) => lines.push(text), flush() {} }).info("request", fields);
  assert.equal(lines.length, 1);
  return { text: lines[0], time: JSON.parse(lines[0]).time };
}

Deno.test("jsonLogger() writes what JSON.stringify writes, byte for byte, whatever the values", () => {
  const records: (Record<string, unknown> | undefined)[] = [
    undefined,
    {},
    { request_id: "a1", path: "/plain", status: 200, duration_ms: 1.25, host: null, ok: true },
    { path: '/q"uote\\back', tab: "a\tb", newline: "a\nb", nul: "\u0000", del: "\u007f" },
    { unicode: "café ☕ 日本", emoji: "😀", lone: "\ud800", latin: "\u00ff" },
    { nan: NaN, inf: -Infinity, zero: -0, big: 1e21, tiny: 5e-7 },
    { skipped: undefined, fn: () => 1, sym: Symbol("s"), kept: "yes" },
    { nested: { a: [1, "two", null], b: { c: true } }, list: ["x", 2] },
    { error: new Error("boom"), count: 10n },
    { 'key with "quotes"': 1, "ключ": "значение" },
  ];
  for (const fields of records) {
    const { text, time } = line(fields);
    const expected =
      JSON.stringify({ time, level: "info", event: "request", ...fields }, replacer) +
      "\n";
    assert.equal(text, expected, expected);
  }
});

Deno.test("jsonLogger(): a record that cannot be written still gets a line", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const record = JSON.parse(line({ cyclic }).text);
  assert.equal(record.event, "request");
  assert.equal(record.log_error, "unserializable fields");
});

Deno.test("jsonLogger() on batched stdout: every line whole, in order, warn at once", async () => {
  const script = `
    import { batchedStdout, jsonLogger } from ${
    JSON.stringify(import.meta.resolve("../../lib/log/logger.ts"))
  };
    const logger = jsonLogger(batchedStdout({ lineAtomic: Deno.args[0] === "atomic" }));
    for (let i = 0; i < 3000; i++) logger.info("request", { i, path: "/p/" + "x".repeat(i % 300), name: "é" + i });
    logger.warn("late", { text: 'a"b\\nc' });
    const cyclic = {}; cyclic.self = cyclic;
    logger.info("bad", { cyclic });
    logger.flush();
  `;
  for (const mode of ["atomic", "plain"]) {
    const output = await new Deno.Command("deno", {
      args: ["eval", "--ext=js", script, mode],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const lines = new TextDecoder().decode(output.stdout).trimEnd().split("\n").map((text) =>
      JSON.parse(text)
    );
    assert.equal(lines.length, 3002);
    lines.slice(0, 3000).forEach((record, i) => {
      assert.equal(record.i, i);
      assert.equal(record.path, "/p/" + "x".repeat(i % 300));
      assert.equal(record.name, "é" + i);
    });
    assert.equal(lines[3000].event, "late");
    assert.equal(lines[3000].level, "warn");
    assert.equal(lines[3000].text, 'a"b\nc');
    assert.equal(lines[3001].event, "bad");
    assert.equal(lines[3001].log_error, "unserializable fields");
  }
});
