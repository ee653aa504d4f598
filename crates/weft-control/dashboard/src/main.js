// weft's dashboard: a live service graph in the manner of Kiali, detail
// pages with charts, validations and proxy state. Everything comes from
// the control plane's JSON API (/api/graph, /api/node, /api/validations,
// /api/status); the page polls it, so it updates without a reload.

import cytoscape from "cytoscape";
import uPlot from "uplot";

const REFRESH_MS = 3000;
const COLORS = { healthy: "#3e8635", degraded: "#f0ab00", failing: "#c9190b", idle: "#8a8d90" };
const SHAPES = { service: "triangle", app: "round-rectangle", workload: "ellipse", unknown: "diamond" };

const $ = (sel) => document.querySelector(sel);
const state = { selected: null, topology: "", charts: {} };

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// Names, messages and reasons come from users' YAML and from webhooks'
// answers: they are escaped before they go into the page.
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmt(n, digits = 1) {
  if (n === null || n === undefined) return "-";
  return Number(n).toFixed(digits);
}

function edgeLabel(e) {
  // Spelled out: a lock glyph needs an emoji font the browser may lack.
  const lock = e.mtls ? "mTLS " : "";
  if (e.protocol === "tcp") return `${lock}${fmt(e.tcpBytesPerSecond, 0)} B/s`;
  const p95 = e.p95Ms === null || e.p95Ms === undefined ? "" : ` ${fmt(e.p95Ms, 0)}ms`;
  return `${lock}${fmt(e.rps, 2)}rps ${fmt(e.errorPercent, 1)}%${p95}`;
}

function nodeLabel(n) {
  const badges = (n.badges || []).join(" ");
  return badges ? `${n.label}\n[${badges}]` : n.label;
}

const cy = cytoscape({
  container: $("#graph"),
  minZoom: 0.1,
  maxZoom: 4,
  wheelSensitivity: 0.3,
  // Large meshes: pan and zoom move a cached picture, and labels too small
  // to read are not drawn, so 200 services stay smooth.
  textureOnViewport: true,
  pixelRatio: 1,
  style: [
    {
      selector: "node",
      style: {
        label: "data(display)",
        "text-wrap": "wrap",
        "text-valign": "bottom",
        "text-margin-y": 4,
        "font-size": 11,
        "min-zoomed-font-size": 6,
        shape: (el) => SHAPES[el.data("kind")] || "ellipse",
        "background-color": "#fff",
        "border-width": 3,
        "border-color": (el) => COLORS[el.data("health")] || COLORS.idle,
        width: 34,
        height: 34,
      },
    },
    { selector: "node:selected", style: { "overlay-opacity": 0.15, "overlay-color": "#0066cc" } },
    {
      selector: "edge",
      style: {
        label: "data(display)",
        "font-size": 9,
        "min-zoomed-font-size": 7,
        "text-background-color": "#fafafa",
        "text-background-opacity": 0.9,
        "curve-style": "bezier",
        "target-arrow-shape": "triangle",
        width: 2,
        "line-color": (el) => COLORS[el.data("health")] || COLORS.idle,
        "target-arrow-color": (el) => COLORS[el.data("health")] || COLORS.idle,
      },
    },
  ],
});

// Past this many edges, edges are drawn as straight "haystack" lines,
// cytoscape's cheapest, without arrowheads: drawing a few hundred bezier
// curves with arrows takes a frame's budget several times over. Direction
// stays readable from the breadth-first layout.
const MANY_EDGES = 250;

function layout() {
  const many = cy.edges().length > MANY_EDGES;
  cy.edges().style(
    many
      ? { "curve-style": "haystack", "haystack-radius": 0, "target-arrow-shape": "none" }
      : { "curve-style": "bezier", "target-arrow-shape": "triangle" },
  );
  cy.layout({ name: "breadthfirst", directed: true, spacingFactor: 1.2, animate: false, padding: 30 }).run();
}

