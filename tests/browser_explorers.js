// Drives JupyterLab in headless Chromium (playwright-core): open a notebook, run all cells, move
// one slider of every explorer with the keyboard, wait for its figure to change, screenshot it.
// Called by tests/test_browser.py with one JSON argument; prints one JSON line with the results.
const path = require("path");
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, "node_modules", "playwright-core"));

const cfg = JSON.parse(process.argv[2]);

async function main() {
  const context = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
  const result = { explorers: [], errors: [] };
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  page.on("pageerror", (err) => result.errors.push(String(err)));
  const start = Date.now();
  try {
    await page.goto(cfg.url, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(".jp-NotebookPanel .jp-Cell", { timeout: 120000 });
    // a kernel dialog should not appear (the settings start the notebook's kernel); accept it if it does
    await page.waitForTimeout(1000);
    if (await page.locator(".jp-Dialog").count()) {
      result.dialog = await page.locator(".jp-Dialog").innerText();
      await page.locator(".jp-Dialog .jp-mod-accept").click();
    }
    await page.waitForSelector(".jp-Notebook-ExecutionIndicator", { timeout: 120000 });
    const idle = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]';
    await page.waitForSelector(idle, { timeout: 120000 });          // the kernel has started
    result.kernel_ready_s = (Date.now() - start) / 1000;

    // Run > Run All Cells; a kernel that is still connecting can drop the request, so retry
    // until a code cell shows [*] or an execution count
    const runStart = Date.now();
    result.run_all_attempts = 0;
    for (;;) {
      result.run_all_attempts += 1;
      await page.locator(".lm-MenuBar-itemLabel", { hasText: /^Run$/ }).click();
      await page.locator(".lm-Menu-itemLabel", { hasText: /^Run All Cells$/ }).click();
      try {
        await page.waitForFunction(
          () => [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
            .some((p) => /\[(\*|\d+)\]/.test(p.textContent)),
          null, { timeout: 20000, polling: 250 });
        break;
      } catch (err) {
        if (result.run_all_attempts >= 4) throw new Error("Run All Cells never started the cells");
      }
    }
    await page.waitForFunction(
      (n) => document.querySelectorAll(".mmcourse-explorer img").length >= n,
      cfg.explorers.length, { timeout: cfg.run_timeout_ms, polling: 500 });
    await page.waitForFunction(
      () => ![...document.querySelectorAll(".jp-InputPrompt")].some((p) => p.textContent.includes("*")),
      null, { timeout: cfg.run_timeout_ms, polling: 500 });
    result.run_all_s = (Date.now() - runStart) / 1000;
    result.tracebacks = await page.locator(".jp-OutputArea-output", { hasText: "Traceback" }).count();

    for (const name of cfg.explorers) {
      const selector = `.mmcourse-${name}`;
      const box = page.locator(selector).first();
      await box.scrollIntoViewIfNeeded();
      const img = box.locator("img").first();
      const before = await img.getAttribute("src");
      const textBefore = await box.locator(".widget-html").last().innerText();
      const handle = box.locator(".widget-slider .noUi-handle").first();
      await handle.focus();
      const pressed = Date.now();
      await page.keyboard.press("ArrowRight");
      await page.waitForFunction(
        ([sel, old]) => {
          const el = document.querySelector(`${sel} img`);
          return el && el.getAttribute("src") !== old && el.complete && el.naturalWidth > 0;
        },
        [selector, before], { timeout: 60000, polling: 50 });
      const changedMs = Date.now() - pressed;
      await page.waitForTimeout(200);
      const textAfter = await box.locator(".widget-html").last().innerText();
      const shot = path.join(cfg.outdir, `explorer-${name}.png`);
      await box.screenshot({ path: shot });
      result.explorers.push({ name, changed_ms: changedMs, src_changed: true, text_before: textBefore,
                              text_after: textAfter, screenshot: shot });
    }
  } catch (err) {
    result.errors.push(String(err && err.stack || err));
    try { await page.screenshot({ path: path.join(cfg.outdir, "failure.png"), fullPage: true }); } catch (e) {}
  } finally {
    result.total_s = (Date.now() - start) / 1000;
    await context.close();
  }
  console.log(JSON.stringify(result));
}

main();
