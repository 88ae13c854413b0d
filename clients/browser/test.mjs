// Drives headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) to the test page and reports
// the page's scenarios: one line each, then `N passed, M failed` as the last line. Exit code 1 if any failed.
//
// Usage: node test.mjs PAGE_URL
// Env: CHROMIUM (default /usr/bin/chromium), PAGE_TIMEOUT_MS (default 120000), SCREENSHOT (a .png path to save).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const pageUrl = process.argv[2];
if (!pageUrl) {
  console.error("usage: node test.mjs PAGE_URL");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const timeout = Number(process.env.PAGE_TIMEOUT_MS || 120_000);
const gatewayOrigin = new URL(new URL(pageUrl).searchParams.get("gateway") ?? "http://invalid").origin;

const log = []; // the page's console, errors and failed requests: shown when something fails
const results = [];
const gatewayResponses = { total: 0, withCors: 0, statuses: new Map() };

const userDataDir = await mkdtemp(join(tmpdir(), "highwind-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`page error: ${e.stack ?? e}`));
  page.on("requestfailed", (r) => log.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (new URL(r.url()).origin !== gatewayOrigin) return;
    gatewayResponses.total++;
    const key = `${r.status()} ${r.request().method()}`;
    gatewayResponses.statuses.set(key, (gatewayResponses.statuses.get(key) ?? 0) + 1);
    if (r.headers()["access-control-allow-origin"]) gatewayResponses.withCors++;
  });

  const version = context.browser()?.version() ?? "(persistent context)";
  await page.goto(pageUrl, { waitUntil: "load", timeout: 30_000 });
  try {
    await page.waitForFunction(() => window.__done === true, null, { timeout, polling: 100 });
  } catch (e) {
    log.push(`gave up waiting for window.__done after ${timeout} ms: ${e.message.split("\n")[0]}`);
  }
  const { planned, reported } = await page.evaluate(() => ({
    planned: window.__planned ?? [],
    reported: window.__results ?? [],
  }));
  results.push(...reported);
  for (const name of planned) {
    if (!reported.some((r) => r.name === name)) results.push({ name, ok: false, detail: "did not finish" });
  }
  if (planned.length === 0) results.push({ name: "page loaded its scenarios", ok: false, detail: "window.__planned is empty" });
  // What the browser itself saw of the gateway: every response it let through carried CORS headers.
  results.push({
    name: "cors: every gateway response the browser saw allowed the page's origin",
    ok: gatewayResponses.total > 0 && gatewayResponses.withCors === gatewayResponses.total,
    detail: `${gatewayResponses.withCors}/${gatewayResponses.total} with access-control-allow-origin (${[
      ...gatewayResponses.statuses,
    ]
      .map(([k, n]) => `${n}× ${k}`)
      .join(", ")})`,
  });
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  log.unshift(`chromium ${version}`);
} catch (e) {
  results.push({ name: "drive chromium", ok: false, detail: e.stack ?? String(e) });
} finally {
  await context?.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

const failed = results.filter((r) => !r.ok).length;
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} — ${r.detail}`);
if (failed > 0 && log.length > 0) {
  console.log("--- browser log ---");
  for (const line of log) console.log(`  ${line}`);
}
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
