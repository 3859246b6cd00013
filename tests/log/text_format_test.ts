import assert from "node:assert/strict";
import { formatTextLine } from "../../lib/log/text_format.ts";
import {
  createLogger,
  jsonLogger,
  type LogSink,
  resolveLogFormat,
  textLogger,
} from "../../lib/log/logger.ts";

const TIME = "2026-05-01T10:00:00.000Z";

Deno.test("formatTextLine() writes time, level, event, then key=value, quoting only what needs it", () => {
  const rows: [string, Record<string, unknown> | undefined, string][] = [
    ["info", undefined, `${TIME} INFO  event`],
    [
      "warn",
      { address: "127.0.0.1:6379", reason: "connection refused" },
      `${TIME} WARN  event address=127.0.0.1:6379 reason="connection refused"`,
    ],
    [
      "error",
      { problem: 'service "wbe" is not defined', empty: "", eq: "a=b" },
      `${TIME} ERROR event problem="service \\"wbe\\" is not defined" empty="" eq="a=b"`,
    ],
    [
      "info",
      { status: 200, ms: 1.5, tls: false, none: null, nan: NaN, big: 12n, skipped: undefined },
      `${TIME} INFO  event status=200 ms=1.5 tls=false none=null nan=null big=12`,
    ],
    [
      "info",
      { hosts: ["a.example", "b.example"], mixed: ["a b", 1], none: [] },
      `${TIME} INFO  event hosts=a.example,b.example mixed="[\\"a b\\",1]" none=[]`,
    ],
    [
      "info",
      { upstream: { url: "http://127.0.0.1:9001", ready: true }, empty: {} },
      `${TIME} INFO  event upstream.url=http://127.0.0.1:9001 upstream.ready=true empty={}`,
    ],
    ["info", { "odd key=": 1, path: "/users/ü" }, `${TIME} INFO  event odd_key_=1 path=/users/ü`],
  ];
  for (const [level, fields, expected] of rows) {
    assert.equal(formatTextLine(TIME, level, "event", fields), expected);
  }
});

Deno.test("formatTextLine() keeps a record on one line and escapes what a terminal would act on", () => {
  const line = formatTextLine(TIME, "warn", "request", {
    path: "/a\nFAKE=1",
    agent: "x\u001b[31mred",
    hidden: "a\u202eb",
    del: "a\u007fb",
  });
  assert.equal(
    line,
    `${TIME} WARN  request path="/a\\nFAKE=1" agent="x\\u001b[31mred" hidden="a\\u202eb" del="a\\u007fb"`,
  );
  for (const raw of ["\n", "\u001b", "\u202e", "\u007f"]) assert.ok(!line.includes(raw));
});

Deno.test("formatTextLine() writes an error's name, message and stack as fields", () => {
  const error = new TypeError("boom");
  error.stack = "TypeError: boom\n    at f (x.ts:1:1)";
  assert.equal(
    formatTextLine(TIME, "error", "internal_error", { error }),
    `${TIME} ERROR internal_error error.name=TypeError error.message=boom error.stack="TypeError: boom\\n    at f (x.ts:1:1)"`,
  );
});

function memorySink(): LogSink & { lines: string[]; urgent: boolean[] } {
  const lines: string[] = [];
  const urgent: boolean[] = [];
  return {
    lines,
    urgent,
    write(line, now) {
      lines.push(line);
      urgent.push(now);
    },
    flush() {},
  };
}

Deno.test("textLogger() writes one text line per record, warn and error at once", () => {
  const sink = memorySink();
  const logger = textLogger(sink);
  logger.info("gateway_started", { proxy: "0.0.0.0:8000" });
  logger.warn("config_warning", { problem: "x" });
  assert.equal(sink.lines.length, 2);
  assert.match(
    sink.lines[0],
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}gateway_started proxy=0\.0\.0\.0:8000\n$/,
  );
  assert.match(sink.lines[1], / WARN {2}config_warning problem=x\n$/);
  assert.deepEqual(sink.urgent, [false, true]);
});

Deno.test("a record whose fields cannot be written still gets a line, in either format", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  for (const make of [textLogger, jsonLogger]) {
    const sink = memorySink();
    make(sink).error("odd", { list: [cyclic] });
    assert.equal(sink.lines.length, 1);
    assert.match(sink.lines[0], /odd.*log_error.*unserializable fields/);
  }
});

Deno.test("createLogger() and resolveLogFormat(): auto is text on a terminal, json elsewhere", () => {
  assert.equal(resolveLogFormat("auto", () => true), "text");
  assert.equal(resolveLogFormat("auto", () => false), "json");
  assert.equal(resolveLogFormat("json", () => true), "json");
  assert.equal(resolveLogFormat("text", () => false), "text");
  assert.equal(
    resolveLogFormat("auto", () => {
      throw new Error("no stdout");
    }),
    "json",
  );
  const text = memorySink();
  createLogger("text", text).info("x", { a: 1 });
  assert.match(text.lines[0], / INFO {2}x a=1\n$/);
  const json = memorySink();
  createLogger("json", json).info("x", { a: 1 });
  assert.deepEqual(JSON.parse(json.lines[0]), {
    time: JSON.parse(json.lines[0]).time,
    level: "info",
    event: "x",
    a: 1,
  });
});
