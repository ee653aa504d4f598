// Opens the weft dashboard in headless Chromium and reports what the
// graph shows, as JSON on stdout; clicks a node and saves a screenshot.
// Run by crates/weft/tests/dashboard.rs.
import { cells, launch } from "./lib.mjs";

const url = process.env.WEFT_DASHBOARD;
const shot = process.env.WEFT_SCREENSHOT;
const browser = await launch();
const out = {};

// 200 services with two versions each, calling one another: the graph
// the control plane would serve for such a mesh. Only /api/graph is
// replaced; the rest of the dashboard talks to the live control plane.
function bigGraph(tick) {
  const nodes = [];
  const edges = [];
  const N = 200;
  for (let i = 0; i < N; i++) {
    const host = `svc-${i}.default.svc.cluster.local`;
    nodes.push({ id: `svc:${host}`, label: `svc-${i}`, kind: "service", namespace: "default", service: host,
      health: "healthy", inboundRps: 10 + tick, errorPercent: 0 });
    for (const v of ["v1", "v2"]) {
      const id = `vapp:default/svc-${i}/${v}`;
      nodes.push({ id, label: `svc-${i}`, kind: "app", namespace: "default", app: `svc-${i}`, version: v,
        workload: `svc-${i}-${v}`, health: i % 17 === 0 ? "degraded" : "healthy", inboundRps: 5, errorPercent: 0 });
      edges.push({ id: `svc:${host}->${id}`, source: `svc:${host}`, target: id, rps: 5 + (tick % 3),
        errorPercent: 0, p95Ms: 4.2, tcpBytesPerSecond: 0, mtls: true, protocol: "http", health: "healthy" });
      if (i > 0 && v === "v1") {
        // Calls go from a caller's versions to a callee service, tree-like.
        const caller = `vapp:default/svc-${Math.floor((i - 1) / 2)}/v1`;
        const target = `svc:${host}`;
        edges.push({ id: `${caller}->${target}`, source: caller, target, rps: 3, errorPercent: 0.05,
          p95Ms: 12.5, tcpBytesPerSecond: 0, mtls: i % 5 !== 0, protocol: "http", health: "healthy" });
      }
    }
  }
  return { window: 300, measuredSeconds: 300, nodes, edges };
}

