/** Writes of whole lines of at most PIPE_BUF bytes, for threads sharing stdout. */
import assert from "node:assert/strict";
import { PIPE_BUF, writeEnd } from "../../lib/log/logger.ts";

/** The writes writeEnd cuts `text` into, as text. */
function writes(text: string, limit: number): string[] {
  const bytes = new TextEncoder().encode(text);
  const out: string[] = [];
  for (let start = 0; start < bytes.length;) {
    const end = writeEnd(bytes, start, limit);
    out.push(new TextDecoder().decode(bytes.subarray(start, end)));
    start = end;
  }
  return out;
}

Deno.test("writeEnd() cuts a batch into whole lines of at most the limit; a longer line goes whole, alone", () => {
  assert.deepEqual(writes("aaa\nbbb\nccc\n", 8), ["aaa\nbbb\n", "ccc\n"]);
  assert.deepEqual(writes("aaa\nbbbbbbbbbbbb\ncc\n", 8), ["aaa\n", "bbbbbbbbbbbb\n", "cc\n"]);
  assert.deepEqual(writes("aaa\nbbb\n", Infinity), ["aaa\nbbb\n"]);
  // A day's worth of 300-byte access lines: every write is whole lines within PIPE_BUF.
  const line = "x".repeat(299) + "\n";
  const cut = writes(line.repeat(100), PIPE_BUF);
  assert.ok(cut.length > 1);
  for (const w of cut) {
    assert.ok(w.length <= PIPE_BUF && w.endsWith("\n") && w.length % 300 === 0, `${w.length}`);
  }
  assert.equal(cut.join(""), line.repeat(100));
});
