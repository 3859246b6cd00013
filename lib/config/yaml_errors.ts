/**
 * YAML syntax errors in plain words, at the line where the mistake is. The `yaml` parser reports
 * where it noticed a mistake, which is often later (an unclosed quote at the end of the file) or
 * earlier (a line indented too far, at the value of the key above it); these read the text and
 * the parser's concrete syntax tree around the error to find the spot and say what to change.
 *
 * @module
 */

import { type CST, type Document, isMap, isScalar, type LineCounter, visit } from "yaml";
import { SourceText } from "./yaml_source.ts";

/** One syntax problem, 1-based. */
export interface YamlSyntaxProblem {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

// Errors that do not throw the parser off: every one of them is a mistake of its own.
const INDEPENDENT = new Set(["DUPLICATE_KEY", "TAB_AS_INDENT", "BAD_DQ_ESCAPE"]);

/**
 * The document's errors in plain words. Past the first error of another kind the parser's view of
 * the text is a guess, so later ones (mostly echoes of the first) are left out.
 */
export function explainYamlErrors(
  text: string,
  doc: Document.Parsed,
  lineCounter: LineCounter,
): YamlSyntaxProblem[] {
  const source = new SourceText(text, lineCounter);
  const problems: YamlSyntaxProblem[] = [];
  let sawOther = false;
  for (const error of doc.errors) {
    const independent = INDEPENDENT.has(error.code);
    if (!independent && sawOther) continue;
    if (!independent) sawOther = true;
    const problem = explain(error, source, doc);
    const seen = problems.some((p) =>
      p.line === problem.line && p.column === problem.column && p.message === problem.message
    );
    if (!seen) problems.push(problem);
  }
  return problems;
}

function explain(
  error: Document.Parsed["errors"][number],
  source: SourceText,
  doc: Document.Parsed,
): YamlSyntaxProblem {
  const offset = error.pos[0];
  const { line, col } = source.position(offset);
  const message = error.message.split("\n")[0];
  const explained = explainCode(error.code, message, offset, line, source, doc);
  return explained ?? { line, column: col, message };
}

function explainCode(
  code: string,
  message: string,
  offset: number,
  line: number,
  source: SourceText,
  doc: Document.Parsed,
): YamlSyntaxProblem | undefined {
  switch (code) {
    case "DUPLICATE_KEY":
      return duplicateKey(offset, source, doc);
    case "TAB_AS_INDENT": {
      const tab = source.line(line).indexOf("\t");
      return {
        line,
        column: tab + 1,
        message: "a tab character indents this line: YAML indentation must be spaces",
      };
    }
    case "BAD_DQ_ESCAPE": {
      const sequence = /sequence (\S+)/.exec(message)?.[1] ?? "";
      const { col } = source.position(offset);
      return {
        line,
        column: col,
        message: `invalid escape ${sequence} in a double-quoted string: write \\\\ for a ` +
          `backslash, or put the value in single quotes`,
      };
    }
    case "MULTIPLE_DOCS":
      return {
        line,
        column: 1,
        message: 'a second YAML document starts here (a "---" line): a config file holds one',
      };
    case "MISSING_CHAR":
      if (/quote/.test(message)) return unclosedQuote(offset, source);
      if (/Sequence item without/.test(message)) return misaligned(line, source);
      if (/followed by map values/.test(message)) {
        const { col } = source.position(offset);
        return {
          line,
          column: col,
          message: "a key needs a colon after it (key: value)",
        };
      }
      return undefined;
    case "BAD_INDENT":
      if (/^Flow (sequence|map)/.test(message)) return unclosedFlow(offset, source);
      if (/sequence items/.test(message)) return misalignedItem(line, source);
      if (/mapping items/.test(message)) return misaligned(line, source);
      return undefined;
    case "BLOCK_AS_IMPLICIT_KEY":
    case "MULTILINE_IMPLICIT_KEY":
      if (/block sequence/.test(message)) {
        return {
          line,
          column: source.contentColumn(line),
          message: 'a list item ("- ...") cannot stand among the keys of a mapping: ' +
            "put the list under a key of its own, indented below it",
        };
      }
      return valueRunsOn(line, source);
    case "UNEXPECTED_TOKEN": {
      const token = /"(.*)"$/.exec(message)?.[1];
      const { col } = source.position(offset);
      if (token === "]" || token === "}") {
        const open = token === "]" ? "[" : "{";
        return {
          line,
          column: col,
          message: `unexpected ${token}: there is no ${open} open here to close`,
        };
      }
      return token === undefined
        ? undefined
        : { line, column: col, message: `unexpected ${JSON.stringify(token)} here` };
    }
    default:
      return undefined;
  }
}

/** `duplicate key "port"; it is already set on line 2`, at the second one. */
function duplicateKey(offset: number, source: SourceText, doc: Document.Parsed): YamlSyntaxProblem {
  const { line, col } = source.position(offset);
  let name = "";
  let firstLine: number | undefined;
  visit(doc, {
    Pair(_, pair, path) {
      const key = pair.key;
      if (!isScalar(key) || key.range?.[0] !== offset) return;
      name = String(key.value);
      const parent = path[path.length - 1];
      if (isMap(parent)) {
        const first = parent.items.find((other) =>
          isScalar(other.key) && other.key.value === key.value
        );
        const start = isScalar(first?.key) ? first.key.range?.[0] : undefined;
        if (start !== undefined && start !== offset) firstLine = source.position(start).line;
      }
      return visit.BREAK;
    },
  });
  const where = firstLine === undefined ? "" : `; it is already set on line ${firstLine}`;
  return { line, column: col, message: `duplicate key ${JSON.stringify(name)}${where}` };
}

/** The quoted value that never ends, found in the concrete syntax tree, at its opening quote. */
function unclosedQuote(offset: number, source: SourceText): YamlSyntaxProblem | undefined {
  // An unclosed quote swallows the lines after it, so the culprit is the last quoted value that
  // starts before the error and runs over a line break or to the end.
  let culprit: CST.FlowScalar | undefined;
  for (const token of source.tokens()) {
    if (token.type !== "double-quoted-scalar" && token.type !== "single-quoted-scalar") continue;
    const scalar = token as CST.FlowScalar;
    if (scalar.offset > offset) break;
    if (!isClosed(scalar.source) || scalar.source.includes("\n")) culprit = scalar;
  }
  if (culprit === undefined) return undefined;
  const quote = culprit.source[0];
  const { line, col } = source.position(culprit.offset);
  return {
    line,
    column: col,
    message: `the ${quote} opened here is never closed: end the value with ${quote}`,
  };
}

function isClosed(text: string): boolean {
  const quote = text[0];
  if (text.length < 2 || !text.endsWith(quote)) return false;
  if (quote === "'") return true; // '' inside single quotes is an escaped quote, not an end
  let backslashes = 0;
  for (let i = text.length - 2; i > 0 && text[i] === "\\"; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** The `[` or `{` that is never closed, at the bracket. */
function unclosedFlow(offset: number, source: SourceText): YamlSyntaxProblem | undefined {
  let culprit: CST.FlowCollection | undefined;
  for (const token of source.tokens()) {
    if (token.type !== "flow-collection") continue;
    const flow = token as CST.FlowCollection;
    if (flow.offset > offset) break;
    const close = flow.start.source === "[" ? "]" : "}";
    if (!flow.end.some((end) => end.source === close)) culprit = flow;
  }
  if (culprit === undefined) return undefined;
  const open = culprit.start.source;
  const { line, col } = source.position(culprit.start.offset);
  const [what, close] = open === "[" ? ["list", "]"] : ["mapping", "}"];
  return {
    line,
    column: col,
    message: `the ${open} opened here is never closed: end the ${what} with ${close}`,
  };
}

/** A key not lined up with the keys of the mapping above it. */
function misaligned(line: number, source: SourceText): YamlSyntaxProblem | undefined {
  const above = source.previousContentLine(line);
  if (above === undefined) return undefined;
  const key = source.keyName(line);
  const aboveKey = source.keyName(above);
  const spaces = source.indent(line);
  const aboveSpaces = source.keyColumn(above);
  const subject = key === undefined ? "this line" : JSON.stringify(key);
  const other = aboveKey === undefined
    ? `line ${above}`
    : `${JSON.stringify(aboveKey)} on line ${above}`;
  return {
    line,
    column: source.contentColumn(line),
    message: `bad indentation: ${subject} is indented ${plural(spaces)} but ${other} is ` +
      `indented ${aboveSpaces}; the keys of one mapping must line up`,
  };
}

/** A `-` not lined up with the items of the list above it. */
function misalignedItem(line: number, source: SourceText): YamlSyntaxProblem | undefined {
  let above = source.previousContentLine(line);
  while (above !== undefined && !/^\s*- /.test(source.line(above) + " ")) {
    above = source.previousContentLine(above);
  }
  const spaces = source.indent(line);
  const where = above === undefined
    ? ""
    : ` but the item on line ${above} is indented ${source.indent(above)}`;
  return {
    line,
    column: source.contentColumn(line),
    message: `bad indentation: this "-" is indented ${plural(spaces)}${where}; ` +
      "the items of one list must line up",
  };
}

/**
 * The parser found a key inside a one-line value: either the value itself holds `: `, or the
 * next line is indented under a key that already has its value on its own line.
 */
function valueRunsOn(line: number, source: SourceText): YamlSyntaxProblem | undefined {
  const text = source.line(line);
  const key = source.keyName(line);
  const valueStart = source.valueColumn(line);
  if (key !== undefined && valueStart !== undefined) {
    const value = text.slice(valueStart - 1).replace(/\s+#.*$/, "").trimEnd();
    if (/:(\s|$)/.test(value) && !/^["'[{]/.test(value)) {
      return {
        line,
        column: valueStart,
        message: `this value contains ": " (a colon and a space), which YAML reads as another ` +
          `key: put the value in quotes, e.g. ${key}: ${JSON.stringify(value)}`,
      };
    }
  }
  const next = source.nextContentLine(line);
  if (next === undefined || source.indent(next) <= source.keyColumn(line)) return undefined;
  const nextKey = source.keyName(next);
  const subject = nextKey === undefined ? "this line" : JSON.stringify(nextKey);
  if (key === undefined) {
    return {
      line: next,
      column: source.contentColumn(next),
      message: `bad indentation: ${subject} is indented more than line ${line} above it`,
    };
  }
  const owner = JSON.stringify(key);
  const value = valueStart === undefined
    ? ""
    : ` (${text.slice(valueStart - 1).replace(/\s+#.*$/, "").trim()})`;
  return {
    line: next,
    column: source.contentColumn(next),
    message: `bad indentation: ${subject} is indented more than ${owner} on line ${line}, ` +
      `but ${owner} already has a value${value}; ${
        lineUp(subject, owner, source.keyColumn(line))
      }, ` +
      `or remove the value to nest it under ${owner}`,
  };
}

function lineUp(subject: string, owner: string, spaces: number): string {
  return spaces === 0
    ? `start ${subject} at the beginning of the line like ${owner}`
    : `indent ${subject} ${plural(spaces)} like ${owner}`;
}

function plural(spaces: number): string {
  return spaces === 1 ? "1 space" : `${spaces} spaces`;
}
