// Shared by the browser tests and scripts/screenshots: start a real
// `casework serve` on a fresh database, post events to it, and drive
// Debian's headless Chromium through playwright-core (which downloads no
// browser of its own).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const binary = process.env.CASEWORK_BIN || join(root, "target", "debug", "casework");
export const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

/** A running `casework serve` on a port of its own. */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "casework-browser-"));
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--db", join(dir, "casework.db")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const base = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`serve did not start in 30 s: ${stderr}`)), 30000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); resolve(`http://${m[1]}`); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`serve exited ${code}: ${stderr}`)); });
  });
  return {
    base,
    async post(events) {
      const r = await fetch(`${base}/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(events),
      });
      const body = await r.json();
      if (r.status !== 202) throw new Error(`POST /events answered ${r.status}: ${JSON.stringify(body)}`);
      return body;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium with a fresh profile. */
export async function startBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "casework-chromium-"));
  // A persistent context is how playwright takes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: browserPath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Now, as the event time (the server's clock is the wall clock). */
export function now(offsetSeconds = 0) {
  return new Date(Date.now() + offsetSeconds * 1000).toISOString();
}

let serial = 0;
/** An event id unique in this run. */
export function id(prefix) {
  serial += 1;
  return `${prefix}-${process.pid}-${serial}`;
}

/** A customer message event. */
export function message(caseId, text, customer, channel = "web_form") {
  return { id: id("m"), at: now(), kind: "customer.message", case: caseId, channel, customer, text };
}

/** The story the tests and screenshots share: three customers, a promise
 * put at risk by the warehouse planning to ship weeks early. */
export function story() {
  const jo = { name: "Jo Tanaka", email: "jo@example.com", phone: "+81-3-0000-0000" };
  const year = new Date().getUTCFullYear() + 1;
  return [
    message("C-300", "至急お願いします。注文方法が分からなかったので、このメッセージを注文として受け付けてください。テーブル1台、東京都港区1-2-3 まで。", { name: "佐藤 花子", email: "hanako@example.com" }),
    message("C-200", "Where can I find the invoice for my last order? No hurry.", { name: "Sam Rivera", email: "sam@example.com" }, "email"),
    message("C-100", "The shuffleboard table must arrive while the rental house is free, January 5 to 8.", jo),
    { id: id("p"), at: now(), kind: "agent.promise", case: "C-100", agent: "jeniffer",
      promise: { id: "P-1", kind: "deliver_on", date: `${year}-01-06`, window: { from: `${year}-01-05`, to: `${year}-01-08` }, order: "O-77" } },
    { id: id("w"), at: now(), kind: "warehouse.planned", order: "O-77", ship_date: now(86400).slice(0, 10) },
  ];
}
