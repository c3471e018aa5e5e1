"use strict";
// Renders the page named by <body data-page> from /dashboard/data/..., and again whenever
// /dashboard/stream says the views moved (coalesced: at most one fetch in flight). The
// hive's mode comes with the overview's data and, as it changes, on the stream itself (the
// overview then re-fetches: its processes explain the mode). A page this viewer may not
// see (<body data-refused>, or data answering 403) says so and fetches nothing more.

const body = document.body;
const main = document.getElementById("main");
const live = document.getElementById("live");
const modeBadge = document.getElementById("mode");

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => (
  {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const state = (s) => `<span class="state ${esc(s)}" data-state="${esc(s)}">${esc(s)}</span>`;
const time = (t) => (t ? esc(new Date(t).toLocaleTimeString()) : "");
const short = (id) => esc(String(id ?? "").slice(0, 8));
const when = (t) => (t ? esc(new Date(t).toLocaleString()) : "");
const ok = (v) => (v === "ok" ? state("ready").replace(">ready<", ">ok<") : esc(v));
const json = (v) => JSON.stringify(v ?? null);
const clipped = (text, n = 160) => (text.length > n
  ? `<span title="${esc(text)}">${esc(text.slice(0, n))}…</span>` : esc(text));
const behind = (v, inForce) => (v != null && v < inForce
  ? ` <span class="bad" title="the config in force is v${esc(inForce)}">behind</span>` : "");

function bars(title, rows, color) {
  // rows: [[label, value]]; a horizontal bar chart in SVG.
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const h = 20, w = 300, lw = 120;
  const items = rows.map(([label, n], i) => {
    const bw = Math.round((w - lw - 50) * n / max);
    return `<text x="0" y="${i * h + 14}">${esc(label)}</text>
      <rect x="${lw}" y="${i * h + 4}" width="${bw}" height="12" rx="2" fill="${color}"></rect>
      <text x="${lw + bw + 6}" y="${i * h + 14}">${esc(n)}</text>`;
  }).join("");
  const empty = rows.length ? "" : `<text x="0" y="14" class="muted">none</text>`;
  return `<div class="card"><h2>${esc(title)}</h2><svg role="img" aria-label="${esc(title)}"
    width="${w}" height="${Math.max(1, rows.length) * h + 4}">${items}${empty}</svg></div>`;
}

function latency(stages) {
  // Grouped bars: per task type, end-to-end p50 / p95 / p99 (seconds, from the histograms).
  const rows = stages.items.filter((t) => t.stages.end_to_end);
  const max = Math.max(0.001, ...rows.map((t) => t.stages.end_to_end.p99_s || 0));
  const colors = ["#2f8f4e", "#d98e04", "#c0392b"], h = 46, w = 360, lw = 90;
  const items = rows.map((t, i) => {
    const e = t.stages.end_to_end;
    return `<text x="0" y="${i * h + 24}">${esc(t.type)}</text>` + [e.p50_s, e.p95_s, e.p99_s]
      .map((v, j) => {
        const bw = Math.round((w - lw - 110) * (v || 0) / max);
        return `<rect x="${lw}" y="${i * h + 4 + j * 13}" width="${bw}" height="11" rx="2"
          fill="${colors[j]}"></rect><text x="${lw + bw + 4}" y="${i * h + 13 + j * 13}">${
          ["p50", "p95", "p99"][j]} ${esc(((v || 0) * 1000).toFixed(1))} ms</text>`;
      }).join("");
  }).join("");
  return `<div class="card wide"><h2>End-to-end latency by type (p50 / p95 / p99)</h2>
    <svg role="img" aria-label="Latency" width="${w}" height="${Math.max(1, rows.length) * h}">${
    items || `<text x="0" y="14">no finished tasks yet</text>`}</svg>
    <table class="stages"><tr><th>type</th><th>stage</th><th>count</th><th>p50</th><th>p95</th><th>p99</th></tr>${
    stages.items.flatMap((t) => Object.entries(t.stages).map(([name, st]) =>
      `<tr><td>${esc(t.type)}</td><td>${esc(name)}</td><td>${esc(st.count)}</td>${
      [st.p50_s, st.p95_s, st.p99_s].map((v) => `<td>${v == null ? "" : esc((v * 1000).toFixed(1)) + " ms"}</td>`).join("")}</tr>`)).join("")}
    </table></div>`;
}

function throughput(minutes) {
  // Columns: tasks finished per minute over the last 15 minutes (all types).
  const now = Math.floor(Date.now() / 60000);
  const per = new Map();
  for (const m of minutes) {
    const k = Math.floor(new Date(m.minute).getTime() / 60000);
    per.set(k, (per.get(k) || 0) + m.succeeded + m.failed);
  }
  const cols = Array.from({length: 15}, (_, i) => [now - 14 + i, per.get(now - 14 + i) || 0]);
  const max = Math.max(1, ...cols.map((c) => c[1])), w = 300, h = 110, cw = 18;
  const bars = cols.map(([, n], i) => {
    const bh = Math.round((h - 24) * n / max);
    return `<rect x="${i * (cw + 2)}" y="${h - 16 - bh}" width="${cw}" height="${bh}" fill="#2c6ebd">
      <title>${n} tasks</title></rect>`;
  }).join("");
  return `<div class="card"><h2>Finished per minute (last 15 min; peak ${max})</h2>
    <svg role="img" aria-label="Throughput" width="${w}" height="${h}">${bars}
    <text x="0" y="${h - 2}">-15 min</text><text x="${w - 30}" y="${h - 2}">now</text></svg></div>`;
}

const failingList = (failing) => Object.entries(failing).map(([k, v]) => `${k}: ${v}`).join("; ");
let modeShown = "";
function showMode(m) {
  modeShown = JSON.stringify(m);
  modeBadge.dataset.mode = m.mode;
  modeBadge.textContent = m.mode === "normal" ? "normal" : `degraded: ${failingList(m.failing)}`;
  modeBadge.title = `the hive's mode: ${modeBadge.textContent}`;
  const card = document.getElementById("mode-card");
  if (card) card.outerHTML = modeCard(m);
}
const modeCard = (m) => `<div class="card" id="mode-card"><h2>Mode</h2>
  <p><span class="mode" data-mode="${esc(m.mode)}">${esc(m.mode)}</span></p>
  ${Object.keys(m.failing).length ? `<table id="failing"><tr><th>failing check</th><th>says</th></tr>${
    Object.entries(m.failing).map(([k, v]) => `<tr data-check="${esc(k)}"><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("")}</table>`
    : `<p class="muted">every check holds</p>`}</div>`;

function processesCard(p) {
  // Each live api/engine process, and the hive's checks drawn from them.
  const rows = p.items.map((x) => {
    const standby = x.runs.filter((loop) => !x.leads.includes(loop));
    return `<tr data-process="${esc(x.id)}" data-role="${esc(x.role)}"><td><b>${esc(x.role)}</b></td>
      <td>${esc(x.host)}</td><td class="mono">${esc(x.pid)}</td>
      <td data-config="${esc(x.config_version)}">v${esc(x.config_version)}${behind(x.config_version, p.config_version)}</td>
      <td>${esc(x.leads.join(", ")) || `<span class="muted">none</span>`}${standby.length
        ? ` <span class="muted">(standby: ${esc(standby.join(", "))})</span>` : ""}</td>
      <td>${time(x.started_at)}</td></tr>`;
  }).join("");
  const checks = Object.entries(p.checks).map(([k, v]) =>
    `<tr data-check="${esc(k)}"><td>${esc(k)}</td><td>${ok(v)}</td></tr>`).join("");
  return `<div class="card wide"><h2>Processes</h2><table id="processes">
    <tr><th>role</th><th>host</th><th>pid</th><th>config</th><th>leads</th><th>started</th></tr>${rows ||
      `<tr><td colspan=6 class=muted>no process reports itself</td></tr>`}</table>
    <h2>Hive checks</h2><table id="hive-checks">${checks}</table></div>`;
}

const ORDER = ["pending", "assigned", "running", "succeeded", "failed", "cancelled"];

const render = {
  async overview(d) {
    const states = ORDER.map((s) => [s, d.tasks_by_state[s] || 0]);
    const byType = {};
    for (const q of d.queue) byType[q.type] = (byType[q.type] || 0) + q.n;
    const checks = Object.entries(d.checks).filter(([k]) => !(k in d.processes.checks))
      .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${ok(v)}</td></tr>`).join("");
    const fleet = d.fleet.map((f) =>
      `<tr><td>${state(f.state)}</td><td>${esc(f.version_label)}</td><td>${esc(f.n)}</td></tr>`).join("");
    const failures = d.recent_failures.map((f) =>
      `<tr><td><a href="/dashboard/tasks/${esc(f.task_id)}">${short(f.task_id)}</a></td>
       <td>${esc(f.type)}</td><td>${esc(f.error)}</td><td>${time(f.finished_at)}</td></tr>`).join("");
    showMode(d.mode);
    return `<div class="cards">
      ${modeCard(d.mode)}
      ${processesCard(d.processes)}
      ${bars("Tasks by state", states, "#2c6ebd")}
      ${bars("Queue depth by type (pending)", Object.entries(byType), "#d98e04")}
      ${throughput(d.stages.minutes)}
      ${latency(d.stages)}
      <div class="card"><h2>Queue by type and priority</h2><table id="queue">
        <tr><th>type</th><th>priority</th><th>pending</th></tr>
        ${d.queue.map((q) => `<tr><td>${esc(q.type)}</td><td>${esc(q.priority)}</td><td>${esc(q.n)}</td></tr>`).join("") ||
          `<tr><td colspan=3 class=muted>empty</td></tr>`}</table></div>
      <div class="card"><h2>Fleet by state and version</h2><table>
        <tr><th>state</th><th>version</th><th>bots</th></tr>${fleet ||
          `<tr><td colspan=3 class=muted>no live bots</td></tr>`}</table></div>
      <div class="card"><h2>Health</h2><table>${checks}</table></div>
      <div class="card"><h2>Recent failures</h2><table>
        <tr><th>task</th><th>type</th><th>error</th><th>at</th></tr>${failures ||
          `<tr><td colspan=4 class=muted>none</td></tr>`}</table></div></div>`;
  },
  async tasks(d) {
    const q = new URLSearchParams(location.search);
    const rows = d.items.map((t) => `<tr><td><a href="/dashboard/tasks/${esc(t.id)}">${short(t.id)}</a></td>
      <td>${esc(t.type)}</td><td>${esc(t.priority)}</td><td>${state(t.state)}</td>
      <td class="mono">${short(t.bot_id)}</td><td>${time(t.submitted_at)}</td></tr>`).join("");
    const next = d.next_cursor ? (() => { const n = new URLSearchParams(q); n.set("cursor", d.next_cursor);
      return `<a id="next" href="?${esc(n)}">next page →</a>`; })() : "";
    return `<form class="filters" method="get">
      <select name="state"><option value="">any state</option>${ORDER.map((s) =>
        `<option${q.get("state") === s ? " selected" : ""}>${s}</option>`).join("")}</select>
      <input name="type" placeholder="type" value="${esc(q.get("type") || "")}"><button>filter</button></form>
      <table id="tasks"><tr><th>task</th><th>type</th><th>priority</th><th>state</th><th>bot</th><th>submitted</th></tr>
      ${rows || `<tr><td colspan=6 class=muted>no tasks</td></tr>`}</table><p>${next}</p>`;
  },
  async task(d) {
    const t = d.task;
    const head = t ? `<h1>Task <code>${esc(t.id)}</code> ${state(t.state)}</h1>
      <p>type <b>${esc(t.type)}</b> · priority ${esc(t.priority)} · bot <code>${short(t.bot_id)}</code>
      · fencing token ${esc(t.fencing_token)}</p>
      ${t.unroutable ? `<p class="bad">unroutable: ${esc(t.unroutable.reason)}</p>` : ""}
      ${t.assignment ? `<h2>Why this bot</h2><pre class="mono">${esc(JSON.stringify(t.assignment, null, 2))}</pre>` : ""}`
      : `<h1>Task ${short(body.dataset.subject)}</h1><p class="muted">not in the view yet</p>`;
    const rows = d.timeline.map((e) => `<tr data-kind="${esc(e.kind)}"><td>${esc(e.version)}</td>
      <td><b>${esc(e.kind)}</b></td><td>${time(e.at)}</td><td>${esc(e.actor)}</td>
      <td class="mono" title="${esc(e.chain_hash)}">${esc(e.chain_hash.slice(0, 16))}…</td>
      <td class="mono">${esc(JSON.stringify(e.fields).slice(0, 160))}</td></tr>`).join("");
    return `${head}<h2>Timeline (from the log)</h2><table id="timeline">
      <tr><th>v</th><th>event</th><th>at</th><th>actor</th><th>chain hash</th><th>fields</th></tr>${rows}</table>`;
  },
  async bots(d) {
    const rows = d.items.map((b) => `<tr><td>${esc(b.name)}</td><td>${state(b.state)}</td>
      <td>${esc(b.pool ?? "")}</td><td>${esc(b.held)} / ${esc(b.capacity)}</td>
      <td data-success="${esc(b.success_rate ?? "")}">${b.success_rate == null ? "<span class=muted>untried</span>"
        : esc(Math.round(b.success_rate * 100)) + "%"}</td>
      <td>${b.current_tasks.map((t) => `<a href="/dashboard/tasks/${esc(t)}">${short(t)}</a>`).join(" ")}</td>
      <td>${esc(b.capabilities.join(", "))}</td><td>${esc(b.version)}</td>
      <td data-config="${esc(b.config_version ?? "")}">${b.config_version == null ? "<span class=muted>not said</span>"
        : `v${esc(b.config_version)}${behind(b.config_version, d.config_version)}`}</td>
      <td class="muted">${esc(b.state_reason ?? "")}</td></tr>`).join("");
    return `<table id="bots"><tr><th>bot</th><th>state</th><th>pool</th><th>load</th>
      <th>success</th><th>current tasks</th><th>capabilities</th><th>version</th><th>config</th><th>why</th></tr>${rows ||
      `<tr><td colspan=10 class=muted>no live bots</td></tr>`}</table>`;
  },
  async schedules(d) {
    const runs = (r) => ORDER.filter((s) => r[s]).map((s) => `${state(s)} ${esc(r[s])}`).join(" ");
    const rows = d.items.map((s) => `<tr data-schedule="${esc(s.id)}"><td>${esc(s.name)}</td>
      <td>${state(s.state)}</td><td class="mono">${esc(s.cron ? `${s.cron} ${s.timezone}` : `every ${s.every_s} s`)}</td>
      <td>${esc(s.template.type)}</td><td data-fired="${esc(s.fired)}">${esc(s.fired)}</td><td>${esc(s.skipped)}</td>
      <td>${time(s.last_tick)}</td><td>${time(s.next_tick)}</td><td>${runs(s.runs)}</td></tr>`).join("");
    return `<table id="schedules"><tr><th>schedule</th><th>state</th><th>when</th><th>type</th>
      <th>fired</th><th>skipped</th><th>last tick</th><th>next tick</th><th>latest ${esc(d.runs_counted)} runs</th></tr>${rows ||
      `<tr><td colspan=9 class=muted>no schedules</td></tr>`}</table>${d.more ? "<p class=muted>more not shown</p>" : ""}`;
  },
  async messages(d) {
    const order = ["waiting", "routed", "delivered", "acknowledged", "dead"];
    const dead = d.dead_letters.map((m) => `<tr><td class="mono">${short(m.id)}</td>
      <td>${esc(m.to_capability ?? m.to_pool ?? short(m.to_bot))}</td><td>${esc(m.sender)}</td>
      <td>${esc(m.conversation ?? "")}</td><td>${esc(m.dead_reason)}</td><td>${time(m.sent_at)}</td></tr>`).join("");
    return `<div class="cards">${bars("Messages by state", order.map((s) => [s, d.by_state[s] || 0]), "#7a4fb5")}
      <div class="card"><h2>Dead letters (newest)</h2><table id="dead-letters">
      <tr><th>message</th><th>to</th><th>from</th><th>conversation</th><th>why</th><th>sent</th></tr>${dead ||
        `<tr><td colspan=6 class=muted>none</td></tr>`}</table></div></div>`;
  },
  async config(d) {
    const c = d.current;
    return `<h1>Config <span id="config-version" data-version="${esc(c.version)}">v${esc(c.version)}</span></h1>
      <p>in force since ${when(c.changed_at)} · by <b>${esc(c.actor)}</b> · why: ${esc(c.reason)}</p>
      <p class="muted">Read-only here: change it with <code>apiary config set</code> or
        <code>PATCH /v1/config</code> (If-Match: the version).</p>
      <div class="cards"><div class="card"><h2>Knobs</h2>${knobsTable(c.document)}</div>
        <div class="card"><h2>Pools</h2>${poolsTable(c.document.pools || [])}</div></div>
      <h2>History (newest first${d.more ? `; the latest ${esc(d.history.length)}` : ""})</h2>
      <table id="history"><tr><th>version</th><th>by</th><th>when</th><th>why</th><th>changes</th></tr>${
        d.history.map(versionRow).join("")}</table>`;
  },
};

