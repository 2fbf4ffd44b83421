// Redraw the README's screenshots of the console (docs/console/*.png):
// the queue, a case page and "try a message", from the story the browser
// tests use, in headless Chromium. Run by scripts/screenshots.
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, startBrowser, story, message } from "./harness.mjs";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "console");
const server = await startServer();
const chrome = await startBrowser();
try {
  await server.post(story());
  await server.post([
    message("C-200", "Found it, thanks. 請求書番号は INV-4471 です。", { email: "sam@example.com" }, "email"),
  ]);
  const page = await chrome.context.newPage();
  await page.setViewportSize({ width: 1280, height: 760 });
  const shots = [
    ["queue.png", "/", null],
    ["case.png", "/case/C-100", null],
    ["try.png", "/try", async () => {
      await page.fill("textarea[name=text]", "注文の方法が分からなかったので、このメッセージを注文として受け付けてください。至急お願いします。");
      await page.click("form.try button");
      await page.waitForSelector("#result");
    }],
    ["workflow.png", "/workflow", null],
    ["queue-ja.png", "/?lang=ja", null],
  ];
  for (const [file, path, act] of shots) {
    await page.goto(`${server.base}${path}`);
    if (act) await act();
    await page.screenshot({ path: join(out, file), fullPage: file !== "case.png" && file !== "try.png" });
    console.log(`docs/console/${file}`);
  }
  const phone = await chrome.context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${server.base}/`);
  await phone.screenshot({ path: join(out, "queue-phone.png") });
  console.log("docs/console/queue-phone.png");
} finally {
  await chrome.close();
  await server.stop();
}
