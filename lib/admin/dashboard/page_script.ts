/**
 * The dashboard's script (/dashboard/app.js): polls /dashboard/data and redraws the page with
 * DOM calls only (textContent, never innerHTML: route ids, hosts and problems come from config
 * files and Kubernetes objects and are shown as text). On 401 it reloads, which brings up the
 * sign-in page; when the gateway does not answer it says so and keeps trying.
 *
 * Plain browser JavaScript in a string (no build step): no backtick and no dollar-brace in it.
 *
 * @module
 */

/** Served as /dashboard/app.js. */
export const DASHBOARD_JS = String.raw`"use strict";
(function () {
  var refreshMs = 2000;

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function set(id, value) { $(id).textContent = value; }

  function badge(id, text, tone) {
    var node = $(id);
    node.textContent = text;
    node.className = "badge" + (tone ? " " + tone : "");
  }

  function rate(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "0";
    if (value < 0.1) return "<0.1";
    if (value < 10) return value.toFixed(1);
    return String(Math.round(value));
  }

  function ratio(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "0%";
    if (value < 0.001) return "<0.1%";
    return (value * 100).toFixed(1) + "%";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 0.01) return (seconds * 1000).toFixed(1) + " ms";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "never";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }

  function since(iso, now) {
    var at = Date.parse(iso);
    if (isNaN(at)) return "–";
    return age((now - at) / 1000) + " (" + new Date(at).toLocaleTimeString() + ")";
  }

  function perSecond(value) { return value === null || value === undefined ? "–" : rate(value) + "/s"; }

  function renderGateway(data) {
    var g = data.gateway;
    if (g.draining) badge("gateway-state", "draining", "warn");
    else if (g.ready) badge("gateway-state", "ready", "ok");
    else badge("gateway-state", "starting", "warn");
    set("updated", "updated " + new Date(Date.parse(data.generated_at)).toLocaleTimeString());
    $("logout").hidden = g.admin_auth !== "token";
  }

  function renderTraffic(data) {
    var t = data.traffic;
    set("window", data.window_seconds === null ? "(measuring)" : "last " + Math.round(data.window_seconds) + " s");
    set("traffic-rate", perSecond(t.requests_per_second));
    set("traffic-errors", ratio(t.error_ratio));
    set("traffic-p99", duration(t.p99_seconds));
    set("traffic-rejected", perSecond(t.rejected_per_second));
    set("traffic-unmatched", perSecond(t.unmatched_per_second));
    set("traffic-in-flight", String(t.in_flight));
  }

  function renderConfig(data, now) {
    var c = data.config;
    set("config-digest", c.digest || "–");
    set("config-generation", c.generation === null ? "–" : String(c.generation));
    set("config-table", "version " + c.table_version);
    set("config-loaded", c.loaded_at ? age((now - Date.parse(c.loaded_at)) / 1000) : "–");
    $("config-loaded").title = c.loaded_at || "";
    set("config-file", c.file || "–");
    var w = data.gateway.workers;
    set("config-workers", w ? w.serving + " of " + w.configured + " serving" : "main thread");
    var last = c.last_reload;
    var problems = $("reload-problems");
    problems.replaceChildren();
    if (!last) {
      badge("reload-result", "none since start", "");
      set("reload-when", "");
      return;
    }
    badge("reload-result", last.result, last.result === "applied" ? "ok" : "bad");
    set("reload-when", last.trigger + ", " + since(last.at, now));
    last.problems.slice(0, 6).forEach(function (problem) { problems.append(el("li", "", problem)); });
    if (last.problems.length > 6) problems.append(el("li", "", "and " + (last.problems.length - 6) + " more"));
  }

  function renderRedis(data) {
    var r = data.redis;
    var tones = { ok: "ok", idle: "", off: "", unknown: "", degraded: "warn", failing: "bad" };
    var words = { ok: "ok", idle: "idle (no checks)", off: "not configured", unknown: "measuring", degraded: "degraded", failing: "failing" };
    badge("redis-state", words[r.state] || r.state, tones[r.state] || "");
    set("redis-target", r.configured ? r.target : "in-memory limiter");
    set("redis-mode", r.configured ? r.failure_mode : "–");
    set("redis-checks", r.configured ? perSecond(r.checks_per_second) : "–");
    set("redis-errors", r.configured ? perSecond(r.errors_per_second) : "–");
    set("redis-last-error", r.configured ? age(r.seconds_since_error) : "–");
  }

  function renderKubernetes(data) {
    var k = data.kubernetes;
    var tones = { connected: "ok", syncing: "warn", disconnected: "bad", off: "" };
    badge("kubernetes-state", k.enabled ? k.state : "discovery off", tones[k.state] || "");
    set("kubernetes-namespace", k.enabled ? (k.namespace || "–") : "–");
    set("kubernetes-last-event", k.enabled ? age(k.last_event_age_seconds) : "–");
    set("kubernetes-errors", k.enabled ? String(k.errors_total) : "–");
  }

  // Each cell says which column it is (data-col): the tests read the page by it.
  function cell(row, col, text, extra) {
    var td = el("td", col + (extra ? " " + extra : ""), text);
    td.dataset.col = col;
    row.append(td);
    return td;
  }

  function renderRoutes(data) {
    var body = $("routes").tBodies[0];
    var rows = data.routes.map(function (route) {
      var tr = el("tr");
      tr.dataset.route = route.id;
      cell(tr, "id", route.id);
      cell(tr, "source", route.source);
      var match = cell(tr, "match", route.match.kind + " " + route.match.value);
      if (route.hosts) route.hosts.forEach(function (host) { match.append(" ", el("span", "tag", host)); });
      if (route.methods) match.append(" ", el("span", "tag", route.methods.join(",")));
      if (route.conditions > 0) match.append(" ", el("span", "tag", "+" + route.conditions + " conditions"));
      var backends = cell(tr, "backends");
      if (route.redirect) backends.append(el("span", "tag", route.redirect.status + " to " + route.redirect.to));
      route.backends.forEach(function (b, i) {
        if (i > 0) backends.append(", ");
        var text = b.service_name + (route.backends.length > 1 ? " ×" + b.weight : "");
        backends.append(el("span", b.unresolved ? "bad-text" : "", text));
      });
      cell(tr, "auth", route.auth_required ? "required" : "–");
      var limit = route.rate_limit;
      cell(tr, "limit", limit ? limit.requests_per_period + " / " + limit.period_seconds + " s by " + limit.client_identifier : "–");
      var t = route.traffic;
      cell(tr, "rate", rate(t.requests_per_second), "num");
      var errors = cell(tr, "errors", ratio(t.error_ratio), "num");
      if (t.error_ratio > 0) errors.classList.add("bad-text");
      cell(tr, "p99", duration(t.p99_seconds), "num");
      cell(tr, "rejected", rate(t.rejected_per_second), "num");
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    set("routes-count", data.routes.length + (data.truncated.routes ? " (+" + data.truncated.routes + " not shown)" : ""));
  }

  var STATE_WORDS = { ready: "ready", terminating: "terminating", ejected: "ejected", unhealthy: "unhealthy", not_ready: "not ready" };

  function renderServices(data) {
    var body = $("services").tBodies[0];
    var rows = data.services.map(function (service) {
      var tr = el("tr");
      tr.dataset.service = service.name;
      cell(tr, "id", service.name);
      cell(tr, "source", service.source || "unknown");
      cell(tr, "ready", service.ready + " / " + service.endpoints.length, "num");
      var out = cell(tr, "out", String(service.out_of_rotation), "num");
      if (service.out_of_rotation > 0) out.classList.add("bad-text");
      var list = el("ul", "endpoints");
      if (!service.known) list.append(el("li", "bad-text", "not found: no endpoints"));
      service.endpoints.forEach(function (endpoint) {
        var li = el("li", "endpoint " + endpoint.state);
        li.dataset.endpoint = endpoint.url;
        li.dataset.state = endpoint.state;
        li.append(el("span", "url", endpoint.url));
        var words = STATE_WORDS[endpoint.state] || endpoint.state;
        if (endpoint.state !== "ready" && endpoint.serving) words += " (serving: none healthy)";
        li.append(el("span", "state", words));
        list.append(li);
      });
      cell(tr, "endpoints").append(list);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    set("services-count", String(data.services.length) + (data.truncated.services ? " (+" + data.truncated.services + " not shown)" : ""));
  }

  function render(data) {
    var now = Date.parse(data.generated_at);
    renderGateway(data);
    renderTraffic(data);
    renderConfig(data, now);
    renderRedis(data);
    renderKubernetes(data);
    renderRoutes(data);
    renderServices(data);
    document.body.dataset.refreshedAt = data.generated_at;
  }

  function banner(message) {
    var node = $("banner");
    node.hidden = message === null;
    node.textContent = message || "";
  }

  function refresh() {
    fetch("/dashboard/data", { cache: "no-store", credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          location.reload();
          return null;
        }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data === null) return;
        render(data);
        banner(null);
        if (data.refresh_seconds > 0) refreshMs = data.refresh_seconds * 1000;
      })
      .catch(function (error) {
        banner("The admin listener does not answer (" + error.message + "); retrying every " + refreshMs / 1000 + " s. The numbers below are from the last answer.");
      })
      .then(function () { setTimeout(refresh, refreshMs); });
  }

  refresh();
})();
`;
