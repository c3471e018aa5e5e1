"use strict";
// Renders the page named by <body data-page> from /dashboard/data/..., and again whenever
// /dashboard/stream says the views moved (coalesced: at most one fetch in flight). The
// hive's mode comes with the overview's data and, as it changes, on the stream itself (the
// overview then re-fetches: its processes explain the mode). A page this viewer may not
// see (<body data-refused>, or data answering 403) says so and fetches nothing more.
// An admin's page (<body data-admin>) shows the operators' actions: each asks first in
// #confirm (outside #main, so a refresh does not wipe it), then POSTs with the page's CSRF
// token. Every date and time is shown one way: 2026-12-07 18:03:11 UTC.

const body = document.body;
const main = document.getElementById("main");
const live = document.getElementById("live");
const modeBadge = document.getElementById("mode");

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => (
  {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const state = (s) => `<span class="state ${esc(s)}" data-state="${esc(s)}">${esc(s)}</span>`;
const when = (t) => (t ? esc(new Date(t).toISOString().slice(0, 19).replace("T", " ") + " UTC") : "");
const short = (id) => esc(String(id ?? "").slice(0, 8));
const admin = "admin" in body.dataset;
const pretty = (v) => `<pre class="block">${esc(typeof v === "string" ? v : JSON.stringify(v, null, 2))}</pre>`;
const action = (name, attrs, label) => (admin
  ? `<button type="button" class="act" data-action="${esc(name)}" ${attrs}>${esc(label)}</button>` : "");
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
  // The hive's mode (the log's, as this process acts on it) and, apart, its readiness.
  modeShown = JSON.stringify(m);
  const failing = m.readiness.failing;
  modeBadge.dataset.mode = m.mode;
  modeBadge.dataset.ready = m.readiness.ready ? "yes" : "no";
  modeBadge.textContent = m.mode + (m.set_by === "operator" ? " (operator)" : "") +
    (m.readiness.ready ? "" : ` · not ready: ${failingList(failing)}`);
  modeBadge.title = `the hive's mode: ${m.mode}${m.local ? ` (${m.local})` : ` (${m.reason})`}`;
  const card = document.getElementById("mode-card");
  if (card) card.outerHTML = modeCard(m);
}
const modeCard = (m) => `<div class="card" id="mode-card"><h2>Mode</h2>
  <p><span class="mode" data-mode="${esc(m.mode)}">${esc(m.mode)}</span>
    <span class="muted">${esc(m.local || `${m.set_by}: ${m.reason}`)}</span></p>
  <h2>This process</h2>
  ${Object.keys(m.readiness.failing).length ? `<table id="failing"><tr><th>failing check</th><th>says</th></tr>${
    Object.entries(m.readiness.failing).map(([k, v]) => `<tr data-check="${esc(k)}"><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("")}</table>`
    : `<p class="muted">ready: every check holds</p>`}</div>`;

function resourcesCells(r) {
  // What a process uses, as its last beat said: CPU (share of one core), memory, threads,
  // and per pool the connections open, and the clients waiting for one (if any).
  if (!r) return `<td colspan=4 class=muted>not reported yet</td>`;
  const pools = r.pools.map((p) => `${esc(p.name)} ${esc(p.size)}/${esc(p.max_size)}${
    p.waiting ? ` <b>${esc(p.waiting)} waiting</b>` : ""}`).join(", ");
  return `<td data-cpu="${esc(r.cpu_share)}">${esc(Math.round(r.cpu_share * 100))}%</td>
    <td data-rss="${esc(r.rss_bytes)}">${esc(Math.round(r.rss_bytes / 1048576))} MiB</td>
    <td>${esc(r.threads)}</td><td class="pools">${pools}</td>`;
}

function processesCard(p) {
  // Each live api/engine process, and the hive's checks drawn from them.
  const rows = p.items.map((x) => {
    const standby = x.runs.filter((loop) => !x.leads.includes(loop));
    return `<tr data-process="${esc(x.id)}" data-role="${esc(x.role)}"><td><b>${esc(x.role)}</b></td>
      <td>${esc(x.host)}</td><td class="mono">${esc(x.pid)}</td>
      <td data-config="${esc(x.config_version)}">v${esc(x.config_version)}${behind(x.config_version, p.config_version)}</td>
      <td>${esc(x.leads.join(", ")) || `<span class="muted">none</span>`}${standby.length
        ? ` <span class="muted">(standby: ${esc(standby.join(", "))})</span>` : ""}</td>
      <td>${when(x.started_at)}</td>${resourcesCells(x.resources)}</tr>`;
  }).join("");
  const checks = Object.entries(p.checks).map(([k, v]) =>
    `<tr data-check="${esc(k)}"><td>${esc(k)}</td><td>${ok(v)}</td></tr>`).join("");
  return `<div class="card wide"><h2>Processes</h2><table id="processes">
    <tr><th>role</th><th>host</th><th>pid</th><th>config</th><th>leads</th><th>started</th>
      <th>cpu</th><th>memory</th><th>threads</th><th>connections</th></tr>${rows ||
      `<tr><td colspan=10 class=muted>no process reports itself</td></tr>`}</table>
    <h2>Hive checks</h2><table id="hive-checks">${checks}</table></div>`;
}

const RULES = ["bots-lost", "failure-spike", "retry-storm", "dead-letters", "pending-age",
  "view-lag", "database", "leaderless", "cascade"];
const ORDER = ["pending", "assigned", "running", "succeeded", "failed", "dead", "cancelled"];
const REDRIVABLE = ["failed", "dead", "cancelled"];
const FINAL = ["succeeded", ...REDRIVABLE];

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
       <td>${esc(f.type)}</td><td>${esc(f.error)}</td><td>${when(f.finished_at)}</td></tr>`).join("");
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
    const rows = d.items.map((t) => `<tr data-task="${esc(t.id)}"><td><a href="/dashboard/tasks/${esc(t.id)}">${short(t.id)}</a></td>
      <td>${esc(t.type)}</td><td>${esc(t.priority)}</td><td>${state(t.state)}</td>
      <td>${attemptOf(t)}</td><td class="err">${errorOf(t)}</td>
      <td class="mono">${short(t.bot_id)}</td><td>${when(t.submitted_at)}</td><td>${when(t.finished_at)}</td></tr>`).join("");
    const next = d.next_cursor ? (() => { const n = new URLSearchParams(q); n.set("cursor", d.next_cursor);
      return `<a id="next" href="?${esc(n)}">next page →</a>`; })() : "";
    return `<form class="filters" method="get">
      <select name="state"><option value="">any state</option>${ORDER.map((s) =>
        `<option${q.get("state") === s ? " selected" : ""}>${s}</option>`).join("")}</select>
      <input name="type" placeholder="type" value="${esc(q.get("type") || "")}"><button>filter</button></form>
      <p class="muted">newest first</p>
      <table id="tasks"><tr><th>task</th><th>type</th><th>priority</th><th>state</th><th>attempt</th><th>error</th>
      <th>bot</th><th>submitted</th><th>finished</th></tr>
      ${rows || `<tr><td colspan=9 class=muted>no tasks</td></tr>`}</table><p>${next}</p>`;
  },
  async task(d) {
    const t = d.task;
    const kind = t?.error_kind;
    const actions = t ? [
      REDRIVABLE.includes(t.state) ? action("retry", `data-task="${esc(t.id)}"`, "retry") : "",
      FINAL.includes(t.state) ? "" : action("cancel", `data-task="${esc(t.id)}"`, "cancel"),
    ].join(" ") : "";
    const head = t ? `<h1>Task <code>${esc(t.id)}</code> ${state(t.state)} <span id="actions">${actions}</span></h1>
      <p>type <b>${esc(t.type)}</b> · priority ${esc(t.priority)} · bot <code>${short(t.bot_id)}</code>
      · fencing token ${esc(t.fencing_token)} · submitted ${when(t.submitted_at)}
      ${t.finished_at ? ` · finished ${when(t.finished_at)}` : ""}</p>
      ${t.state === "dead" ? `<p class="bad" id="dead-reason">dead-lettered: ${esc(t.dead_reason)}</p>` : ""}
      ${t.unroutable ? `<p class="bad">unroutable: ${esc(t.unroutable.reason)}</p>` : ""}
      <div class="cards"><div class="card"><h2>Payload</h2><div id="payload">${pretty(t.payload)}</div></div>
      ${t.result != null ? `<div class="card"><h2>Result</h2><div id="result">${pretty(t.result)}</div></div>` : ""}
      ${t.error != null ? `<div class="card"><h2>Error${kind ? ` (${esc(kind)})` : ""}</h2>
        <div id="error">${pretty(t.error)}</div></div>` : ""}</div>
      ${t.assignment ? whyThisBot(t.assignment) : ""}`
      : `<h1>Task ${short(body.dataset.subject)}</h1><p class="muted">not in the view yet</p>`;
    const rows = d.timeline.map((e) => `<tr data-kind="${esc(e.kind)}"><td>${esc(e.version)}</td>
      <td><b>${esc(e.kind)}</b></td><td>${when(e.at)}</td><td>${esc(e.actor)}</td>
      <td class="mono" title="${esc(e.chain_hash)}">${esc(e.chain_hash.slice(0, 16))}…</td>
      <td class="mono">${clipped(json(shownFields(e.fields)))}</td></tr>`).join("");
    return `${head}${attemptsTable(d.attempts)}<h2>Timeline (from the log)</h2><table id="timeline">
      <tr><th>v</th><th>event</th><th>at</th><th>actor</th><th>chain hash</th><th>fields</th></tr>${rows}</table>`;
  },
  async "dead-letters"(d) {
    const q = new URLSearchParams(location.search);
    const field = (name, label, type = "text") => `<label>${esc(label)} <input name="${name}" type="${type}"
      value="${esc(q.get(name) || "")}"${type === "text" ? ` placeholder="${esc(label)}"` : ""}></label>`;
    const rows = d.items.map((t) => `<tr data-task="${esc(t.id)}"><td><a href="/dashboard/tasks/${esc(t.id)}">${short(t.id)}</a></td>
      <td>${esc(t.type)}</td><td class="reason">${esc(t.dead_reason)}</td><td>${attemptOf(t)}</td>
      <td>${esc(t.error_kind ?? "")}</td><td class="err">${clipped(t.error ?? "")}</td>
      <td>${when(t.finished_at)}</td><td>${when(t.submitted_at)}</td>
      <td>${action("retry", `data-task="${esc(t.id)}"`, "retry")}</td></tr>`).join("");
    const next = d.next_cursor ? (() => { const n = new URLSearchParams(q); n.set("cursor", d.next_cursor);
      return `<a id="next" href="?${esc(n)}">older →</a>`; })() : "";
    return `<h1>Dead letters</h1><form class="filters" method="get">${field("type", "type")}
      ${field("error_kind", "error kind")}${field("since", "dead since (UTC)", "datetime-local")}
      ${field("until", "until (UTC)", "datetime-local")}<button>filter</button>
      ${action("redrive", "id=\"redrive\"", "re-drive all that match…")}</form>
      <p class="muted">newest dead first</p>
      <table id="dead-tasks"><tr><th>task</th><th>type</th><th>why</th><th>attempts</th><th>error kind</th>
      <th>last error</th><th>dead at</th><th>submitted</th><th></th></tr>
      ${rows || `<tr><td colspan=9 class=muted>no dead letters</td></tr>`}</table><p>${next}</p>`;
  },
  async incidents(d) {
    const q = new URLSearchParams(location.search);
    const pick = (name, values) => `<label>${esc(name)} <select name="${name}"><option value="">any</option>${
      values.map((v) => `<option${q.get(name) === v ? " selected" : ""}>${esc(v)}</option>`).join("")}</select></label>`;
    const rows = d.items.map((i) => `<tr data-incident="${esc(i.id)}" data-rule="${esc(i.rule)}">
      <td><a href="/dashboard/incidents/${esc(i.id)}">${short(i.id)}</a></td><td>${esc(i.rule)}</td>
      <td>${esc(i.subject)}</td><td><span class="severity ${esc(i.severity)}">${esc(i.severity)}</span></td>
      <td>${state(i.state)}</td><td>${clipped(i.summary)}</td><td>${when(i.opened_at)}</td>
      <td>${when(i.resolved_at)}</td></tr>`).join("");
    const next = d.next_cursor ? (() => { const n = new URLSearchParams(q); n.set("cursor", d.next_cursor);
      return `<a id="next" href="?${esc(n)}">older →</a>`; })() : "";
    return `<h1>Incidents</h1><form class="filters" method="get">${pick("state", ["open", "acknowledged", "resolved"])}
      ${pick("rule", RULES)}${pick("severity", ["warning", "critical"])}<button>filter</button></form>
      <p class="muted">newest first</p><table id="incidents"><tr><th>incident</th><th>rule</th><th>subject</th>
      <th>severity</th><th>state</th><th>summary</th><th>opened</th><th>resolved</th></tr>
      ${rows || `<tr><td colspan=8 class=muted>no incidents</td></tr>`}</table><p>${next}</p>`;
  },
  async incident(i) {
    const id = `data-incident="${esc(i.id)}"`;
    const actions = i.state === "resolved" ? "" : [
      i.state === "open" ? action("ack", id, "acknowledge…") : "", action("resolve", id, "resolve…")].join(" ");
    const cited = (e) => (e.event && e.event.startsWith("Task.")
      ? `<a href="/dashboard/tasks/${esc(e.aggregate_id)}">${short(e.aggregate_id)}</a>`
      : e.event === "Bot.Lost" ? `<a href="/dashboard/bots">bot ${short(e.aggregate_id)}</a>` : esc(e.aggregate_id ?? ""));
    const evidence = i.evidence.map((e) => `<tr data-position="${esc(e.position ?? "")}"><td class="mono">${esc(e.position ?? "")}</td>
      <td>${esc(e.event)}</td><td>${cited(e)}</td><td>${esc(e.version ?? "")}</td><td>${esc(e.task_type ?? "")}</td>
      <td>${e.bot_id ? `<a href="/dashboard/bots">${short(e.bot_id)}</a>` : ""}</td><td>${when(e.at)}</td></tr>`).join("");
    const timeline = i.timeline.map((t) => `<tr data-event="${esc(t.event)}"><td>${esc(t.version)}</td>
      <td><b>${esc(t.event)}</b></td><td>${when(t.at)}</td><td>${esc(t.actor)}</td>
      <td class="mono">${clipped(json(t.detail))}</td></tr>`).join("");
    return `<h1>Incident <code>${short(i.id)}</code> ${state(i.state)} <span id="actions">${actions}</span></h1>
      <p><b>${esc(i.rule)}</b> on <b>${esc(i.subject)}</b> · <span class="severity ${esc(i.severity)}">${esc(i.severity)}</span>
      · episode ${esc(i.episode)} · opened ${when(i.opened_at)} · updated ${when(i.updated_at)}
      ${i.resolved_at ? ` · resolved ${when(i.resolved_at)} by ${esc(i.resolved_by)}: ${esc(i.resolution)}` : ""}</p>
      <p id="summary">${esc(i.summary)}</p>${i.note ? `<p id="note">acknowledged by ${esc(i.acknowledged_by)}: ${esc(i.note)}</p>` : ""}
      <h2>Evidence (${esc(i.evidence.length)} of ${esc(i.total)} events)</h2><table id="evidence">
      <tr><th>position</th><th>event</th><th>of</th><th>v</th><th>type</th><th>bot</th><th>at</th></tr>${evidence ||
        `<tr><td colspan=7 class=muted>no events cited</td></tr>`}</table>
      <h2>Timeline</h2><table id="incident-timeline"><tr><th>v</th><th>event</th><th>at</th><th>actor</th><th>detail</th></tr>${timeline}</table>`;
  },
  async bots(d) {
    const rows = d.items.map((b) => `<tr data-bot="${esc(b.id)}"><td>${esc(b.name)}</td><td>${state(b.state)}</td>
      <td>${esc(b.pool ?? "")}</td><td>${esc(b.held)} / ${esc(b.capacity)}</td>
      <td data-success="${esc(b.success_rate ?? "")}">${b.success_rate == null ? "<span class=muted>untried</span>"
        : esc(Math.round(b.success_rate * 100)) + "%"}</td>
      <td>${b.current_tasks.map((t) => `<a href="/dashboard/tasks/${esc(t)}">${short(t)}</a>`).join(" ")}</td>
      <td>${esc(b.capabilities.join(", "))}</td><td>${esc(b.version)}</td>
      <td data-config="${esc(b.config_version ?? "")}">${b.config_version == null ? "<span class=muted>not said</span>"
        : `v${esc(b.config_version)}${behind(b.config_version, d.config_version)}`}</td>
      <td class="muted">${esc(b.state_reason ?? "")}</td><td>${botActions(b)}</td></tr>`).join("");
    return `<table id="bots"><tr><th>bot</th><th>state</th><th>pool</th><th>load</th>
      <th>success</th><th>current tasks</th><th>capabilities</th><th>version</th><th>config</th><th>why</th><th></th></tr>${rows ||
      `<tr><td colspan=11 class=muted>no live bots</td></tr>`}</table>`;
  },
  async schedules(d) {
    const runs = (r) => ORDER.filter((s) => r[s]).map((s) => `${state(s)} ${esc(r[s])}`).join(" ");
    const rows = d.items.map((s) => `<tr data-schedule="${esc(s.id)}"><td>${esc(s.name)}</td>
      <td>${state(s.state)}</td><td class="mono">${esc(s.cron ? `${s.cron} ${s.timezone}` : `every ${s.every_s} s`)}</td>
      <td>${esc(s.template.type)}</td><td data-fired="${esc(s.fired)}">${esc(s.fired)}</td><td>${esc(s.skipped)}</td>
      <td>${when(s.last_tick)}</td><td>${when(s.next_tick)}</td><td>${runs(s.runs)}</td>
      <td class="runs">${s.latest_runs.map((r) => `<a href="/dashboard/tasks/${esc(r.id)}" data-run="${esc(r.id)}"
        data-attempt="${esc(r.attempt)}" title="submitted ${when(r.submitted_at)}">${state(r.state)} ${attemptOf(r)}</a>`).join("<br>")}</td></tr>`).join("");
    return `<table id="schedules"><tr><th>schedule</th><th>state</th><th>when</th><th>type</th>
      <th>fired</th><th>skipped</th><th>last tick</th><th>next tick</th><th>latest ${esc(d.runs_counted)} runs</th>
      <th>newest runs (attempt)</th></tr>${rows ||
      `<tr><td colspan=10 class=muted>no schedules</td></tr>`}</table>${d.more ? "<p class=muted>more not shown</p>" : ""}`;
  },
  async messages(d) {
    const order = ["waiting", "routed", "delivered", "acknowledged", "dead"];
    const dead = d.dead_letters.map((m) => `<tr><td class="mono">${short(m.id)}</td>
      <td>${esc(m.to_capability ?? m.to_pool ?? short(m.to_bot))}</td><td>${esc(m.sender)}</td>
      <td>${esc(m.conversation ?? "")}</td><td>${esc(m.dead_reason)}</td><td>${when(m.sent_at)}</td></tr>`).join("");
    return `<div class="cards">${bars("Messages by state", order.map((s) => [s, d.by_state[s] || 0]), "#7a4fb5")}
      <div class="card"><h2>Dead letters (newest)</h2><table id="dead-letters">
      <tr><th>message</th><th>to</th><th>from</th><th>conversation</th><th>why</th><th>sent</th></tr>${dead ||
        `<tr><td colspan=6 class=muted>none</td></tr>`}</table></div></div>`;
  },
  async profile(d) {
    const windows = ["1m", "5m", "15m", "1h"], asked = new URLSearchParams(location.search).get("window") || "5m";
    const found = d.findings.map((f) => `<li data-rule="${esc(f.rule)}" data-severity="${esc(f.severity)}">
      <span class="state ${f.severity === "critical" ? "failed" : "pending"}">${esc(f.severity)}</span>
      ${esc(f.summary)} <span class="muted">(${esc(f.rule)}, score ${esc(f.score)})</span>
      <details><summary>evidence</summary><table>${Object.entries(f.evidence).map(([k, v]) =>
        `<tr><td>${esc(k)}</td><td class="mono">${esc(typeof v === "object" ? json(v) : v)}</td></tr>`).join("")}</table></details></li>`).join("");
    const process = ["loops", "routes", "views", "pools"].filter((k) => d.process[k].length).map((k) =>
      `<h2>${esc(k)}</h2>${recordsTable(d.process[k])}`).join("");
    return `<h1>Profile</h1><form class="filters" method="get"><label>window <select name="window">${
      windows.map((w) => `<option${w === asked ? " selected" : ""}>${w}</option>`).join("")}</select></label>
      <button>show</button></form><p class="muted">the last ${esc(d.window_s)} s, read by the minute from
      ${when(d.since)}; at ${when(d.at)}</p>
      <h2>Findings (most severe first)</h2><ol id="findings">${found || "<li class=muted>none</li>"}</ol>
      <h2>Types</h2>${stagesTable("types", "type", d.types.map((t) => [t.type, t.stages, `${t.pending} pending`]))}
      <h2>Pools</h2>${stagesTable("pools", "pool", d.pools.map((p) => [p.name, p.stages,
        `${p.bots} of max ${p.max_bots} bots${p.at_max ? " (at max)" : ""}, ${p.pending} pending`]))}
      <h2>Bots</h2>${stagesTable("profile-bots", "bot", d.bots.map((b) => [b.name, b.stages, b.pool ? `pool ${b.pool}` : ""]))}
      ${process}`;
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

const seconds = (v) => (v == null ? "" : v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`);

function stagesTable(id, label, rows) {
  // rows: [name, {stage: {count, p50_s, p95_s, p99_s, share}}, about]; one row per stage.
  const lines = rows.flatMap(([name, stages, about]) => Object.entries(stages).map(([stage, st], i) =>
    `<tr data-${esc(label)}="${esc(name)}" data-stage="${esc(stage)}">${i ? "<td></td><td></td>"
      : `<td>${esc(name)}</td><td class="muted">${esc(about)}</td>`}<td>${esc(stage)}</td><td>${esc(st.count)}</td>${
      [st.p50_s, st.p95_s, st.p99_s].map((v) => `<td>${seconds(v)}</td>`).join("")}<td>${
      st.share == null ? "" : esc(Math.round(st.share * 100)) + "%"}</td></tr>`)).join("");
  return `<table id="${esc(id)}"><tr><th>${esc(label)}</th><th></th><th>stage</th><th>count</th><th>p50</th>
    <th>p95</th><th>p99</th><th>share of end to end</th></tr>${lines || "<tr><td colspan=8 class=muted>nothing in the window</td></tr>"}</table>`;
}

function recordsTable(items) {
  const keys = Object.keys(items[0]);
  return `<table><tr>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>${items.map((r) =>
    `<tr>${keys.map((k) => `<td>${esc(r[k])}</td>`).join("")}</tr>`).join("")}</table>`;
}

function attemptOf(t) {
  // "attempt 2" of the first series; "attempt 1, series 2" once re-driven.
  return `<span data-attempt="${esc(t.attempt)}">attempt ${esc(t.attempt)}${t.series > 1 ? `, series ${esc(t.series)}` : ""}</span>`;
}

const errorOf = (t) => (t.error == null ? "" : `${t.error_kind ? `<b>${esc(t.error_kind)}</b>: ` : ""}${clipped(t.error, 80)}`);

function shownFields(fields) {
  // The timeline's fields without what the page shows as blocks and tables above it.
  return Object.fromEntries(Object.entries(fields).filter(([k]) => !["payload", "result", "why"].includes(k)));
}

function attemptsTable(rows) {
  const tr = rows.map((a) => `<tr data-series="${esc(a.series)}" data-attempt="${esc(a.attempt)}"
    data-outcome="${esc(a.outcome ?? "")}"><td>${esc(a.series)}</td><td>${esc(a.attempt)}</td>
    <td class="mono">${short(a.bot_id)}</td><td>${when(a.started_at)}</td><td>${when(a.ended_at)}</td>
    <td>${a.outcome ? state(a.outcome) : `<span class="muted">in progress</span>`}</td>
    <td>${esc(a.error_kind ?? "")}</td><td class="err">${clipped(a.error ?? "")}</td></tr>`).join("");
  return `<h2>Attempts</h2><table id="attempts"><tr><th>series</th><th>attempt</th><th>bot</th><th>started</th>
    <th>ended</th><th>outcome</th><th>error kind</th><th>error</th></tr>${tr ||
    `<tr><td colspan=8 class=muted>no attempt yet</td></tr>`}</table>`;
}

function whyThisBot(a) {
  // The assignment's explanation: the policy and each candidate bot's inputs, chosen first.
  const pct = (v) => (v == null ? "" : `${esc(Math.round(v * 100))}%`);
  const rows = (a.bots || []).map((b, i) => `<tr${i === 0 ? ` class="chosen"` : ""}><td class="mono">${short(b.bot)}</td>
    <td>${esc(b.score)}</td><td>${esc(b.free)} / ${esc(b.capacity)}</td><td>${esc(b.samples)}</td>
    <td>${pct(b.success)}</td><td>${b.duration_s == null ? "" : esc(b.duration_s.toFixed(3)) + " s"}</td></tr>`).join("");
  return `<h2>Why this bot</h2><p>policy <b>${esc(a.policy)}</b> · effective priority ${esc(a.effective_priority)}
    · waited ${esc(a.waited_s)} s · required ${esc((a.required || []).join(", "))}</p>
    <table id="why"><tr><th>bot</th><th>score</th><th>free / capacity</th><th>samples</th><th>success</th>
    <th>duration</th></tr>${rows}</table>`;
}

function botActions(b) {
  const id = `data-bot="${esc(b.id)}"`;
  return [
    // As the fleet's rules allow: a draining bot stops on its own; only a quarantined one
    // is reinstated.
    b.state === "ready" ? action("drain", id, "drain") : "",
    b.state === "ready" ? action("quarantine", id, "quarantine") : "",
    b.state === "quarantined" ? action("reinstate", id, "reinstate") : "",
  ].join(" ");
}

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

function given(search) {
  // The address's parameters that say something (a filter form sends its empty fields too).
  return new URLSearchParams([...new URLSearchParams(search)].filter(([, v]) => v !== ""));
}

function deadLetterFilter() {
  // The page's filter, as the data and the re-drive take it: a time picked is UTC.
  const q = new URLSearchParams(location.search), f = {};
  for (const k of ["type", "error_kind", "since", "until"]) {
    const v = q.get(k);
    if (v) f[k] = k === "since" || k === "until" ? (v.length === 16 ? `${v}:00Z` : `${v}Z`) : v;
  }
  return f;
}

function dataUrl() {
  const page = body.dataset.page;
  if (page === "task") return `/dashboard/data/tasks/${encodeURIComponent(body.dataset.subject)}`;
  if (page === "tasks") return `/dashboard/data/tasks?${given(location.search)}`;
  if (page === "incident") return `/dashboard/data/incidents/${encodeURIComponent(body.dataset.subject)}`;
  if (page === "incidents") return `/dashboard/data/incidents?${given(location.search)}`;
  if (page === "profile") return `/dashboard/data/profile?${given(location.search)}`;
  if (page === "dead-letters") {
    const q = new URLSearchParams(deadLetterFilter());
    const cursor = new URLSearchParams(location.search).get("cursor");
    if (cursor) q.set("cursor", cursor);
    return `/dashboard/data/dead-letters?${q}`;
  }
  return `/dashboard/data/${page}`;
}

// -- actions (admin pages only; the server refuses them to anyone else) -----------------

const csrf = () => document.querySelector("meta[name='csrf-token']").content;
async function post(path, payload) {
  // A problem's detail, thrown; else the answer.
  const r = await fetch(path, {method: "POST", body: JSON.stringify(payload),
    headers: {"content-type": "application/json", "X-CSRF-Token": csrf()}});
  if (r.status === 401) { toSignIn(); throw new Error("signed out"); }
  const answer = await r.json();
  if (!r.ok) throw new Error(answer.detail || `refused (${r.status})`);
  return answer;
}

const confirmBox = document.getElementById("confirm");
let confirmed = null;
function ask(text, run) {
  // The confirmation step: nothing is sent until "confirm"; the reason goes in the log.
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-error").textContent = "";
  document.getElementById("confirm-reason").value = "";
  confirmed = run;
  confirmBox.hidden = false;
}
document.getElementById("confirm-no").addEventListener("click", () => { confirmBox.hidden = true; confirmed = null; });
document.getElementById("confirm-yes").addEventListener("click", async () => {
  if (!confirmed) return;
  const reason = document.getElementById("confirm-reason").value.trim();
  try {
    await confirmed(reason ? {reason} : {});
    confirmBox.hidden = true;
    confirmed = null;
    body.dataset.acted = String(Number(body.dataset.acted || 0) + 1);
    refresh();
  } catch (e) {
    document.getElementById("confirm-error").textContent = e.message;
  }
});

const ACTIONS = {
  retry: (b) => ask(`Retry task ${b.dataset.task.slice(0, 8)}: a new series of attempts?`,
    (r) => post(`/dashboard/actions/tasks/${b.dataset.task}/retry`, r)),
  cancel: (b) => ask(`Cancel task ${b.dataset.task.slice(0, 8)}?`,
    (r) => post(`/dashboard/actions/tasks/${b.dataset.task}/cancel`, r)),
  drain: (b) => ask("Drain this bot: no new work, it finishes what it holds?",
    (r) => post(`/dashboard/actions/bots/${b.dataset.bot}/drain`, r)),
  quarantine: (b) => ask("Quarantine this bot: no new work until it is reinstated?",
    (r) => post(`/dashboard/actions/bots/${b.dataset.bot}/quarantine`, r)),
  ack: (b) => ask("Acknowledge this incident? Say what you are doing about it (kept in the log).",
    (r) => post(`/dashboard/actions/incidents/${b.dataset.incident}/ack`, r)),
  resolve: (b) => ask("Resolve this incident by hand? Say why it is over (kept in the log).",
    (r) => post(`/dashboard/actions/incidents/${b.dataset.incident}/resolve`, r)),
  reinstate: (b) => ask("Reinstate this bot: it takes work again?",
    () => post(`/dashboard/actions/bots/${b.dataset.bot}/reinstate`, {})),
  async redrive() {
    // The dry run first: the confirmation says how many the filter takes now.
    const filter = deadLetterFilter();
    const found = await post("/dashboard/actions/dead-letters/redrive", {...filter, dry_run: true});
    const named = Object.entries(filter).map(([k, v]) => `${k} ${v}`).join(", ") || "no filter";
    ask(`Re-drive ${found.count}${found.more ? " (the newest; more match)" : ""} dead letters matching ${named}?`,
      (r) => post("/dashboard/actions/dead-letters/redrive", {...filter, ...r}));
    document.getElementById("confirm").dataset.count = String(found.count);
  },
};
main.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (b && admin) ACTIONS[b.dataset.action](b);
});

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
  await fetch("/dashboard/logout", {method: "POST", headers: {"X-CSRF-Token": csrf()}});
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
