/** The wire layer, table-driven: one row per response head or chunk line and its exact outcome. */
import assert from "node:assert/strict";
import {
  ascii,
  isFieldName,
  isFieldValue,
  parseResponseHead,
  ProtocolError,
} from "../../lib/proxy/http1.ts";
import { chunkSize } from "../../lib/proxy/http1_body.ts";

function head(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

const HEADS: [
  string,
  string,
  { status?: number; framing?: string; close?: boolean; error?: RegExp },
][] = [
  ["plain length", "HTTP/1.1 200 OK\r\ncontent-length: 5", {
    status: 200,
    framing: "length",
    close: false,
  }],
  ["no reason phrase", "HTTP/1.1 204", { status: 204, framing: "close" }],
  ["empty reason phrase", "HTTP/1.1 200 \r\ncontent-length: 0", { status: 200, framing: "length" }],
  ["repeated identical lengths", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5", {
    framing: "length",
  }],
  ["a list of identical lengths", "HTTP/1.1 200 OK\r\ncontent-length: 5, 5", { framing: "length" }],
  ["conflicting lengths", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6", {
    error: /Content-Length/,
  }],
  ["a signed length", "HTTP/1.1 200 OK\r\ncontent-length: +5", { error: /Content-Length/ }],
  ["chunked", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked", {
    framing: "chunked",
    close: false,
  }],
  ["chunked in any case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked", { framing: "chunked" }],
  [
    "chunked and a length: chunked wins, then close",
    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked",
    { framing: "chunked", close: true },
  ],
  ["xchunked", "HTTP/1.1 200 OK\r\ntransfer-encoding: xchunked\r\ncontent-length: 5", {
    error: /Transfer-Encoding/,
  }],
  [
    "chunked then identity",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: identity\r\ncontent-length: 5",
    { error: /Transfer-Encoding/ },
  ],
  [
    "a later TE line does not replace an earlier one",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked",
    { error: /Transfer-Encoding/ },
  ],
  ["chunked, gzip (chunked not last)", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip", {
    error: /Transfer-Encoding/,
  }],
  ["chunked twice", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked", {
    error: /Transfer-Encoding/,
  }],
  ["Transfer-Encoding on HTTP/1.0", "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked", {
    error: /Transfer-Encoding/,
  }],
  ["HTTP/1.0 closes", "HTTP/1.0 200 OK\r\ncontent-length: 1", { framing: "length", close: true }],
  ["HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1", {
    close: false,
  }],
  ["Connection: close", "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1", {
    close: true,
  }],
  ["status 099", "HTTP/1.1 099 Odd\r\ncontent-length: 0", { error: /status line/ }],
  ["status 600", "HTTP/1.1 600 Odd\r\ncontent-length: 0", { error: /status line/ }],
  ["status 999", "HTTP/1.1 999 Odd\r\ncontent-length: 0", { error: /status line/ }],
  ["two-digit status", "HTTP/1.1 20 OK", { error: /status line/ }],
  ["HTTP/2 status line", "HTTP/2 200 OK", { error: /status line/ }],
  ["a control character in the reason", "HTTP/1.1 200 O\x01K", { error: /status line/ }],
  ["space before the colon", "HTTP/1.1 200 OK\r\ncontent-length : 5", { error: /header line/ }],
  ["a space in a name", "HTTP/1.1 200 OK\r\nbad name: x", { error: /header line/ }],
  ["a name with a non-token character", "HTTP/1.1 200 OK\r\nbad(name): x", {
    error: /header line/,
  }],
  ["no colon", "HTTP/1.1 200 OK\r\njust-a-name", { error: /header line/ }],
  ["obsolete line folding", "HTTP/1.1 200 OK\r\nx-a: 1\r\n continued", { error: /header line/ }],
  ["a bare LF inside a value", "HTTP/1.1 200 OK\r\nx-a: 1\nx-injected: 2", {
    error: /invalid value/,
  }],
  ["a bare CR inside a value", "HTTP/1.1 200 OK\r\nx-a: 1\rx-b: 2", { error: /invalid value/ }],
  ["a NUL in a value", "HTTP/1.1 200 OK\r\nx-a: 1\x002", { error: /invalid value/ }],
  ["obs-text in a value is allowed", "HTTP/1.1 200 OK\r\nx-a: caf\xe9\r\ncontent-length: 0", {
    status: 200,
  }],
];

Deno.test("parseResponseHead(): each row's outcome", async (t) => {
  for (const [name, text, expected] of HEADS) {
    await t.step(name, () => {
      if (expected.error) {
        assert.throws(() => parseResponseHead(head(text)), (error: unknown) => {
          assert.ok(error instanceof ProtocolError, String(error));
          assert.match(error.message, expected.error!);
          return true;
        });
        return;
      }
      const parsed = parseResponseHead(head(text));
      if (expected.status !== undefined) assert.equal(parsed.status, expected.status);
      if (expected.framing !== undefined) assert.equal(parsed.framing, expected.framing);
      if (expected.close !== undefined) assert.equal(parsed.connectionClose, expected.close);
    });
  }
});

Deno.test("parseResponseHead() drops a Content-Length that Transfer-Encoding overrides", () => {
  const parsed = parseResponseHead(
    head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nx-a: 1\r\nTransfer-Encoding: chunked"),
  );
  assert.deepEqual(parsed.rawHeaders, ["x-a", "1", "Transfer-Encoding", "chunked"]);
  assert.equal(parsed.contentLength, undefined);
});

const CHUNK_LINES: [string, number | "error"][] = [
  ["5", 5],
  ["A", 10],
  ["ff", 255],
  ["5;name=value", 5],
  ["5 ;ext", 5],
  ["0", 0],
  ["0x5", "error"],
  ["5zz", "error"],
  [" 5 ", "error"],
  [" 5", "error"],
  ["5 ", 5],
  ["", "error"],
  ["-1", "error"],
  ["ffffffffffffffffff", "error"],
  ["5\x00", "error"],
];

Deno.test("chunkSize(): strict hex, bounded", async (t) => {
  for (const [line, expected] of CHUNK_LINES) {
    await t.step(JSON.stringify(line), () => {
      if (expected === "error") assert.throws(() => chunkSize(line), ProtocolError);
      else assert.equal(chunkSize(line), expected);
    });
  }
});

Deno.test("isFieldName() and isFieldValue() follow RFC 9110 field syntax", () => {
  for (const name of ["x-a", "X-Tenant", "a!#$%&'*+-.^_`|~z"]) assert.ok(isFieldName(name), name);
  for (const name of ["", "x a", "x:a", "x\r\na", "ü", "x(a)"]) assert.ok(!isFieldName(name), name);
  for (const value of ["", "alice", "a b", "caf\xe9", "a\tb"]) {
    assert.ok(isFieldValue(value), value);
  }
  for (const value of ["a\r\nb", "a\nb", "a\rb", "a\x00b", "\u010d\u010a", " a", "a ", "a\x7f"]) {
    assert.ok(!isFieldValue(value), JSON.stringify(value));
  }
});

Deno.test("ascii() writes one byte per character: ASCII as is, obs-text (0x80-0xFF) as its byte, not as UTF-8", () => {
  assert.deepEqual(
    [...ascii("GET / HTTP/1.1\r\n")],
    [..."GET / HTTP/1.1\r\n"].map((c) => c.charCodeAt(0)),
  );
  assert.deepEqual([...ascii("x-a: caf\xe9\r\n")], [
    ...[..."x-a: caf"].map((c) => c.charCodeAt(0)),
    0xe9,
    0x0d,
    0x0a,
  ]);
  assert.equal(ascii("").byteLength, 0);
});
