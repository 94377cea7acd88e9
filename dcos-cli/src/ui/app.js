// The dcos ui page: polls this machine's `dcos ui` for the fleet (every second) and for
// workloads, services and migrations (every two), and renders them; `#host=NAME` shows one
// host's processes. Everything it shows comes from /api/* on the same origin.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const bytes = (n) => {
  if (n == null) return "-";
  const u = ["B", "K", "M", "G", "T"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + u[i];
};
const pct = (v) => (v == null ? "-" : v.toFixed(1));
const ago = (s) => (s >= 86400 ? Math.floor(s / 86400) + "d" : s >= 3600 ? Math.floor(s / 3600) + "h" : Math.floor(s / 60) + "m");
const cell = (v, cls) => `<td${cls ? ` class="${cls}"` : ""}>${v}</td>`;

function fill(id, rows, columns, empty) {
  const body = $(id).tBodies[0];
  body.innerHTML = rows.length ? rows.join("") : `<tr class="empty"><td colspan="${columns}">${esc(empty)}</td></tr>`;
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

let me = { admin: false };
let hostNames = [];

function renderFleet(f) {
  // When the first answer was on screen, for measuring (scripts/bench-ui.sh).
  if (!document.body.dataset.firstFleetMs) {
    requestAnimationFrame(() => { document.body.dataset.firstFleetMs = Math.round(performance.now()); });
  }
  const ok = f.hosts.filter((h) => h.status === "ok").length;
  const cpus = f.summaries.reduce((a, h) => a + h.cpus, 0);
  $("summary").textContent = `${ok}/${f.hosts.length} hosts answering · ${cpus} CPUs · ${f.processes.length} top processes · ${f.containers.length} containers · asked in ${f.elapsed_ms} ms`;
  const byName = new Map(f.summaries.map((h) => [h.host, h]));
  hostNames = f.summaries.map((h) => h.host).sort();
  const rows = f.hosts.map((r) => {
    const h = byName.get(r.host);
    if (!h) return `<tr class="down">${cell(esc(r.host))}${cell("-")}${cell(esc(r.status))}<td colspan="6">${esc(r.error)}</td></tr>`;
    const mem = h.mem_total_bytes ? h.mem_used_bytes / h.mem_total_bytes : 0;
    const cpu = h.cpu_percent == null ? null : h.cpu_percent / Math.max(1, h.cpus);
    const bar = (f) => `<span class="bar${f > 0.8 ? " hot" : ""}"><span style="width:${Math.round(Math.min(1, f) * 100)}%"></span></span>`;
    return `<tr>${cell(`<a class="host" href="#host=${encodeURIComponent(h.host)}">${esc(h.host)}</a>`)}${cell(esc(h.dc))}${cell("ok")}` +
      cell(h.load.map((l) => l.toFixed(2)).join(" "), "num") + cell(`${pct(h.cpu_percent)} ${cpu == null ? "" : bar(cpu / 100)}`, "num") +
      cell(h.cpus, "num") + cell(`${bytes(h.mem_used_bytes)} / ${bytes(h.mem_total_bytes)} ${bar(mem)}`, "num") +
      cell(h.processes, "num") + cell(ago(h.uptime_s), "num") + "</tr>";
  });
  fill("hosts", rows, 9, "no hosts");
  fill("top", f.processes.map((p) => `<tr>${cell(esc(p.host))}${cell(p.pid, "num")}${cell(esc(p.user))}${cell(pct(p.cpu_percent), "num")}` +
    `${cell(bytes(p.mem_rss_bytes), "num")}${cell(esc(p.state))}${cell(esc((p.cmdline && p.cmdline.length ? p.cmdline.join(" ") : p.cmd).slice(0, 120)), "wrap")}${cell(esc(p.container ? p.container.name : ""))}</tr>`), 8, "no processes");
  fill("containers", f.containers.map((c) => `<tr>${cell(esc(c.host))}${cell(esc(c.name))}${cell(esc(c.runtime))}${cell(esc(c.status))}` +
    `${cell(c.processes, "num")}${cell(pct(c.cpu_percent), "num")}${cell(bytes(c.mem_bytes), "num")}${cell(esc(c.service || ""))}</tr>`), 8, "no containers");
}

function renderWorkloads(w) {
  fill("workloads", w.workloads.map((x) => `<tr>${cell(esc(x.name))}${cell(esc(x.host))}${cell(esc(x.runtime))}${cell(esc(x.status))}` +
    `${cell(x.pid ?? "-", "num")}${cell(x.epoch, "num")}${cell(esc(x.command.join(" ")), "wrap")}</tr>`), 7, "no workloads");
  const form = $("migrate");
  form.hidden = !me.admin || !w.workloads.length;
  const keep = (sel, values) => {
    const was = sel.value;
    sel.innerHTML = values.map((v) => `<option>${esc(v)}</option>`).join("");
    if (values.includes(was)) sel.value = was;
  };
  keep($("migrate-name"), w.workloads.filter((x) => x.status === "running").map((x) => x.name));
  keep($("migrate-to"), hostNames);
  return w.workloads.filter((x) => x.status === "migrating" || x.status === "incoming");
}

function renderMigrations(m, moving) {
  const started = m.migrations.map((x) => {
    const progress = x.bytes_total ? `${bytes(x.bytes_sent)} / ${bytes(x.bytes_total)}` : bytes(x.bytes_sent);
    return `<tr>${cell(esc(x.workload))}${cell(esc(x.from))}${cell(esc(x.to))}${cell(esc(x.status))}${cell(esc(x.phase))}` +
      `${cell(progress, "num")}${cell(x.status === "done" ? x.downtime_ms + " ms" : "-", "num")}${cell(esc(x.error || ""), "wrap")}</tr>`;
  });
  const seen = moving.map((x) => `<tr>${cell(esc(x.name))}${cell(x.status === "migrating" ? esc(x.host) : "")}${cell(x.status === "incoming" ? esc(x.host) : "")}${cell(esc(x.status))}<td colspan="4">reported by ${esc(x.host)}</td></tr>`);
  fill("migrations", started.concat(seen), 8, "none in flight");
}

function renderServices(s) {
  fill("services", s.services.map((x) => `<tr>${cell(esc(x.name))}${cell(x.port, "num")}${cell(x.hosts, "num")}${cell(x.instances, "num")}` +
    `${cell(x.inflight, "num")}${cell(x.connections, "num")}${cell(x.cold_starts, "num")}</tr>`), 7, "no services");
}

async function showHost(name) {
  $("host-title").textContent = name;
  try {
    const p = await get(`/api/host/${encodeURIComponent(name)}`);
    $("host-said").textContent = `${p.total} processes (showing ${p.processes.length}, by CPU), sampled ${p.sampled_at}`;
    fill("procs", p.processes.map((x) => `<tr>${cell(x.pid, "num")}${cell(x.ppid, "num")}${cell(esc(x.user))}${cell(pct(x.cpu_percent), "num")}` +
      `${cell(bytes(x.mem_rss_bytes), "num")}${cell(esc(x.state))}${cell(x.threads, "num")}${cell(esc((x.cmdline && x.cmdline.length ? x.cmdline.join(" ") : x.cmd)), "wrap")}` +
      `${cell(esc(x.container ? x.container.name : ""))}</tr>`), 9, "no processes");
  } catch (e) {
    $("host-said").textContent = String(e.message);
  }
}

function route() {
  const m = location.hash.match(/^#host=(.+)$/);
  $("fleet-view").hidden = !!m;
  $("host-view").hidden = !m;
  return m ? decodeURIComponent(m[1]) : null;
}

async function tickFleet() {
  const host = route();
  try {
    if (host) await showHost(host);
    else renderFleet(await get("/api/fleet"));
  } catch (e) {
    $("summary").textContent = `cannot ask the fleet: ${e.message}`;
  }
  setTimeout(tickFleet, 1000);
}

async function tickMiddlecon() {
  if (!route()) {
    const [w, s, m] = await Promise.allSettled([get("/api/workloads"), get("/api/services"), get("/api/migrations")]);
    const moving = w.status === "fulfilled" ? renderWorkloads(w.value) : [];
    if (w.status === "rejected") fill("workloads", [], 7, w.reason.message);
    if (s.status === "fulfilled") renderServices(s.value); else fill("services", [], 7, s.reason.message);
    if (m.status === "fulfilled") renderMigrations(m.value, moving);
  }
  setTimeout(tickMiddlecon, 2000);
}

$("migrate").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = JSON.stringify({ name: $("migrate-name").value, to: $("migrate-to").value });
  const r = await fetch("/api/migrate", { method: "POST", headers: { "content-type": "application/json" }, body });
  const said = await r.json();
  $("migrate-said").textContent = r.ok ? `moving ${said.migration.workload} to ${said.migration.to}` : said.error;
});

window.addEventListener("hashchange", () => { const h = route(); if (h) showHost(h); });

tickFleet();
(async () => {
  try {
    me = await get("/api/me");
    $("me").textContent = `${me.name} (${me.role})`;
  } catch (e) {
    $("me").textContent = String(e.message);
  }
  tickMiddlecon();
})();
