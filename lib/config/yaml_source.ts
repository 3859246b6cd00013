/**
 * The config text by lines and the `yaml` parser's concrete syntax tree, for yaml_errors.ts to
 * look around an error: indentation, the key a line starts with, the tokens.
 *
 * @module
 */

import { type CST, type LineCounter, Parser } from "yaml";

/** The config text by lines, with the positions the parser uses. */
export class SourceText {
  readonly #text: string;
  readonly #lines: string[];
  readonly #counter: LineCounter;
  #tokens: CST.Token[] | undefined;

  constructor(text: string, counter: LineCounter) {
    this.#text = text;
    this.#lines = text.split("\n").map((line) => line.replace(/\r$/, ""));
    this.#counter = counter;
  }

  /** Line and column (both 1-based) of a character offset. */
  position(offset: number): { line: number; col: number } {
    return this.#counter.linePos(offset);
  }

  /** Line `n` (1-based), without its line break. */
  line(n: number): string {
    return this.#lines[n - 1] ?? "";
  }

  /** Leading spaces of line `n`. */
  indent(n: number): number {
    return /^ */.exec(this.line(n))![0].length;
  }

  /** Column (1-based) of the first character that is not a space or tab. */
  contentColumn(n: number): number {
    return /^[ \t]*/.exec(this.line(n))![0].length + 1;
  }

  /** Spaces before the key of line `n`, past any `- ` of list items. */
  keyColumn(n: number): number {
    return /^ *(?:- +)*/.exec(this.line(n))![0].length;
  }

  /** The key that line `n` starts with (`port` of `  - port: 1`), if any. */
  keyName(n: number): string | undefined {
    const rest = this.line(n).slice(this.keyColumn(n));
    return /^([^\s:#"'[\]{},&*!|>%@`-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s|$)/.exec(rest)?.[1];
  }

  /** Column (1-based) where the value after `key:` starts on line `n`, if any. */
  valueColumn(n: number): number | undefined {
    const key = this.keyName(n);
    if (key === undefined) return undefined;
    const text = this.line(n);
    const after = text.indexOf(":", this.keyColumn(n) + key.length) + 1;
    const value = /^\s*/.exec(text.slice(after))![0].length + after;
    return value < text.length ? value + 1 : undefined;
  }

  /** The nearest line after `n` with something besides spaces and a comment. */
  nextContentLine(n: number): number | undefined {
    for (let i = n + 1; i <= this.#lines.length; i++) if (hasContent(this.line(i))) return i;
    return undefined;
  }

  /** The nearest line before `n` with something besides spaces and a comment. */
  previousContentLine(n: number): number | undefined {
    for (let i = n - 1; i >= 1; i--) if (hasContent(this.line(i))) return i;
    return undefined;
  }

  /** Every token of the concrete syntax tree, depth first, in source order. */
  tokens(): CST.Token[] {
    this.#tokens ??= [...new Parser().parse(this.#text)].flatMap(flatten);
    return this.#tokens;
  }
}

function hasContent(line: string): boolean {
  return !/^\s*(#.*)?$/.test(line);
}

function flatten(token: CST.Token): CST.Token[] {
  const out: CST.Token[] = [token];
  const children: (CST.Token | undefined)[] = [];
  if ("value" in token && token.value !== undefined && typeof token.value === "object") {
    children.push(token.value as CST.Token);
  }
  if ("items" in token && Array.isArray(token.items)) {
    for (const item of token.items as CST.CollectionItem[]) {
      children.push(item.key ?? undefined, item.value ?? undefined);
    }
  }
  for (const child of children) if (child) out.push(...flatten(child));
  return out;
}
