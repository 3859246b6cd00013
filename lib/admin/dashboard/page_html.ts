/**
 * The dashboard's HTML: the page, and the sign-in page shown when the admin listener asks for a
 * token. No inline script or style: they come from /dashboard/app.js and /dashboard/app.css, so
 * the strict Content-Security-Policy of admin.ts holds. No external resource either.
 *
 * @module
 */

/** The dashboard page; app.js fills it in from /dashboard/data. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Vanguard dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Vanguard</h1>
  <span id="gateway-state" class="badge">loading</span>
  <span id="updated" class="muted"></span>
  <span class="spacer"></span>
  <span class="muted">read-only</span>
  <form id="logout" method="post" action="/dashboard/logout" hidden>
    <button type="submit">Sign out</button>
  </form>
</header>
<div id="banner" class="banner" role="alert" hidden></div>
<noscript><div class="banner">The dashboard needs JavaScript; /routes and /metrics have the same data.</div></noscript>
<main>
  <section class="cards">
    <article class="card" id="card-traffic">
      <h2>Traffic <span class="muted" id="window"></span></h2>
      <dl>
        <dt>Requests</dt><dd id="traffic-rate">–</dd>
        <dt>5xx</dt><dd id="traffic-errors">–</dd>
        <dt>p99</dt><dd id="traffic-p99">–</dd>
        <dt>429 (rate limit)</dt><dd id="traffic-rejected">–</dd>
        <dt>No route (404)</dt><dd id="traffic-unmatched">–</dd>
        <dt>In flight</dt><dd id="traffic-in-flight">–</dd>
      </dl>
    </article>
    <article class="card" id="card-config">
      <h2>Config</h2>
      <dl>
        <dt>Version</dt><dd id="config-digest">–</dd>
        <dt>Generation</dt><dd id="config-generation">–</dd>
        <dt>Routing table</dt><dd id="config-table">–</dd>
        <dt>Loaded</dt><dd id="config-loaded">–</dd>
        <dt>File</dt><dd id="config-file" class="wrap">–</dd>
        <dt>Workers</dt><dd id="config-workers">–</dd>
      </dl>
    </article>
    <article class="card" id="card-reload">
      <h2>Last reload</h2>
      <p><span id="reload-result" class="badge">none</span> <span id="reload-when" class="muted"></span></p>
      <ul id="reload-problems" class="problems"></ul>
    </article>
    <article class="card" id="card-redis">
      <h2>Redis</h2>
      <p><span id="redis-state" class="badge">–</span></p>
      <dl>
        <dt>Target</dt><dd id="redis-target">–</dd>
        <dt>Failure mode</dt><dd id="redis-mode">–</dd>
        <dt>Checks</dt><dd id="redis-checks">–</dd>
        <dt>Errors</dt><dd id="redis-errors">–</dd>
        <dt>Last error</dt><dd id="redis-last-error">–</dd>
      </dl>
    </article>
    <article class="card" id="card-kubernetes">
      <h2>Kubernetes</h2>
      <p><span id="kubernetes-state" class="badge">–</span></p>
      <dl>
        <dt>Namespace</dt><dd id="kubernetes-namespace">–</dd>
        <dt>Last event</dt><dd id="kubernetes-last-event">–</dd>
        <dt>Watch errors</dt><dd id="kubernetes-errors">–</dd>
      </dl>
    </article>
  </section>
  <section>
    <h2>Routes <span class="muted" id="routes-count"></span></h2>
    <div class="scroll">
    <table id="routes">
      <thead><tr>
        <th>Route</th><th>Source</th><th>Match</th><th>Backends</th><th>Auth</th><th>Limit</th>
        <th class="num">Req/s</th><th class="num">5xx</th><th class="num">p99</th><th class="num">429/s</th>
      </tr></thead>
      <tbody></tbody>
    </table>
    </div>
  </section>
  <section>
    <h2>Services <span class="muted" id="services-count"></span></h2>
    <div class="scroll">
    <table id="services">
      <thead><tr><th>Service</th><th>Source</th><th class="num">Ready</th><th class="num">Out of rotation</th><th>Endpoints</th></tr></thead>
      <tbody></tbody>
    </table>
    </div>
  </section>
</main>
<footer class="muted">
  Numbers come from the counters behind /metrics, over the last seconds shown; the page refreshes
  every few seconds. Endpoint states: ready, terminating, ejected (passive health), unhealthy
  (failing active health checks), not ready.
</footer>
</body>
</html>
`;

/** The sign-in page: one password field, posted to /dashboard/login (no script needed). */
export function loginHtml(failed: boolean): string {
  const problem = failed
    ? '\n  <p class="banner" role="alert">That token is not the admin token.</p>'
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Vanguard dashboard: sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<main class="login">
  <h1>Vanguard</h1>
  <p>This admin listener asks for its token (<code>server.admin_token_env</code>).</p>${problem}
  <form id="login" method="post" action="/dashboard/login">
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>
`;
}
