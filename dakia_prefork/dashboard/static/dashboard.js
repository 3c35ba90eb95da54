// The dakia-prefork dashboard: polls the admin API's /status, /metrics and
// /config/versions and draws what they say.
//
// Theory of operation
// -------------------
// Every POLL_MS the page fetches the three documents. /status is drawn as it is (the
// processes, the nodes' health). /metrics is Prometheus text: each poll keeps a compact
// snapshot of the counters the page needs (requests by route and status class, the
// latency histograms, rate-limiter rejections, per-node latency, failures and
// ejections), and rates and quantiles are the differences between two snapshots, as
// Prometheus' rate() and histogram_quantile() compute them. HISTORY_S of snapshots are
// kept for the charts.
//
// Safety: everything shown comes from config or requests, so it is written with
// textContent or as SVG attributes, never as HTML. The token lives in sessionStorage
// (this tab only) and goes in the Authorization header; no URL carries it.
"use strict";

(() => {
  const TOKEN_KEY = "dakia.admin.token";
  const POLL_MS = 2000;
  const HISTORY_S = 300;
  const WINDOW_S = 60;
  const CONFIRM_MS = 5000;
  // The API is the page's own directory, or one up from /dashboard/ (the controller's).
  const API = new URL(location.pathname.endsWith("/dashboard/") ? "../" : "./", location.href);

  class Unauthorized extends Error {}

  const $ = (id) => document.getElementById(id);
  let history = [];          // snapshots, oldest first
  let timer = null;
  let polling = false;

  // -- the API ------------------------------------------------------------------------
  async function call(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.set("Authorization", "Bearer " + token);
    const response = await fetch(new URL(path, API), {
      method: options.method || "GET", headers, body: options.body,
      cache: "no-store", credentials: "omit", redirect: "error", referrerPolicy: "no-referrer",
    });
    if (response.status === 401) throw new Unauthorized();
    return response;
  }

  async function json(path, options) {
    const response = await call(path, options);
    const body = await response.json().catch(() => ({}));
    return { status: response.status, body };
  }

  // -- Prometheus text ------------------------------------------------------------------
  const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const match = LINE.exec(line);
      if (!match) continue;
      const labels = {};
      if (match[2]) {
        for (const label of match[2].matchAll(LABEL)) {
          labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
        }
      }
      samples.push({ name: match[1], labels, value: Number(match[3]) });
    }
    return samples;
  }

  const key = (...parts) => JSON.stringify(parts);

  // The counters one poll keeps: routes and nodes by key, each a flat object of numbers.
  function snapshot(samples, time) {
    const routes = new Map();
    const nodes = new Map();
    const route = (l) => {
      const k = key(l.gateway, l.route);
      let r = routes.get(k);
      if (!r) {
        r = { gateway: l.gateway, route: l.route, classes: [0, 0, 0, 0, 0], total: 0,
              buckets: [], rejected: null };
        routes.set(k, r);
      }
      return r;
    };
    const node = (l) => {
      const k = key(l.gateway, l.upstream, l.node);
      let n = nodes.get(k);
      if (!n) {
        n = { latencySum: 0, latencyCount: 0, failures: 0, ejections: 0 };
        nodes.set(k, n);
      }
      return n;
    };
    for (const s of samples) {
      const l = s.labels;
      switch (s.name) {
        case "dakia_requests_total": {
          const r = route(l);
          const c = Number(String(l.status_class)[0]) - 1;
          if (c >= 0 && c < 5) r.classes[c] += s.value;
          r.total += s.value;
          break;
        }
        case "dakia_request_duration_seconds_bucket":
          route(l).buckets.push([l.le === "+Inf" ? Infinity : Number(l.le), s.value]);
          break;
        case "dakia_rate_limit_rejections_total":
          route(l).rejected = s.value;
          break;
        case "dakia_upstream_node_latency_seconds_sum": node(l).latencySum = s.value; break;
        case "dakia_upstream_node_latency_seconds_count": node(l).latencyCount = s.value; break;
        case "dakia_upstream_node_failures_total": node(l).failures = s.value; break;
        case "dakia_upstream_node_ejections_total": node(l).ejections = s.value; break;
        default: break;
      }
    }
    for (const r of routes.values()) r.buckets.sort((a, b) => a[0] - b[0]);
    return { time, routes, nodes };
  }

  // The snapshot closest to `seconds` before the newest (the oldest kept if none is).
  function before(seconds) {
    const newest = history[history.length - 1];
    for (const s of history) {
      if (s.time >= newest.time - seconds) return s === newest ? null : s;
    }
    return null;
  }

  // Prometheus' histogram_quantile over the buckets' increase between two snapshots.
  function quantile(q, now, then) {
    if (!now || now.length === 0) return null;
    const counts = now.map(([le, c], i) => [le, c - (then && then[i] ? then[i][1] : 0)]);
    const total = counts[counts.length - 1][1];
    if (total <= 0) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const [le, cumulative] of counts) {
      if (cumulative >= rank) {
        if (le === Infinity) return lower;
        return lower + (le - lower) * ((rank - below) / Math.max(cumulative - below, 1e-9));
      }
      lower = le;
      below = cumulative;
    }
    return lower;
  }

  const rate = (now, then, dt) => (dt > 0 ? Math.max(0, now - then) / dt : 0);

  // -- drawing helpers ----------------------------------------------------------------
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "-" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren();
    if (rows.length === 0) {
      const tr = tbody.insertRow();
      const td = cell(tr, emptyText, "empty");
      td.colSpan = columns;
    }
    for (const row of rows) tbody.appendChild(row);
  }

  const SVG = "http://www.w3.org/2000/svg";

  // A small line chart of one or more series of numbers (the same length).
  function spark(series, width = 140, height = 30) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const axis = document.createElementNS(SVG, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", 0); axis.setAttribute("x2", width);
    axis.setAttribute("y1", height - 1); axis.setAttribute("y2", height - 1);
    svg.appendChild(axis);
    const top = Math.max(1e-9, ...series.flat().filter(Number.isFinite));
    series.forEach((values, index) => {
      if (values.length < 2) return;
      const step = width / (values.length - 1);
      const points = values.map((v, i) => {
        const y = height - 1 - ((Number.isFinite(v) ? v : 0) / top) * (height - 3);
        return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
      });
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", `series-${index}`);
      line.setAttribute("points", points.join(" "));
      svg.appendChild(line);
    });
    return svg;
  }

  function chartCell(row, series, title) {
    const td = document.createElement("td");
    td.title = title;
    td.appendChild(spark(series));
    row.appendChild(td);
  }

  const ms = (seconds) => (seconds === null || seconds === undefined ? "-"
    : seconds < 0.001 ? `${(seconds * 1e6).toFixed(0)} µs` : `${(seconds * 1000).toFixed(1)} ms`);
  const perSecond = (value) => (value >= 100 ? value.toFixed(0) : value.toFixed(1));

  function uptime(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return `${d}d${String(h).padStart(2, "0")}h`;
    if (h) return `${h}h${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m${String(r).padStart(2, "0")}s`;
    return `${r}s`;
  }

  // Per interval between consecutive snapshots: fn(now, then, dt) for each.
  function seriesOf(fn) {
    const out = [];
    for (let i = 1; i < history.length; i += 1) {
      out.push(fn(history[i], history[i - 1], history[i].time - history[i - 1].time));
    }
    return out;
  }

  // -- the sections ---------------------------------------------------------------------
  function drawProcesses(status) {
    const rows = [];
    const master = status.master || {};
    const tr = document.createElement("tr");
    tr.className = "master";
    cell(tr, "master");
    cell(tr, master.pid, "num pid");
    cell(tr, "-");
    cell(tr, master.ready === undefined ? "?" : master.ready ? "ready" : "starting",
      master.ready ? "state-ready" : "state-booting");
    cell(tr, master.config_version === undefined ? "-" : `v${master.config_version}`);
    cell(tr, master.uptime === undefined ? "-" : uptime(master.uptime));
    for (let i = 0; i < 4; i += 1) cell(tr, "");
    rows.push(tr);
    let requests = 0;
    let connections = 0;
    for (const w of status.workers || []) {
      requests += w.requests;
      connections += w.connections;
      const row = document.createElement("tr");
      row.className = "worker";
      cell(row, `worker ${w.slot}` + (w.generation ? ` (gen ${w.generation})` : ""));
      cell(row, w.pid, "num pid");
      cell(row, w.slot, "num");
      const stale = w.last_heartbeat > 5;
      cell(row, stale ? `${w.state}, no heartbeat` : w.state,
        stale ? "state-stale" : `state-${w.state}`);
      cell(row, `v${w.config_version}`);
      cell(row, uptime(w.uptime));
      cell(row, w.requests, "num requests");
      cell(row, w.connections, "num");
      cell(row, w.websockets, "num");
      cell(row, `${w.last_heartbeat.toFixed(1)} s ago`, stale ? "state-stale" : "");
      rows.push(row);
    }
    for (const h of status.helpers || []) {
      const row = document.createElement("tr");
      row.className = "helper";
      cell(row, h.role.replace(/_/g, " "));
      cell(row, h.pid, "num pid");
      cell(row, "-");
      cell(row, "running", "state-ready");
      cell(row, "-");
      cell(row, uptime(h.uptime));
      for (let i = 0; i < 4; i += 1) cell(row, "");
      rows.push(row);
    }
    fill($("processes").tBodies[0], rows, 10, "");
    const version = master.config_version === undefined ? "" : `config v${master.config_version}`;
    $("summary").replaceChildren();
    const total = document.createElement("span");
    total.id = "total-requests";
    total.textContent = String(requests);
    $("summary").append(`${version} · ${(status.workers || []).length} workers · `,
      total, ` requests · ${connections} connections`);
    if (status.error) $("summary").append(` · ${status.error}`);
  }

  function drawRoutes() {
    const newest = history[history.length - 1];
    const then = before(WINDOW_S);
    const dt = then ? newest.time - then.time : 0;
    $("traffic-window").textContent = dt ? `(rates and quantiles over the last ${Math.round(dt)} s)` : "(collecting)";
    const rows = [];
    for (const [k, r] of newest.routes) {
      const old = then ? then.routes.get(k) : undefined;
      const tr = document.createElement("tr");
      cell(tr, r.gateway, "wrap");
      cell(tr, r.route, "route");
      cell(tr, r.total, "num");
      // A route missing from the older snapshot had served nothing yet: zeros.
      cell(tr, perSecond(rate(r.total, old ? old.total : 0, dt)), "num");
      for (let c = 1; c < 5; c += 1) {
        cell(tr, perSecond(rate(r.classes[c], old ? old.classes[c] : 0, dt)), "num");
      }
      cell(tr, ms(quantile(0.5, r.buckets, old && old.buckets)), "num");
      cell(tr, ms(quantile(0.99, r.buckets, old && old.buckets)), "num");
      const rates = seriesOf((a, b, d) => {
        const x = a.routes.get(k), y = b.routes.get(k);
        return x ? rate(x.total, y ? y.total : 0, d) : 0;
      });
      const errors = seriesOf((a, b, d) => {
        const x = a.routes.get(k), y = b.routes.get(k);
        return x ? rate(x.classes[3] + x.classes[4], y ? y.classes[3] + y.classes[4] : 0, d) : 0;
      });
      chartCell(tr, [rates, errors], "requests/s (blue), 4xx+5xx/s (red)");
      const p50 = seriesOf((a, b) => {
        const x = a.routes.get(k), y = b.routes.get(k);
        return x ? quantile(0.5, x.buckets, y && y.buckets) : null;
      });
      const p99 = seriesOf((a, b) => {
        const x = a.routes.get(k), y = b.routes.get(k);
        return x ? quantile(0.99, x.buckets, y && y.buckets) : null;
      });
      chartCell(tr, [p50, p99], "p50 (blue), p99 (red)");
      rows.push(tr);
    }
    fill($("routes").tBodies[0], rows, 12, "no requests yet");
  }

  function drawNodes(status) {
    const newest = history[history.length - 1];
    const then = before(WINDOW_S);
    const rows = [];
    for (const u of status.upstreams || []) {
      const k = key(u.gateway, u.upstream, u.node);
      const now = newest.nodes.get(k);
      const old = then ? then.nodes.get(k) : undefined;
      const tr = document.createElement("tr");
      cell(tr, u.gateway);
      cell(tr, u.upstream, "upstream wrap");
      cell(tr, u.node, "node");
      cell(tr, u.health === null ? "not checked" : u.health, `health-${u.health}`);
      let passive = "ok";
      let passiveClass = "passive-ok";
      if (u.ejected_for > 0) {
        passive = `ejected for ${u.ejected_for.toFixed(1)} s`;
        passiveClass = "passive-ejected";
      } else if (u.failures) {
        passive = `${u.failures} failures in a row`;
        passiveClass = "passive-failing";
      }
      cell(tr, passive, passiveClass);
      cell(tr, u.active === null ? "-" : u.active, "num");
      let latency = null;
      const oldSum = old ? old.latencySum : 0, oldCount = old ? old.latencyCount : 0;
      if (then && now && now.latencyCount > oldCount) {
        latency = (now.latencySum - oldSum) / (now.latencyCount - oldCount);
      }
      cell(tr, ms(latency), "num");
      cell(tr, now ? now.failures : 0, "num");
      cell(tr, now ? now.ejections : 0, "num");
      const series = seriesOf((a, b) => {
        const x = a.nodes.get(k), y = b.nodes.get(k);
        return x && y && x.latencyCount > y.latencyCount
          ? (x.latencySum - y.latencySum) / (x.latencyCount - y.latencyCount) : null;
      });
      chartCell(tr, [series], "mean seconds to the response head");
      rows.push(tr);
    }
    fill($("nodes").tBodies[0], rows, 10, "no upstream nodes");
  }

  function drawLimiters() {
    const newest = history[history.length - 1];
    const then = before(WINDOW_S);
    const dt = then ? newest.time - then.time : 0;
    const rows = [];
    for (const [k, r] of newest.routes) {
      if (!r.rejected) continue;
      const old = then ? then.routes.get(k) : undefined;
      const tr = document.createElement("tr");
      cell(tr, r.gateway);
      cell(tr, r.route, "route");
      cell(tr, r.rejected, "num");
      cell(tr, perSecond(rate(r.rejected, old ? old.rejected || 0 : 0, dt)), "num");
      const series = seriesOf((a, b, d) => {
        const x = a.routes.get(k), y = b.routes.get(k);
        return x ? rate(x.rejected || 0, y ? y.rejected || 0 : 0, d) : 0;
      });
      chartCell(tr, [series], "rejections/s");
      rows.push(tr);
    }
    fill($("limiters").tBodies[0], rows, 5, "no request has been rate-limited");
  }

  let shownVersions = "";

  function drawVersions(listing) {
    const summary = `current: v${listing.current}` +
      (listing.etcd_revision === undefined ? "" : ` (etcd revision ${listing.etcd_revision})`) +
      `; kept: ${listing.versions.length}`;
    $("versions-summary").textContent = summary;
    const signature = JSON.stringify(listing);
    if (signature === shownVersions) return;     // keep a pending confirmation
    shownVersions = signature;
    const rows = [];
    const newestFirst = [...listing.versions].sort((a, b) => b - a);
    for (const number of newestFirst) {
      const tr = document.createElement("tr");
      tr.dataset.version = String(number);
      cell(tr, `v${number}`);
      cell(tr, number === listing.current ? "current" : "", "muted");
      const td = document.createElement("td");
      if (number !== listing.current) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "rollback";
        button.textContent = `Roll back to v${number}`;
        button.addEventListener("click", () => rollback(button, number));
        td.appendChild(button);
      }
      tr.appendChild(td);
      rows.push(tr);
    }
    fill($("versions").tBodies[0], rows, 3, "no versions kept");
    for (const [id, pick] of [["diff-from", 1], ["diff-to", 0]]) {
      const select = $(id);
      const chosen = select.value;
      select.replaceChildren(...newestFirst.map((n) => new Option(`v${n}`, String(n))));
      select.value = chosen && newestFirst.includes(Number(chosen)) ? chosen
        : String(newestFirst[Math.min(pick, newestFirst.length - 1)] ?? "");
    }
  }

  function drawFleet(status, registry) {
    const source = status.config_source && status.config_source.etcd;
    $("fleet").hidden = !source;
    if (!source) return;
    const follower = source.follower || {};
    let text = `This node serves etcd revision ${source.revision} of key ${source.key}; ` +
      `its follower is ${follower.state || "not started"}`;
    if (follower.error) text += ` (${follower.error})`;
    $("fleet-summary").textContent = text + ".";
    const rows = [];
    const nodes = registry && registry.status === 200 ? registry.body.nodes || [] : [];
    const newest = Math.max(0, ...nodes.map((n) => n.revision || 0));
    for (const n of nodes) {
      const tr = document.createElement("tr");
      cell(tr, n.node + (n.node === registry.body.self ? " (this node)" : ""), "wrap");
      cell(tr, n.host, "wrap");
      cell(tr, n.master_pid, "num");
      cell(tr, n.admin);
      cell(tr, `v${n.version}`);
      const behind = n.revision !== newest;
      cell(tr, n.revision === null ? "-" : n.revision + (behind ? " (behind)" : ""),
        behind ? "num revision passive-failing" : "num revision");
      cell(tr, n.follower, n.follower === "following" ? "state-ready" : "state-stale");
      cell(tr, `${uptime(Date.now() / 1000 - n.since)} ago`);
      rows.push(tr);
    }
    let empty = "no node is registered";
    if (registry && registry.status !== 200) {
      empty = `the registry cannot be read: ${registry.body.error || registry.status}`;
    }
    fill($("fleet-nodes").tBodies[0], rows, 8, empty);
  }

  // -- actions --------------------------------------------------------------------------
  function report(text, isError) {
    const p = $("action-result");
    p.textContent = text;
    p.className = isError ? "error" : "";
  }

  function describe(outcome) {
    const { status, body } = outcome;
    if (status === 200) {
      let text = `Published v${body.version} (was v${body.previous}).`;
      if (body.not_applied && body.not_applied.length) {
        text += ` Not applied until a restart: ${body.not_applied.join(", ")}.`;
      }
      return [text, false];
    }
    const errors = body.errors ? body.errors.join("; ") : body.error;
    return [`Refused (${status}): ${errors || "no reason given"}`, true];
  }

  async function rollback(button, number) {
    if (!button.classList.contains("confirm")) {
      button.classList.add("confirm");
      button.textContent = `Confirm: roll back to v${number}`;
      setTimeout(() => {
        button.classList.remove("confirm");
        button.textContent = `Roll back to v${number}`;
      }, CONFIRM_MS);
      return;
    }
    button.disabled = true;
    try {
      report(...describe(await json(`config/rollback/${number}`, { method: "POST" })));
      shownVersions = "";
      await poll();
    } catch (error) {
      failed(error);
    }
  }

  async function reload() {
    try {
      report(...describe(await json("reload", { method: "POST" })));
      await poll();
    } catch (error) {
      failed(error);
    }
  }

  async function showDiff() {
    const from = $("diff-from").value, to = $("diff-to").value;
    const pre = $("diff");
    try {
      const response = await call(`config/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      const text = await response.text();
      if (!response.ok) {
        report(`Diff refused (${response.status}): ${text}`, true);
        return;
      }
      pre.replaceChildren();
      if (!text) pre.textContent = `v${from} and v${to} are the same.`;
      for (const line of text.split("\n")) {
        const span = document.createElement("span");
        if (line.startsWith("@@")) span.className = "hunk";
        else if (line.startsWith("+") && !line.startsWith("+++")) span.className = "add";
        else if (line.startsWith("-") && !line.startsWith("---")) span.className = "del";
        span.textContent = line + "\n";
        pre.appendChild(span);
      }
      pre.hidden = false;
    } catch (error) {
      failed(error);
    }
  }

  // -- the loop -------------------------------------------------------------------------
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const [status, metrics, versions] = await Promise.all([
        json("status"), call("metrics").then((r) => r.text()), json("config/versions"),
      ]);
      history.push(snapshot(parseMetrics(metrics), Date.now() / 1000));
      const oldest = history[history.length - 1].time - HISTORY_S;
      while (history.length > 2 && history[0].time < oldest) history.shift();
      const registry = status.body.config_source ? await json("fleet/nodes") : null;
      showData();
      drawProcesses(status.body);
      drawRoutes();
      drawNodes(status.body);
      drawLimiters();
      drawVersions(versions.body);
      drawFleet(status.body, registry);
      $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      failed(error);
    } finally {
      polling = false;
    }
  }

  function failed(error) {
    if (error instanceof Unauthorized) {
      signOut("The token was refused.");
      return;
    }
    $("refreshed").textContent = `cannot reach the admin API: ${error.message}`;
  }

  function start() {
    if (timer === null) timer = setInterval(poll, POLL_MS);
    poll();
  }

  function showData() {
    $("login").hidden = true;
    $("data").hidden = false;
    $("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (timer !== null) clearInterval(timer);
    timer = null;
    history = [];
    shownVersions = "";
    // No data stays on the page once the token is gone.
    for (const table of document.querySelectorAll("#data tbody")) table.replaceChildren();
    for (const id of ["summary", "versions-summary", "fleet-summary", "action-result", "diff"]) {
      $(id).replaceChildren();
    }
    $("data").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    $("login-error").textContent = "";
    try {
      await json("status");
      start();
    } catch (error) {
      if (error instanceof Unauthorized) signOut("The token was refused.");
      else $("login-error").textContent = `Cannot reach the admin API: ${error.message}`;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    $("reload").addEventListener("click", reload);
    $("show-diff").addEventListener("click", showDiff);
    try {
      await json("status");     // with the kept token, or none if the API needs none
      start();
    } catch (error) {
      if (error instanceof Unauthorized) signOut("");
      else $("refreshed").textContent = `cannot reach the admin API: ${error.message}`;
    }
  });
})();