async function scale(browser) {
  const r = {};
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => { r.pageErrors = [...(r.pageErrors || []), String(e)]; });
  let tick = 0;
  await page.route("**/api/graph*", (route) =>
    route.fulfill({ contentType: "application/json", body: JSON.stringify(bigGraph(tick++)) }));
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__longTasks.push({ at: e.startTime, ms: e.duration });
    }).observe({ type: "longtask", buffered: true });
  });
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => window.weftGraph && window.weftGraph.nodes().length >= 600, null,
    { timeout: 30000, polling: 50 });
  r.firstRenderMs = Date.now() - t0;
  const tasksAtFirstRender = await page.evaluate(() => window.__longTasks.length);
  const firstRenderAt = await page.evaluate(() => performance.now());
  r.nodes = await page.evaluate(() => window.weftGraph.nodes().length);
  r.edges = await page.evaluate(() => window.weftGraph.edges().length);
  r.serviceNodes = await page.evaluate(() => window.weftGraph.nodes("[kind = 'service']").length);
  const sample = ["svc:svc-0.default.svc.cluster.local", "vapp:default/svc-150/v2", "svc:svc-199.default.svc.cluster.local"];
  const positions = () => page.evaluate((ids) => ids.map((id) => window.weftGraph.getElementById(id).position()), sample);
  const before = await positions();
  // Two more polling cycles with new numbers on the same topology.
  const seen = tick;
  const t1 = Date.now();
  while (tick < seen + 2 && Date.now() - t1 < 15000) await page.waitForTimeout(100);
  r.updatesSeen = tick - seen;
  r.positionsKept = JSON.stringify(before) === JSON.stringify(await positions());
  r.edgeRpsUpdated = await page.evaluate(() =>
    window.weftGraph.getElementById("svc:svc-3.default.svc.cluster.local").data("inboundRps"));
  // Interaction: zoom and pan, then open a node's page.
  const interactionAt = await page.evaluate(() => performance.now());
  const box = await page.locator("#graph").boundingBox();
  const t2 = Date.now();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -400);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 200, box.y + box.height / 2 + 100, { steps: 10 });
  await page.mouse.up();
  r.zoomPanMs = Date.now() - t2;
  const id = "svc:svc-0.default.svc.cluster.local";
  await page.evaluate((id) => window.weftGraph.center(window.weftGraph.getElementById(id)), id);
  const pos = await page.evaluate((id) => window.weftGraph.getElementById(id).renderedPosition(), id);
  const t3 = Date.now();
  await page.mouse.click(box.x + pos.x, box.y + pos.y);
  await page.waitForSelector("#detail:not([hidden])", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#detail-title").textContent.length > 0);
  r.clickToDetailMs = Date.now() - t3;
  r.detailTitle = await page.textContent("#detail-title");
  const longTasks = await page.evaluate(() => window.__longTasks);
  const ms = (tasks) => tasks.map((t) => t.ms);
  r.firstRenderLongestTaskMs = Math.round(Math.max(0, ...ms(longTasks.slice(0, tasksAtFirstRender))));
  const later = longTasks.slice(tasksAtFirstRender);
  r.longTasksAfterFirstRender = later.length;
  r.longestTaskAfterFirstRenderMs = Math.round(Math.max(0, ...ms(later)));
  // While the graph updates (new numbers, same topology), before anyone
  // touches it; and while it is zoomed, panned and clicked.
  const updating = later.filter((t) => t.at >= firstRenderAt && t.at < interactionAt);
  r.longTasksWhileUpdating = updating.length;
  r.longestTaskWhileUpdatingMs = Math.round(Math.max(0, ...ms(updating)));
  const interacting = later.filter((t) => t.at >= interactionAt);
  r.longestTaskWhileInteractingMs = Math.round(Math.max(0, ...ms(interacting)));
  await page.close();
  return r;
}

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => { out.pageErrors = [...(out.pageErrors || []), String(e)]; });
  await page.goto(url);
  // The graph fills in as the control plane samples traffic.
  await page.waitForFunction(() => {
    const cy = window.weftGraph;
    if (!cy) return false;
    const live = (s, t) => cy.edges().some((e) => e.data("source").includes(s) && e.data("target").includes(t) && e.data("rps") > 0);
    return live("productpage", "svc:reviews") && live("reviews", "svc:ratings");
  }, null, { timeout: 40000, polling: 500 });
  out.edges = await page.evaluate(() =>
    window.weftGraph.edges().map((e) => ({
      source: e.data("source"), target: e.data("target"), rps: e.data("rps"),
      mtls: e.data("mtls"), label: e.data("display"),
    })),
  );
  out.nodes = await page.evaluate(() =>
    window.weftGraph.nodes().map((n) => ({ id: n.id(), health: n.data("health"), kind: n.data("kind") })),
  );
  // Click the reviews service node where it is drawn.
  const id = "svc:reviews.default.svc.cluster.local";
  const box = await page.locator("#graph").boundingBox();
  const pos = await page.evaluate((id) => window.weftGraph.getElementById(id).renderedPosition(), id);
  await page.mouse.click(box.x + pos.x, box.y + pos.y);
  await page.waitForSelector("#detail:not([hidden])", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#detail-title").textContent.length > 0);
  await page.waitForSelector("#chart-in-rps canvas", { timeout: 10000 });
  out.detailTitle = await page.textContent("#detail-title");
  out.detailResources = await page.textContent("#detail-resources");
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  // The Policies tab: the Guardrails' results as PolicyReports.
  await page.click("nav button[data-tab=policies]");
  await page.waitForSelector('#policy-reports tr[data-report="polr-ns-default"]', { timeout: 15000 });
  out.policyReports = await cells(page, "#policy-reports tr[data-report]");
  out.policies = await cells(page, "#policies tr[data-policy]");
  out.policyFailures = await cells(page, "#policy-failures tr.policy-failure");
  out.scale = await scale(browser);
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
