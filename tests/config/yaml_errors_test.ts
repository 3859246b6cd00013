/**
 * YAML syntax mistakes as people make them, each with the line and words `deno task validate`
 * prints for it: the line of the mistake, not the line where the parser noticed it.
 */
import assert from "node:assert/strict";
import { formatProblem, parseConfig } from "../../lib/config/load.ts";

function problems(...lines: string[]): string[] {
  const result = parseConfig(lines.join("\n") + "\n", {
    displayPath: "gw.yaml",
    absolutePath: "/tmp/gw.yaml",
  });
  assert.equal(result.ok, false, "the config should not load");
  return result.ok ? [] : result.problems.map(formatProblem);
}

const ROWS: { mistake: string; text: string[]; expected: string[] }[] = [
  {
    mistake: "a key indented further than the key above it, which has a value",
    text: ["server:", "  port: 8000", "   host: 127.0.0.1", "routes: []"],
    expected: [
      'gw.yaml:3:4: bad indentation: "host" is indented more than "port" on line 2, but "port" already has a value (8000); indent "host" 2 spaces like "port", or remove the value to nest it under "port"',
    ],
  },
  {
    mistake: "a key of a list item indented too far",
    text: ["routes:", "- id: a", "  path_prefix: /a", "    service_name: b"],
    expected: [
      'gw.yaml:4:5: bad indentation: "service_name" is indented more than "path_prefix" on line 3, but "path_prefix" already has a value (/a); indent "service_name" 2 spaces like "path_prefix", or remove the value to nest it under "path_prefix"',
    ],
  },
  {
    mistake: "a section written with a value and children",
    text: ["server: x", "  port: 1", "routes: []"],
    expected: [
      'gw.yaml:2:3: bad indentation: "port" is indented more than "server" on line 1, but "server" already has a value (x); start "port" at the beginning of the line like "server", or remove the value to nest it under "server"',
    ],
  },
  {
    mistake: "a key of a list item indented one space too little",
    text: ["routes:", "  - id: a", "    path_prefix: /a", "   service_name: b"],
    expected: [
      'gw.yaml:4:4: bad indentation: "service_name" is indented 3 spaces but "path_prefix" on line 3 is indented 4; the keys of one mapping must line up',
    ],
  },
  {
    mistake: "a key of a list item lined up with the dash",
    text: ["routes:", "  - id: a", "  path_prefix: /a"],
    expected: [
      'gw.yaml:3:3: bad indentation: "path_prefix" is indented 2 spaces but "id" on line 2 is indented 4; the keys of one mapping must line up',
    ],
  },
  {
    mistake: "list items that do not line up",
    text: ["routes:", "- id: a", "  path_prefix: /a", " - id: b"],
    expected: [
      'gw.yaml:4:2: bad indentation: this "-" is indented 1 space but the item on line 2 is indented 0; the items of one list must line up',
    ],
  },
  {
    mistake: "a tab as indentation",
    text: ["server:", "\tport: 8000", "routes: []"],
    expected: ["gw.yaml:2:1: a tab character indents this line: YAML indentation must be spaces"],
  },
  {
    mistake: "two tabs on two lines: each is its own mistake",
    text: ["server:", "\tport: 8000", "\thost: x", "routes: []"],
    expected: [
      "gw.yaml:2:1: a tab character indents this line: YAML indentation must be spaces",
      "gw.yaml:3:1: a tab character indents this line: YAML indentation must be spaces",
    ],
  },
  {
    mistake: "an unclosed double quote",
    text: ["server:", '  host: "0.0.0.0', "  port: 8000", "routes: []"],
    expected: ['gw.yaml:2:9: the " opened here is never closed: end the value with "'],
  },
  {
    mistake: "an unclosed single quote",
    text: ["server:", "  host: '0.0.0.0", "  port: 8000", "routes: []"],
    expected: ["gw.yaml:2:9: the ' opened here is never closed: end the value with '"],
  },
  {
    mistake: "an unclosed quote that a later quote seems to close",
    text: ["server:", '  host: "0.0.0.0', '  admin_host: "x"', "routes: []"],
    expected: ['gw.yaml:2:9: the " opened here is never closed: end the value with "'],
  },
  {
    mistake: "an unclosed bracket before more keys",
    text: ["server:", "  trusted_proxies: [10.0.0.0/8, 192.168.0.0/16", "  port: 80", "routes: []"],
    expected: ["gw.yaml:2:20: the [ opened here is never closed: end the list with ]"],
  },
  {
    mistake: "an unclosed brace",
    text: ["services:", "  a: { urls: [http://127.0.0.1:9001]", "routes: []"],
    expected: ["gw.yaml:2:6: the { opened here is never closed: end the mapping with }"],
  },
  {
    mistake: "a closing bracket too many",
    text: ["server:", "  trusted_proxies: [10.0.0.0/8]]", "routes: []"],
    expected: ["gw.yaml:2:32: unexpected ]: there is no [ open here to close"],
  },
  {
    mistake: "a value with a colon and a space, unquoted",
    text: ["routes:", "  - id: a", "    path_prefix: /a: b"],
    expected: [
      'gw.yaml:3:18: this value contains ": " (a colon and a space), which YAML reads as another key: put the value in quotes, e.g. path_prefix: "/a: b"',
    ],
  },
  {
    mistake: "a list item among the keys of a mapping",
    text: ["server:", "  port: 8000", "  - x", "routes: []"],
    expected: [
      'gw.yaml:3:3: a list item ("- ...") cannot stand among the keys of a mapping: put the list under a key of its own, indented below it',
    ],
  },
  {
    mistake: "a key written twice",
    text: ["routes: []", "server:", "  port: 1", "", "  port: 2"],
    expected: ['gw.yaml:5:3: duplicate key "port"; it is already set on line 3'],
  },
  {
    mistake: "a backslash in double quotes",
    text: ["routes:", '  - path_regex: "^/a\\d+$"', "    service_name: a"],
    expected: [
      "gw.yaml:2:21: invalid escape \\d in a double-quoted string: write \\\\ for a backslash, or put the value in single quotes",
    ],
  },
  {
    mistake: "two documents in one file",
    text: ["routes: []", "---", "routes: []"],
    expected: [
      'gw.yaml:2:1: a second YAML document starts here (a "---" line): a config file holds one',
    ],
  },
];

for (const row of ROWS) {
  Deno.test(`a YAML syntax mistake is reported where it is: ${row.mistake}`, () => {
    assert.deepEqual(problems(...row.text), row.expected);
  });
}

Deno.test("a key left without its colon or space is read as a string, and the problem says how to write it", () => {
  assert.deepEqual(problems("server:", "  port 8000", "routes: []"), [
    'gw.yaml:2:3: server: must be a mapping, got string "port 8000"; a key needs a colon and a space after it: port: 8000',
  ]);
  assert.deepEqual(problems("server:", "  prot:8000", "routes: []"), [
    'gw.yaml:2:3: server: must be a mapping, got string "prot:8000"; a key needs a colon and a space after it: port: 8000',
  ]);
});

Deno.test("a config with CRLF line ends gets the same lines and words", () => {
  const text = ["server:", "  port: 8000", "   host: x", "routes: []", ""].join("\r\n");
  const result = parseConfig(text, { displayPath: "gw.yaml", absolutePath: "/tmp/gw.yaml" });
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(result.problems.map(formatProblem), [
    'gw.yaml:3:4: bad indentation: "host" is indented more than "port" on line 2, but "port" already has a value (8000); indent "host" 2 spaces like "port", or remove the value to nest it under "port"',
  ]);
});