// Updates are applied in slices, each its own task: a mesh of hundreds of
// services changes most of its numbers every poll, and styling every
// element in one go blocks the page for longer than a frame budget.
const SLICE = 150;
const yieldToPage = () => new Promise((resolve) => setTimeout(resolve, 0));

/// The keys of `data` whose values differ from `el`'s.
function changed(el, data) {
  const out = {};
  let any = false;
  for (const [k, v] of Object.entries(data)) {
    const old = el.data(k);
    if (old !== v && JSON.stringify(old) !== JSON.stringify(v)) {
      out[k] = v;
      any = true;
    }
  }
  return any ? out : null;
}

async function refreshGraph() {
  const view = $("#view").value;
  const windowSecs = $("#window").value;
  const g = await getJson(`/api/graph?view=${view}&window=${windowSecs}`);
  const ids = new Set();
  const adds = [];
  const updates = [];
  const incoming = [
    ...g.nodes.map((n) => ["nodes", { ...n, display: nodeLabel(n) }]),
    ...g.edges.map((e) => ["edges", { ...e, display: edgeLabel(e) }]),
  ];
  for (const [group, data] of incoming) {
    ids.add(data.id);
    const el = cy.getElementById(data.id);
    if (el.empty()) adds.push({ group, data });
    else {
      const diff = changed(el, data);
      if (diff) updates.push([el, diff]);
    }
  }
  const gone = cy.elements().filter((el) => !ids.has(el.id()));
  // A new topology is drawn whole (it is laid out anyway); numbers on a
  // known one arrive slice by slice.
  cy.batch(() => {
    gone.remove();
    // Nodes before the edges that join them.
    cy.add(adds.filter((a) => a.group === "nodes"));
    cy.add(adds.filter((a) => a.group === "edges"));
  });
  for (let i = 0; i < updates.length; i += SLICE) {
    if (i > 0) await yieldToPage();
    cy.batch(() => {
      for (const [el, diff] of updates.slice(i, i + SLICE)) {
        if (!el.removed()) el.data(diff);
      }
    });
  }
  const topology = [...ids].sort().join("|");
  if (topology !== state.topology) {
    state.topology = topology;
    layout();
  }
  $("#updated").textContent = `${g.nodes.length} nodes, ${g.edges.length} edges · updated ${new Date().toLocaleTimeString()}`;
}

function chart(id, title, points, key, unit, { range, width = 420, height = 120 } = {}) {
  const el = $(`#${id}`);
  const xs = points.map((p) => -p.secondsAgo);
  const ys = points.map((p) => (p[key] === null || p[key] === undefined ? null : p[key]));
  const data = [xs, ys];
  if (state.charts[id]) {
    state.charts[id].setData(data);
    return;
  }
  el.innerHTML = "";
  state.charts[id] = new uPlot(
    {
      title,
      width,
      height,
      scales: { x: { time: false }, ...(range ? { y: { range } } : {}) },
      axes: [{ label: "seconds ago" }, { label: unit }],
      series: [{}, { label: title, stroke: "#0066cc", width: 1.5 }],
      legend: { show: false },
    },
    data,
    el,
  );
}

async function refreshDetail() {
  if (!state.selected) return;
  const d = await getJson(`/api/node?id=${encodeURIComponent(state.selected)}&window=${$("#window").value}`);
  const n = cy.getElementById(state.selected).data() || {};
  $("#detail-title").textContent = n.label || state.selected;
  $("#detail-sub").textContent = `${n.kind || ""} · namespace ${n.namespace || "-"} · health ${n.health || "-"} · ${fmt(n.inboundRps, 2)} rps in · ${fmt(n.errorPercent, 1)}% errors`;
  const pts = d.series.points || [];
  chart("chart-in-rps", "requests/s", pts, "inboundRps", "rps");
  chart("chart-in-err", "errors %", pts, "inboundErrorPercent", "%");
  chart("chart-in-p95", "p95 latency", pts, "inboundP95Ms", "ms");
  chart("chart-out-rps", "requests/s out", pts, "outboundRps", "rps");
  $("#detail-resources").innerHTML = (d.resources || [])
    .map((r) => `<li>${esc(r.kind)} ${esc(r.namespace)}/${esc(r.name)} <span class="muted">${esc(r.file)}:${esc(r.line)}</span></li>`)
    .join("") || "<li class='muted'>none</li>";
  $("#detail-proxies").innerHTML =
    "<tr><th>proxy</th><th>sync</th><th>certificate expires</th></tr>" +
    (d.proxies || [])
      .map((p) => `<tr><td>${esc(p.name)}</td><td>${esc(p.sync)}</td><td>${esc((p.certificate && p.certificate.notAfter) || "-")}</td></tr>`)
      .join("");
}

