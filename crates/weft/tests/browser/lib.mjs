// What the browser scripts share: Debian's chromium, headless, as the
// tests run it, and a table's cells as text.
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    ],
  });
}

/// Each row `sel` finds, as the text of its cells.
export function cells(page, sel) {
  return page.$$eval(sel, (rows) => rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
}