function knobsTable(doc) {
  // Every knob but the pools, by name, with its value as JSON.
  const rows = Object.entries(doc).filter(([k]) => k !== "pools").map(([k, v]) =>
    `<tr data-knob="${esc(k)}"><td class="mono">${esc(k)}</td><td class="mono">${clipped(json(v))}</td></tr>`).join("");
  return `<table id="knobs"><tr><th>knob</th><th>value</th></tr>${rows}</table>`;
}

function poolsTable(pools) {
  // One column per pool, one row per field: a handful of pools stay readable.
  if (!pools.length) return `<p class="muted" id="pools">no pools</p>`;
  const fields = [...new Set(pools.flatMap((p) => Object.keys(p)))].filter((f) => f !== "name");
  const cell = (v) => (v == null ? `<span class="muted">none</span>` : esc(Array.isArray(v) ? v.join(", ") : v));
  return `<table id="pools"><tr><th>pool</th>${pools.map((p) => `<th>${esc(p.name)}</th>`).join("")}</tr>${
    fields.map((f) => `<tr><td class="mono">${esc(f)}</td>${pools.map((p) => `<td class="mono">${cell(p[f])}</td>`).join("")}</tr>`).join("")}</table>`;
}

function versionRow(v) {
  // A version: who, when, why, and each change as `path: before -> after`.
  const changes = v.version === 1 ? `<li class="muted">the first version</li>`
    : v.changes.map((c) => `<li class="mono" data-path="${esc(c.path)}">${
      clipped(`${c.path}: ${json(c.before)} -> ${json(c.after)}`)}</li>`).join("");
  return `<tr data-version="${esc(v.version)}"><td>v${esc(v.version)}</td><td>${esc(v.actor)}</td>
    <td>${when(v.at)}</td><td>${esc(v.reason)}</td><td>${v.restores == null ? ""
      : `<span class="state" data-restores="${esc(v.restores)}">restores v${esc(v.restores)}</span>`}
    <ul class="changes">${changes}</ul></td></tr>`;
}

