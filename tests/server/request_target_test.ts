/**
 * The request-target and Host checks, one row per input. The URLs are what
 * Deno 2.9.6 gives as `request.url` for the request line and Host shown in
 * each row's comment (probed with raw TCP clients; see request_target.ts).
 */
import assert from "node:assert/strict";
import {
  fallbackAuthority,
  isValidAuthority,
  requestTarget,
} from "../../lib/server/request_target.ts";

const LOOPBACK: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 8000 };

Deno.test("isValidAuthority() accepts host[:port] and refuses everything else", () => {
  const rows: [string, boolean][] = [
    ["example.com", true],
    ["example.com:8080", true],
    ["EXAMPLE.com.", true],
    ["a", true],
    ["10.0.0.1", true],
    ["10.0.0.1:0", true],
    ["a:65535", true],
    ["my_host-1~x", true],
    ["a%41b", true],
    ["!$&'()*+,;=", true],
    ["[::1]", true],
    ["[::1]:8000", true],
    ["[2001:db8::7]", true],
    ["[2001:db8:0:0:0:0:0:7]:443", true],
    ["[::ffff:192.0.2.1]", true],
    ["[fe80::]", true],
    ["", false],
    [":80", false],
    ["a:", false],
    ["a:65536", false],
    ["a:123456", false],
    ["a:8o", false],
    ["a:80:80", false],
    ["a/raw/echo?", false],
    ["a/raw/echo?q HTTP/1.0", false],
    ["a b", false],
    ["a#frag", false],
    ["a?q", false],
    ["user@a", false],
    ["a\\b", false],
    ['a"b', false],
    ["a%4", false],
    ["a%zz", false],
    ["\u00e4.example", false],
    ["\u00c3\u00bf", false],
    ["[::1", false],
    ["[::1]x", false],
    ["[::1]:", false],
    ["[1:2:3:4:5:6:7]", false],
    ["[1:2:3:4:5:6:7:8:9]", false],
    ["[1::2::3]", false],
    ["[12345::1]", false],
    ["[:1]", false],
    ["[1:]", false],
    ["[fe80::1%25eth0]", false],
    ["[v1.future]", false],
    ["[::ffff:192.0.2.256]", false],
    ["[::ffff:192.0.02.1]", false],
    ["[::ffff:1.2.3]", false],
    ["[]", false],
  ];
  for (const [text, expected] of rows) {
    assert.equal(isValidAuthority(text), expected, JSON.stringify(text));
  }
});

