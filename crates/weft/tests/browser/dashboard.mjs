// Opens the weft dashboard in headless Chromium and reports what the
// graph shows, as JSON on stdout; clicks a node and saves a screenshot.
// Run by crates/weft/tests/dashboard.rs.
import { chromium } from "playwright-core";

const url = process.env.WEFT_DASHBOARD;
const shot = process.env.WEFT_SCREENSHOT;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
  ],
});
const out = {};
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
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
