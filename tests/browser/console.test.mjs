// The console in a real browser: headless Chromium against a real
// `casework serve` (run by scripts/browser-tests, counted by .ci/run).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, startBrowser, story, message, id, now } from "./harness.mjs";

let server, chrome, page;

before(async () => {
  server = await startServer();
  chrome = await startBrowser();
  page = await chrome.context.newPage();
  await server.post(story());
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

test("the queue lists the posted cases, the promise at risk first", async () => {
  await page.goto(`${server.base}/`);
  const ids = await page.locator("#queue tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.case));
  assert.deepEqual(ids.slice().sort(), ["C-100", "C-200", "C-300"]);
  assert.equal(ids[0], "C-100", "a promise at risk comes before everything else");
  // Then the SLA clock nearest to breach (the three came in one batch, so
  // their clocks tie), then urgency: C-300 asked for it, C-200 did not.
  assert.deepEqual(ids, ["C-100", "C-300", "C-200"]);
  const first = page.locator("#queue tbody tr").first();
  assert.match(await first.textContent(), /at risk/);
  assert.match(await page.locator("#queue").textContent(), /佐藤 花子/);
  // Filters work without JavaScript: a plain GET form.
  await page.goto(`${server.base}/?q=sam%40example.com`);
  assert.deepEqual(
    await page.locator("#queue tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.case)),
    ["C-200"],
  );
});

test("a case page shows the timeline and the promise history", async () => {
  await page.goto(`${server.base}/case/C-100`);
  const timeline = page.locator("#timeline li");
  assert.equal(await timeline.count(), 3);
  const kinds = await page.locator("#timeline .kind").allTextContents();
  assert.deepEqual(kinds, ["customer.message", "agent.promise", "warehouse.planned"]);
  const history = page.locator('[data-promise="P-1"] .history li');
  assert.ok((await history.count()) >= 2, "made, then put at risk");
  const text = await page.locator('[data-promise="P-1"]').textContent();
  assert.match(text, /pending/);
  assert.match(text, /at risk/);
  assert.match(await page.locator("#decisions").textContent(), /\.rhai:\d+/, "decisions name their rule line");
});

test("try a message shows the route of a pasted message and stores nothing", async () => {
  const before = await (await fetch(`${server.base}/health`)).json();
  await page.goto(`${server.base}/try`);
  await page.fill("textarea[name=text]", "請求書の金額が間違っています。返金してください。");
  await page.click("form.try button");
  await page.waitForSelector("#result");
  const team = (await page.locator("#route-team").textContent()).trim();
  assert.equal(team, "billing");
  assert.match(await page.locator("#result .decisions").textContent(), /route/);
  const after = await (await fetch(`${server.base}/health`)).json();
  assert.equal(after.events, before.events, "a dry run stores no event");
  assert.equal(after.cases, before.cases);
});

test("a new event appears on an open case page without a reload", async () => {
  await page.goto(`${server.base}/case/C-200`);
  await page.waitForSelector("#live:not([hidden])");
  const marker = await page.evaluate(() => (window.__marker = Math.random()));
  await server.post([message("C-200", "Following up: the invoice number is INV-4471.", { email: "sam@example.com" }, "email")]);
  await page.waitForFunction(() => document.querySelectorAll("#timeline li").length === 2, null, { timeout: 10000 });
  assert.match(await page.locator("#timeline").textContent(), /INV-4471/);
  assert.equal(await page.evaluate(() => window.__marker), marker, "the page was not reloaded");
});

test("the queue updates itself when a case opens", async () => {
  await page.goto(`${server.base}/`);
  await page.waitForSelector("#live:not([hidden])");
  await server.post([message("C-400", "Is the walnut table back in stock?", { email: "kim@example.com" })]);
  await page.waitForSelector('#queue tr[data-case="C-400"]', { timeout: 10000 });
});

test("hostile messages render as text, never as markup", async () => {
  const hostile = [
    "<script>window.__pwned = 1</script>",
    '"><img src=x onerror="window.__pwned = 2">',
    "<a href=\"javascript:window.__pwned=3\">click</a> javascript:alert(1)",
    "refund \u202Efdp.exe\u202C please",
  ].join("\n");
  await server.post([
    { ...message("C-666", hostile, { name: '<b onmouseover="x()">Mallory</b>', email: "m@example.com" }), id: id("h") },
  ]);
  for (const path of ["/case/C-666", "/?q=C-666"]) {
    await page.goto(`${server.base}${path}`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator("main script, main img, main [onerror], main [onmouseover]").count(), 0);
    assert.equal(await page.locator('main a[href^="javascript:"]').count(), 0);
    assert.equal(await page.locator("main .said b").count(), 0, "the customer's name is not bold markup");
  }
  await page.goto(`${server.base}/case/C-666`);
  const shown = await page.locator("#timeline .text").first().textContent();
  assert.match(shown, /<script>window.__pwned = 1<\/script>/, "the text is shown as written");
  assert.match(shown, /onerror=/);
  assert.match(shown, /\[U\+202E\]fdp\.exe\[U\+202C\]/, "direction overrides are shown, not obeyed");
  assert.ok(!shown.includes("\u202E"));
  assert.match(await page.locator("#customer").textContent(), /<b onmouseover="x\(\)">Mallory<\/b>/);
  const csp = (await fetch(`${server.base}/case/C-666`)).headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
});

test("the workflow page draws every state with its case count", async () => {
  await page.goto(`${server.base}/workflow`);
  const names = await page.locator("svg .node").evaluateAll((ns) => ns.map((n) => n.dataset.state));
  for (const s of ["new", "triage", "resolved", "closed", "promise_at_risk"]) assert.ok(names.includes(s), s);
  assert.match(await page.locator('svg .node[data-state="promise_at_risk"]').textContent(), /1 case\b/);
  assert.match(await page.locator("svg .note").textContent(), /any open state/);
});

test("a form posted without the CSRF token is refused", async () => {
  const r = await fetch(`${server.base}/try`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: "text=hello",
  });
  assert.equal(r.status, 403);
});

test("a browser that prefers Japanese gets the console in Japanese", async () => {
  // The persistent context (a fresh profile) keeps one locale, so this tab
  // says what a Japanese browser says.
  const tab = await chrome.context.newPage();
  await tab.setExtraHTTPHeaders({ "Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5" });
  await tab.goto(`${server.base}/`);
  assert.equal(await tab.locator("html").getAttribute("lang"), "ja");
  assert.match(await tab.locator("h1").textContent(), /キュー/);
  assert.match(await tab.locator("#queue thead").textContent(), /顧客/);
  await tab.goto(`${server.base}/case/C-100?lang=en`);
  assert.match(await tab.locator("#record h2").textContent(), /Handoff record/);
  await tab.close();
});