Deno.test("requestTarget() takes the path from the target only", () => {
  const rows: {
    line: string;
    url: string;
    host?: string;
    method?: string;
    rawPath?: string;
    query?: string;
    refused?: [number, string];
  }[] = [
    { line: "GET /a/b?x=1", url: "http://a/a/b?x=1", host: "a", rawPath: "/a/b", query: "?x=1" },
    { line: "GET /", url: "http://a:8000/", host: "a:8000", rawPath: "/", query: "" },
    { line: "GET /x?a=/b", url: "http://a/x?a=/b", host: "a", rawPath: "/x", query: "?a=/b" },
    { line: "GET /x#f", url: "http://a/x#f", host: "a", rawPath: "/x", query: "" },
    { line: "GET /x?q#f", url: "http://a/x?q#f", host: "a", rawPath: "/x", query: "?q" },
    { line: "GET /%2e%2e/x", url: "http://a/%2e%2e/x", host: "a", rawPath: "/%2e%2e/x" },
    { line: "GET //x/y", url: "http://a//x/y", host: "a", rawPath: "//x/y" },
    { line: "GET http:///x", url: "http://a/http:///x", host: "a", rawPath: "/http:///x" },
    { line: "GET /x (Host [::1]:80)", url: "http://[::1]:80/x", host: "[::1]:80", rawPath: "/x" },
    // The Host header moving the target into the query (issue items 7 and 12).
    {
      line: "GET /admin/x (Host a/raw/echo?)",
      url: "http://a/raw/echo?/admin/x",
      host: "a/raw/echo?",
      refused: [400, "bad_request"],
    },
    {
      line: "GET /admin/x (Host a/raw/echo?q HTTP/1.0)",
      url: "http://a/raw/echo?q HTTP/1.0/admin/x",
      host: "a/raw/echo?q HTTP/1.0",
      refused: [400, "bad_request"],
    },
    {
      line: "GET /x (Host a#frag)",
      url: "http://a#frag/x",
      host: "a#frag",
      refused: [400, "bad_request"],
    },
    { line: "GET /x (Host a@b)", url: "http://a@b/x", host: "a@b", refused: [400, "bad_request"] },
    // An empty Host: Deno uses its fallback in the URL, the header stays "".
    {
      line: "GET /x (Host empty)",
      url: "http://localhost:8000/x",
      host: "",
      refused: [400, "bad_request"],
    },
    // No Host: HTTP/1.0 and 1.1 look the same.
    { line: "GET /x (no Host)", url: "http://localhost:8000/x", refused: [400, "bad_request"] },
    // Absolute-form: the target's authority and path; the Host header is not used.
    {
      line: "GET http://other.example/x?y",
      url: "http://other.example/x?y",
      host: "a",
      rawPath: "/x",
      query: "?y",
    },
    { line: "GET http://other.example (no Host)", url: "http://other.example/", rawPath: "/" },
    { line: "GET HTTP://A/x", url: "HTTP://A/x", host: "a", rawPath: "/x" },
    { line: "GET https://b:8443/x", url: "https://b:8443/x", host: "a", rawPath: "/x" },
    { line: "GET http://a?x/y", url: "http://a?x/y", host: "a", rawPath: "/", query: "?x/y" },
    { line: "GET http://a#x/y", url: "http://a#x/y", host: "a", refused: [400, "bad_request"] },
    {
      line: "GET https://u@other.example/x",
      url: "https://u@other.example/x",
      host: "a",
      refused: [400, "bad_request"],
    },
    {
      line: "GET ftp://other.example/x",
      url: "ftp://other.example/x",
      host: "a",
      refused: [400, "bad_request"],
    },
    // HTTP/2: :authority in the URL, usually no Host header.
    { line: "h2 GET /h2 (:authority gw.example)", url: "http://gw.example/h2", rawPath: "/h2" },
    // Methods.
    {
      line: "CONNECT other.example:443",
      method: "CONNECT",
      url: "http://other.example:443",
      host: "other.example:443",
      refused: [501, "not_implemented"],
    },
    {
      line: "OPTIONS *",
      method: "OPTIONS",
      url: "http://a/*",
      host: "a",
      refused: [400, "bad_request"],
    },
    {
      line: "OPTIONS /*?x",
      method: "OPTIONS",
      url: "http://a/*?x",
      host: "a",
      rawPath: "/*",
      query: "?x",
    },
    { line: "OPTIONS /x", method: "OPTIONS", url: "http://a/x", host: "a", rawPath: "/x" },
    { line: "GET /* (not OPTIONS)", url: "http://a/*", host: "a", rawPath: "/*" },
  ];
  for (const row of rows) {
    const headers = new Headers();
    if (row.host !== undefined) headers.set("host", row.host);
    const target = requestTarget({ method: row.method ?? "GET", url: row.url, headers }, LOOPBACK);
    if (row.refused) {
      assert.ok(target.refusal, `${row.line}: expected a refusal`);
      assert.deepEqual([target.refusal.status, target.refusal.code], row.refused, row.line);
    } else {
      assert.equal(target.refusal, undefined, `${row.line}: ${target.refusal?.message}`);
      assert.equal(target.rawPath, row.rawPath, row.line);
      assert.equal(target.query, row.query ?? "", row.line);
    }
  }
});

Deno.test("fallbackAuthority() is what Deno writes into request.url when there is no Host", () => {
  const rows: [string, number, string][] = [
    ["127.0.0.1", 8000, "localhost:8000"],
    ["127.0.0.2", 8000, "localhost:8000"],
    ["::1", 8000, "localhost:8000"],
    ["0.0.0.0", 8000, "localhost:8000"],
    ["10.1.2.3", 8000, "10.1.2.3:8000"],
    ["2001:db8::1", 8000, "[2001:db8::1]:8000"],
    ["127.0.0.1", 80, "localhost"],
    ["10.1.2.3", 80, "10.1.2.3"],
  ];
  for (const [hostname, port, expected] of rows) {
    assert.equal(fallbackAuthority({ transport: "tcp", hostname, port }), expected, hostname);
  }
});