function select(id) {
  state.selected = id;
  state.charts = {};
  $("#detail").hidden = !id;
  if (id) refreshDetail().catch(showError);
}

async function refreshValidations() {
  const v = await getJson("/api/validations");
  const rows = (v.diagnostics || []).map(
    (d) => `<tr><td class="sev-${esc(d.severity)}">${esc(d.severity)}</td><td>${esc(d.code)}</td><td>${esc(d.resource)}</td><td>${esc(d.file)}:${esc(d.line)}:${esc(d.column)}</td><td>${esc(d.message)}</td></tr>`,
  );
  $("#validations").innerHTML =
    "<tr><th>severity</th><th>code</th><th>resource</th><th>where</th><th>message</th></tr>" +
    (rows.join("") || "<tr><td colspan=5 class='muted'>no findings: the configuration analyzes clean</td></tr>");
}

async function refreshProxies() {
  const s = await getJson("/api/status");
  $("#proxies").innerHTML =
    "<tr><th>proxy</th><th>kind</th><th>sync</th><th>version</th><th>certificate expires</th></tr>" +
    (s.proxies || [])
      .map((p) => {
        const cert = p.stream && p.stream.certificate;
        return `<tr><td>${esc(p.name)}</td><td>${esc(p.kind)}</td><td>${esc(p.sync)}</td><td>${esc(p.pushedVersion)}</td><td>${esc((cert && cert.notAfter) || "-")}</td></tr>`;
      })
      .join("");
}

// Canaries: kubectl's columns for Flagger's Canary, and for the one
// selected its phase, its weight over the decisions recorded, the last
// analysis's metrics against their limits, its events, and the actions
// of `weft canary`, through the same admin API.
async function refreshCanaries() {
  const list = await getJson("/api/canaries");
  const key = (c) => `${c.namespace}/${c.name}`;
  $("#canaries").innerHTML =
    "<tr><th>NAMESPACE</th><th>NAME</th><th>STATUS</th><th>WEIGHT</th><th>FAILEDCHECKS</th><th>LASTTRANSITIONTIME</th></tr>" +
    (list
      .map((c) => {
        const st = c.status || {};
        const phase = st.phase || "";
        const selected = state.canary === key(c) ? " class='selected'" : "";
        return `<tr data-canary="${esc(key(c))}"${selected}><td>${esc(c.namespace)}</td><td>${esc(c.name)}</td><td class="phase-${esc(phase)}">${esc(phase || "-")}</td><td>${esc(st.canaryWeight ?? 0)}</td><td>${esc(st.failedChecks ?? 0)}</td><td>${esc(st.lastTransitionTime || "-")}</td></tr>`;
      })
      .join("") || "<tr><td colspan=6 class='muted'>no canaries: a Flagger Canary in the configuration appears here</td></tr>");
  for (const tr of document.querySelectorAll("#canaries tr[data-canary]")) {
    tr.addEventListener("click", () => {
      state.canary = tr.dataset.canary;
      delete state.charts["chart-canary-weight"];
      $("#canary-said").textContent = "";
      refreshCanaries().catch(showError);
    });
  }
  const c = list.find((c) => key(c) === state.canary);
  $("#canary").hidden = !c;
  if (c) showCanary(c);
}

