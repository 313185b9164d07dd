// Drives JupyterLab in headless Chromium (playwright-core). Called by tests/test_browser.py with one
// JSON argument; prints one JSON line with the results. Two modes:
// - explorers (default): open a notebook, run all cells, move one slider of every explorer with the
//   keyboard, wait for its figure to change, screenshot it;
// - course: open the server's front page as `course.py lab` serves it (it should land on chapter
//   00), open a chapter, click its closing link to ../exercises/... and check that the exercise opens.
const path = require("path");
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, "node_modules", "playwright-core"));

const cfg = JSON.parse(process.argv[2]);

function launch() {
  return chromium.launchPersistentContext(cfg.profile, {
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
}

// the label of the active document's tab in the main area
async function activeTab(page) {
  return page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel").first().innerText();
}

async function course() {
  const context = await launch();
  const result = { errors: [], load_error: "" };
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  page.on("pageerror", (err) => result.errors.push(String(err)));
  const start = Date.now();
  try {
    // 1. the front page, as a student opens the printed address: it lands on the first chapter
    await page.goto(cfg.url, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(".jp-NotebookPanel .jp-Cell", { timeout: 120000 });
    await page.waitForFunction((first) => location.pathname.endsWith("/lab/tree/" + first), cfg.first,
                               { timeout: 60000 });
    result.landing_url = page.url();
    result.landing_tab = await activeTab(page);
    await page.screenshot({ path: path.join(cfg.outdir, "course-landing.png") });
    // 2. a chapter, then its closing link to the exercise, clicked like a student would
    await page.goto(cfg.chapter_url, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => location.pathname.includes("/lab/tree/notebooks/"), null, { timeout: 60000 });
    const exerciseName = cfg.exercise.split("/").pop();
    const link = page.locator(`.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown a`, { hasText: exerciseName }).first();
    await link.waitFor({ state: "attached", timeout: 120000 });
    await link.scrollIntoViewIfNeeded();
    result.link_text = await link.innerText();
    await link.click();
    await page.waitForFunction((target) => location.pathname.endsWith("/lab/tree/" + target), cfg.exercise,
                               { timeout: 60000, polling: 250 });
    result.exercise_url = page.url();
    const panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first();
    await panel.locator(".jp-Cell").first().waitFor({ timeout: 60000 });
    await page.waitForTimeout(1000);
    result.exercise_text = (await panel.innerText()).slice(0, 20000);
    if (await page.locator(".jp-Dialog").count()) {
      result.load_error = await page.locator(".jp-Dialog").innerText();
    }
    await page.screenshot({ path: path.join(cfg.outdir, "course-exercise.png") });
  } catch (err) {
    result.errors.push(String(err && err.stack || err));
    try { await page.screenshot({ path: path.join(cfg.outdir, "failure.png"), fullPage: true }); } catch (e) {}
  } finally {
    result.total_s = (Date.now() - start) / 1000;
    await context.close();
  }
  console.log(JSON.stringify(result));
}

async function explorers() {
  const context = await launch();
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

if (cfg.mode === "course") course(); else explorers();
