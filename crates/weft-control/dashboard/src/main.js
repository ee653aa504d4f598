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

function chart(id, title, points, key, unit) {
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
      width: 420,
      height: 120,
      scales: { x: { time: false } },
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
    .map((r) => `<li>${r.kind} ${r.namespace}/${r.name} <span class="muted">${r.file}:${r.line}</span></li>`)
    .join("") || "<li class='muted'>none</li>";
  $("#detail-proxies").innerHTML =
    "<tr><th>proxy</th><th>sync</th><th>certificate expires</th></tr>" +
    (d.proxies || [])
      .map((p) => `<tr><td>${p.name}</td><td>${p.sync}</td><td>${(p.certificate && p.certificate.notAfter) || "-"}</td></tr>`)
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
    (d) => `<tr><td class="sev-${d.severity}">${d.severity}</td><td>${d.code || ""}</td><td>${d.resource || ""}</td><td>${d.file}:${d.line}:${d.column}</td><td>${d.message}</td></tr>`,
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
        return `<tr><td>${p.name}</td><td>${p.kind}</td><td>${p.sync}</td><td>${p.pushedVersion}</td><td>${(cert && cert.notAfter) || "-"}</td></tr>`;
      })
      .join("");
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