function showCanary(c) {
  const st = c.status || {};
  const analysis = (c.spec && c.spec.analysis) || {};
  $("#canary-title").textContent = `${c.name}.${c.namespace}`;
  const parts = [
    st.phase || "not started",
    `canary weight ${st.canaryWeight ?? 0}%`,
    `failed checks ${st.failedChecks ?? 0} of ${analysis.threshold ?? 1}`,
  ];
  if (st.providerErrors) parts.push(`metrics provider errors ${st.providerErrors}`);
  if (c.manual && c.manual.paused) parts.push("paused");
  const condition = st.conditions && st.conditions[0] && st.conditions[0].message;
  $("#canary-sub").textContent = parts.join(" · ") + (condition ? ` — ${condition}` : "");
  const now = Date.now();
  const decisions = c.decisions || [];
  const points = decisions.map((d) => ({ secondsAgo: Math.max(0, (now - Date.parse(d.time)) / 1000), weight: d.canaryWeight }));
  chart("chart-canary-weight", "canary weight", points, "weight", "%", { range: [0, 100], width: 640, height: 220 });
  const last = [...decisions].reverse().find((d) => (d.metrics || []).length > 0);
  const absolute = (m) =>
    m.min !== undefined && m.max !== undefined ? `${m.min} – ${m.max}` : m.min !== undefined ? `≥ ${m.min}` : m.max !== undefined ? `≤ ${m.max}` : "-";
  // weft's comparison with the primary, beside the absolute limits.
  const limits = (m) =>
    m.compared === undefined
      ? absolute(m)
      : `${absolute(m)}; ${m.compared} (${m.primary === undefined ? "primary: no traffic" : `primary ${fmt(m.primary, 2)}`})`;
  $("#canary-metrics").innerHTML =
    "<tr><th>metric</th><th>value</th><th>limits</th><th>verdict</th></tr>" +
    ((last ? last.metrics : [])
      .map((m) => `<tr data-metric="${esc(m.name)}"><td>${esc(m.name)}</td><td>${esc(m.value === undefined ? "-" : fmt(m.value, 2))}</td><td>${esc(limits(m))}</td><td class="verdict-${esc(m.verdict)}">${esc(m.verdict)}</td></tr>`)
      .join("") || "<tr><td colspan=4 class='muted'>no analysis yet</td></tr>");
  $("#canary-events").innerHTML =
    "<tr><th>time</th><th>type</th><th>message</th></tr>" +
    ((c.events || [])
      .slice(-40)
      .reverse()
      .map((e) => `<tr class="event-${esc(e.type)}"><td>${esc(e.time)}</td><td>${esc(e.type)}</td><td>${esc(e.message)}</td></tr>`)
      .join("") || "<tr><td colspan=3 class='muted'>no events since the control plane started</td></tr>");
}