function dataUrl() {
  const page = body.dataset.page;
  if (page === "task") return `/dashboard/data/tasks/${encodeURIComponent(body.dataset.subject)}`;
  if (page === "tasks") return `/dashboard/data/tasks${location.search}`;
  return `/dashboard/data/${page}`;
}

let inFlight = false, again = false, refused = "refused" in body.dataset;
async function refresh() {
  if (refused) return;
  if (inFlight) { again = true; return; }
  inFlight = true;
  try {
    const r = await fetch(dataUrl(), {headers: {accept: "application/json"}});
    if (r.status === 401) { toSignIn(); return; }
    if (r.status === 403) {
      refused = true;
      main.innerHTML = `<p id="refused" class="bad">${esc((await r.json()).detail)}</p>`;
    } else if (r.ok) main.innerHTML = await render[body.dataset.page](await r.json());
    body.dataset.rendered = String(Number(body.dataset.rendered || 0) + 1);
  } finally {
    inFlight = false;
    if (again) { again = false; refresh(); }
  }
}

// Signing out closes the session on the server; like every request that changes
// something, it carries the page's CSRF token (and the browser adds its Origin).
// One way out to the sign-in form: a sign-out, or a session found gone (401). Once on
// the way, the stream is closed and nothing else navigates (a second navigation would
// abort the first).
let leaving = false;
function toSignIn() {
  if (leaving) return;
  leaving = true;
  source.close();
  location.href = "/dashboard/login";
}

document.getElementById("signout").addEventListener("click", async () => {
  if (leaving) return;
  leaving = true;
  source.close();
  const csrf = document.querySelector("meta[name='csrf-token']").content;
  await fetch("/dashboard/logout", {method: "POST", headers: {"X-CSRF-Token": csrf}});
  location.href = "/dashboard/login";
});

const source = new EventSource("/dashboard/stream");
source.onopen = () => { live.className = "live on"; };
source.onerror = () => { live.className = "live off"; };
source.addEventListener("views", refresh);
source.addEventListener("mode", (e) => {
  const before = modeShown;
  showMode(JSON.parse(e.data));
  if (before && before !== modeShown && body.dataset.page === "overview") refresh();
});
refresh();
