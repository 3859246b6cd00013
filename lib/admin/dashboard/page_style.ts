/**
 * The dashboard's stylesheet (/dashboard/app.css): system fonts, no external resource; the
 * states keep their words beside their colours.
 *
 * @module
 */

/** Served as /dashboard/app.css. */
export const DASHBOARD_CSS = String.raw`
:root {
  --bg: #f5f6f8; --panel: #ffffff; --ink: #1d2430; --muted: #667085; --line: #e3e6eb;
  --accent: #1f4fd1; --ok: #1a7f37; --ok-bg: #dcf5e3; --warn: #9a6700; --warn-bg: #fff1c2;
  --bad: #b42318; --bad-bg: #fde3e1; --off: #475467; --off-bg: #eaecf0;
  color-scheme: light;
}
[hidden] { display: none !important; }
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
code, td.match, .endpoint { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h1 { font-size: 18px; margin: 0; letter-spacing: 0.02em; }
h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--off); }
.top {
  display: flex; align-items: center; gap: 12px; padding: 10px 20px;
  background: #101828; color: #f2f4f7;
}
.top .muted { color: #98a2b3; }
.spacer { flex: 1; }
.top button, .login button {
  font: inherit; border: 1px solid #475467; background: transparent; color: inherit;
  border-radius: 6px; padding: 3px 10px; cursor: pointer;
}
.muted { color: var(--muted); font-weight: normal; text-transform: none; letter-spacing: 0; }
.banner { margin: 12px 20px 0; padding: 8px 12px; border-radius: 6px; background: var(--bad-bg); color: var(--bad); }
main { padding: 16px 20px; }
section { margin-bottom: 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card p { margin: 0 0 8px; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
dd.wrap { overflow-wrap: anywhere; font-size: 12px; }
.problems { margin: 0; padding-left: 18px; font-size: 12px; color: var(--bad); overflow-wrap: anywhere; }
.scroll { overflow-x: auto; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafbfc; white-space: nowrap; }
tbody tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { font-weight: 600; }
.badge {
  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--off-bg); color: var(--off); white-space: nowrap;
}
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.top .badge { background: #344054; color: #f2f4f7; }
.top .badge.ok { background: #1a7f37; color: #fff; }
.top .badge.bad { background: #b42318; color: #fff; }
.top .badge.warn { background: #9a6700; color: #fff; }
ul.endpoints { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 6px; }
.endpoint { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; padding: 1px 8px; border-radius: 6px; border: 1px solid var(--line); }
.endpoint .state { font-family: system-ui, sans-serif; font-weight: 600; }
.endpoint.ready .state { color: var(--ok); }
.endpoint.terminating .state, .endpoint.ejected .state { color: var(--warn); }
.endpoint.unhealthy .state { color: var(--bad); }
.endpoint.unhealthy, .endpoint.ejected { background: #fff8f7; }
.endpoint.not_ready .state { color: var(--off); }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 4px; background: var(--off-bg); color: var(--off); margin: 0 4px 2px 0; }
.bad-text { color: var(--bad); font-weight: 600; }
footer { padding: 0 20px 20px; font-size: 12px; }
.login { max-width: 360px; margin: 12vh auto; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 20px 24px; }
.login form { display: grid; gap: 8px; margin-top: 12px; }
.login input { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; }
.login button { background: var(--accent); color: #fff; border-color: var(--accent); padding: 6px 10px; }
.login .banner { margin: 8px 0; }
`;
