/**
 * The dashboard's page, script and stylesheet as served: nothing the strict CSP would refuse,
 * nothing from another origin, a script that parses, and every element the script fills in.
 * (In a browser: dashboard_browser_test.ts.)
 */
import assert from "node:assert/strict";
import { DASHBOARD_HTML, loginHtml } from "../../lib/admin/dashboard/page_html.ts";
import { DASHBOARD_JS } from "../../lib/admin/dashboard/page_script.ts";
import { DASHBOARD_CSS } from "../../lib/admin/dashboard/page_style.ts";

const PAGES: [string, string][] = [
  ["dashboard", DASHBOARD_HTML],
  ["sign-in", loginHtml(false)],
  ["sign-in after a wrong token", loginHtml(true)],
];

Deno.test("the pages have no inline script, style or handler, and load nothing from elsewhere", () => {
  for (const [name, html] of PAGES) {
    for (const tag of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) {
      assert.match(tag[0], /\bsrc="\/dashboard\/app\.js"/, `${name}: a script with a src`);
      assert.equal(tag[1], "", `${name}: no inline code`);
    }
    assert.doesNotMatch(html, /<style\b/i, `${name}: no style element`);
    assert.doesNotMatch(html, /\sstyle=/i, `${name}: no style attribute`);
    assert.doesNotMatch(html, /\son[a-z]+=/i, `${name}: no event handler attribute`);
    assert.doesNotMatch(html, /javascript:/i, name);
    for (const [, url] of html.matchAll(/\b(?:src|href|action)="([^"]*)"/g)) {
      assert.ok(
        url.startsWith("/") && !url.startsWith("//") || url === "data:,",
        `${name}: ${url}`,
      );
    }
  }
  assert.doesNotMatch(DASHBOARD_CSS, /@import|url\(/i, "the stylesheet loads nothing");
});

Deno.test("the script parses and finds every element it fills in", () => {
  new Function(DASHBOARD_JS); // throws a SyntaxError on a broken script
  assert.doesNotMatch(
    DASHBOARD_JS,
    /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/,
  );
  const ids = new Set([...DASHBOARD_HTML.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]));
  const used = [...DASHBOARD_JS.matchAll(/(?:\$|set|badge)\("([a-z0-9-]+)"/g)].map((m) => m[1]);
  assert.ok(used.length > 20, `the script fills in the page (${used.length} ids)`);
  for (const id of used) assert.ok(ids.has(id), `#${id} is in the page`);
  assert.match(DASHBOARD_JS, /fetch\("\/dashboard\/data"/, "it polls the same origin");
});
