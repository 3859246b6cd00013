/**
 * The README and docs/ name files and link to each other; these tests fail when a link, an anchor
 * or a repository path they mention no longer exists.
 *
 *   deno test --allow-read=. tests/docs_test.ts
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), ".."));

/** Repository-relative paths of README.md and every page under docs/. */
function pages(): string[] {
  const docs = [...Deno.readDirSync(join(ROOT, "docs"))]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`)
    .sort();
  return ["README.md", ...docs];
}

/** The text outside fenced code blocks, line by line (fenced lines become empty). */
function prose(text: string): string[] {
  let fenced = false;
  return text.split("\n").map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return "";
    }
    return fenced ? "" : line;
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to "-". */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_~]/g, (mark) => (mark === "_" ? "_" : ""))
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(path: string): Set<string> {
  const found = new Set<string>();
  const counts = new Map<string, number>();
  for (const line of prose(Deno.readTextFileSync(join(ROOT, path)))) {
    const match = /^#{1,6}\s+(.*)$/.exec(line);
    if (!match) continue;
    const base = slug(match[1]);
    const seen = counts.get(base) ?? 0;
    counts.set(base, seen + 1);
    found.add(seen === 0 ? base : `${base}-${seen}`);
  }
  return found;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(join(ROOT, path));
    return true;
  } catch {
    return false;
  }
}

/** Every problem with the relative links of `page`, as "page:line: message". */
function linkProblems(page: string): string[] {
  const problems: string[] = [];
  const lines = prose(Deno.readTextFileSync(join(ROOT, page)));
  lines.forEach((line, index) => {
    for (const match of line.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [file, anchor] = target.split("#", 2);
      const resolved = file === ""
        ? page
        : relative(ROOT, normalize(join(ROOT, dirname(page), decodeURIComponent(file))));
      const where = `${page}:${index + 1}`;
      if (resolved.startsWith("..") || !exists(resolved)) {
        problems.push(`${where}: link to ${target}: no such file`);
      } else if (anchor !== undefined && resolved.endsWith(".md")) {
        if (!anchors(resolved).has(anchor)) {
          problems.push(`${where}: link to ${target}: no heading #${anchor} in ${resolved}`);
        }
      }
    }
  });
  return problems;
}

const REPO_PATH = /^(?:lib|tests|bench|examples|k8s|docs)\/[^\s]*$/;

/** Every backticked repository path (`lib/...`, `tests/...`, ...) in `page` that does not exist. */
function pathProblems(page: string): string[] {
  const problems: string[] = [];
  const lines = prose(Deno.readTextFileSync(join(ROOT, page)));
  lines.forEach((line, index) => {
    for (const match of line.matchAll(/`([^`]+)`/g)) {
      const path = match[1].trim();
      if (!REPO_PATH.test(path)) continue;
      // Placeholders and run-time directories (created by the tests and benches) are not files.
      if (/[<>*]|\.\.\./.test(path) || /(^|\/)\.tmp(\/|$)/.test(path)) continue;
      if (!exists(path.replace(/\/$/, ""))) {
        problems.push(`${page}:${index + 1}: \`${path}\`: no such file or directory`);
      }
    }
  });
  return problems;
}

Deno.test("README.md and docs/ link only to files and headings that exist", () => {
  assert.deepEqual(pages().flatMap(linkProblems), []);
});

Deno.test("README.md and docs/ name only repository paths that exist", () => {
  assert.deepEqual(pages().flatMap(pathProblems), []);
});

Deno.test("the README's quick-start config is examples/quickstart.yaml, verbatim", () => {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const quickstart = Deno.readTextFileSync(join(ROOT, "examples/quickstart.yaml"));
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]);
  assert.ok(blocks.includes(quickstart), "no ```yaml block equal to the file");
});

Deno.test("slug() makes GitHub's anchors", () => {
  assert.deepEqual(slug("Paths: one canonical form"), "paths-one-canonical-form");
  assert.deepEqual(slug("Admin listener (`server.admin_port`)"), "admin-listener-serveradmin_port");
  assert.deepEqual(slug("deno compile"), "deno-compile");
});