// Policies: each policy of the mesh with what it found at admission and
// what its data-plane rules counted (dropped under Enforce, let through
// and counted under Audit); then the Guardrails' results as Kyverno's
// PolicyReports, a line per namespace, and each result that fails with
// where it was written.
async function refreshPolicies() {
  const status = await getJson("/api/status");
  const policies = (status.controlPlane || {}).policies || [];
  const count = (n) => (n === undefined ? "-" : String(n));
  $("#policies").innerHTML =
    "<tr><th>kind</th><th>name</th><th>action</th><th>pass</th><th>fail</th><th>selects</th><th>dropped</th><th>audited</th></tr>" +
    (policies
      .map(
        (p) =>
          `<tr data-policy="${esc(p.name)}"><td>${esc(p.kind)}</td><td>${esc(p.name)}</td><td>${esc(p.action)}</td><td>${esc(count(p.pass))}</td><td class="${p.fail ? "verdict-failed" : ""}">${esc(count(p.fail))}</td><td>${esc(count(p.selects))}</td><td class="${p.dropped ? "verdict-failed" : ""}">${esc(count(p.dropped))}</td><td>${esc(count(p.audited))}</td></tr>`,
      )
      .join("") || "<tr><td colspan=8 class='muted'>no policies: Guardrails, Kyverno policies and NetworkPolicies appear here</td></tr>");
  const reports = await getJson("/api/policyreports");
  $("#policy-reports").innerHTML =
    "<tr><th>NAMESPACE</th><th>NAME</th><th>PASS</th><th>FAIL</th><th>WARN</th><th>ERROR</th><th>SKIP</th></tr>" +
    (reports
      .map((r) => {
        const s = r.summary || {};
        return `<tr data-report="${esc(r.metadata.name)}"><td>${esc(r.metadata.namespace)}</td><td>${esc(r.metadata.name)}</td><td>${esc(s.pass ?? 0)}</td><td class="${s.fail ? "verdict-failed" : ""}">${esc(s.fail ?? 0)}</td><td>${esc(s.warn ?? 0)}</td><td>${esc(s.error ?? 0)}</td><td>${esc(s.skip ?? 0)}</td></tr>`;
      })
      .join("") || "<tr><td colspan=7 class='muted'>no policy reports: a weft.dev/v1 Guardrail's results appear here</td></tr>");
  const failures = reports.flatMap((r) => (r.results || []).filter((x) => x.result === "fail"));
  $("#policy-failures").innerHTML =
    "<tr><th>policy</th><th>rule</th><th>resource</th><th>where</th><th>message</th></tr>" +
    (failures
      .map((x) => {
        const res = (x.resources || [])[0] || {};
        const where = x.properties ? `${x.properties.file}:${x.properties.line}` : "";
        return `<tr class="policy-failure"><td>${esc(x.policy)}</td><td>${esc(x.rule)}</td><td>${esc(res.kind)} ${esc(res.namespace)}/${esc(res.name)}</td><td>${esc(where)}</td><td>${esc(x.message)}</td></tr>`;
      })
      .join("") || "<tr><td colspan=5 class='muted'>none</td></tr>");
}

async function canaryAction(action) {
  if (!state.canary) return;
  const [ns, name] = state.canary.split("/");
  const r = await fetch(`/api/canaries/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${action}`, { method: "POST" });
  const body = await r.json().catch(() => ({}));
  $("#canary-said").textContent = r.ok ? `${action}: accepted` : `${action}: ${body.error || `HTTP ${r.status}`}`;
  await refreshCanaries();
}

function showError(e) {
  $("#updated").textContent = `error: ${e.message}`;
}

async function tick() {
  const tab = document.querySelector("nav button.active").dataset.tab;
  try {
    if (tab === "graph") {
      await refreshGraph();
      await refreshDetail();
    } else if (tab === "validations") await refreshValidations();
    else if (tab === "canaries") await refreshCanaries();
    else if (tab === "policies") await refreshPolicies();
    else await refreshProxies();
  } catch (e) {
    showError(e);
  }
}

cy.on("tap", "node", (ev) => select(ev.target.id()));
cy.on("tap", (ev) => {
  if (ev.target === cy) select(null);
});
$("#close").addEventListener("click", () => select(null));
for (const b of document.querySelectorAll("#canary-actions button")) {
  b.addEventListener("click", () => canaryAction(b.dataset.action).catch(showError));
}
$("#view").addEventListener("change", () => {
  state.topology = "";
  select(null);
  tick();
});
$("#window").addEventListener("change", () => {
  state.charts = {};
  tick();
});
for (const b of document.querySelectorAll("nav button")) {
  b.addEventListener("click", () => {
    for (const x of document.querySelectorAll("nav button")) x.classList.toggle("active", x === b);
    for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== `tab-${b.dataset.tab}`;
    tick();
  });
}
// For tests and debugging.
window.weftGraph = cy;
tick();
setInterval(tick, REFRESH_MS);
