// Opens the dashboard's Canaries tab in headless Chromium, selects one
// canary and reports what the panel shows, as JSON on stdout; pauses and
// resumes it with the panel's buttons. Run by crates/weft/tests/up/canary.rs.
import { cells, launch } from "./lib.mjs";

const url = process.env.WEFT_DASHBOARD;
const shot = process.env.WEFT_SCREENSHOT;
const want = process.env.WEFT_CANARY; // namespace/name
const browser = await launch();
const out = {};

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => { out.pageErrors = [...(out.pageErrors || []), String(e)]; });
  await page.goto(url);
  await page.click("nav button[data-tab=canaries]");
  const row = `#canaries tr[data-canary="${want}"]`;
  await page.waitForSelector(row, { timeout: 10000 });
  out.rows = await cells(page, "#canaries tr[data-canary]");
  await page.click(row);
  await page.waitForSelector("#canary:not([hidden])", { timeout: 10000 });
  await page.waitForSelector("#chart-canary-weight canvas", { timeout: 10000 });
  out.title = await page.textContent("#canary-title");
  out.sub = await page.textContent("#canary-sub");
  out.metrics = await cells(page, "#canary-metrics tr[data-metric]");
  out.events = (await cells(page, "#canary-events tr")).map((r) => r[2]).filter(Boolean);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  // The actions go through the admin API, as `weft canary` does.
  await page.click("#canary-actions button[data-action=pause]");
  await page.waitForFunction(() => document.querySelector("#canary-said").textContent === "pause: accepted", null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#canary-sub").textContent.includes("paused"), null, { timeout: 10000 });
  out.paused = await page.textContent("#canary-sub");
  await page.click("#canary-actions button[data-action=resume]");
  await page.waitForFunction(() => !document.querySelector("#canary-sub").textContent.includes("paused"), null, { timeout: 10000 });
  out.resumed = await page.textContent("#canary-sub");
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
