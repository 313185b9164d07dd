// Reads the course website in headless Chromium (playwright-core), as a reader would.
// Called by tests/test_site.py with one JSON argument; prints one JSON line with what it saw:
// per page the maths left raw, the images that did not load and the links; the sidebar; the
// search results; every request that left the local server; the screenshots it took.
const path = require("path");
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, "node_modules", "playwright-core"));

const cfg = JSON.parse(process.argv[2]);

// in the page: text a reader sees that still looks like TeX (outside code, scripts and MathJax)
function rawMaths() {
  const skip = "pre, code, script, style, textarea, .MathJax, .MathJax_Display, .MathJax_Preview, .highlight";
  const walker = document.createTreeWalker(document.querySelector("main") || document.body,
                                           NodeFilter.SHOW_TEXT);
  const found = [];
  const tex = /\\(frac|sqrt|sum|prod|mathrm|mathbb|mathcal|top|left|right|begin|[()[\]])|\$[^$\s][^$]*\$/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest(skip) || !el.getClientRects().length) continue;
    if (tex.test(node.textContent)) found.push(node.textContent.trim().slice(0, 120));
  }
  return found;
}

async function main() {
  const context = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
  const result = { pages: [], errors: [], outside: [], failed: [], screenshots: [] };
  // nothing may come from anywhere but the local server
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(cfg.base) || /^(about|data|blob):/.test(url)) return route.continue();
    result.outside.push(url);
    return route.abort();
  });
  context.on("requestfailed", (req) => {
    if (req.url().startsWith(cfg.base)) result.failed.push(`${req.url()} ${req.failure().errorText}`);
  });
  context.on("response", (res) => { if (res.status() >= 400) result.failed.push(`${res.url()} ${res.status()}`); });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  page.on("pageerror", (err) => result.errors.push(String(err)));
  const start = Date.now();
  try {
    for (const rel of cfg.pages) {
      await page.goto(cfg.base + rel, { waitUntil: "load" });
      // MathJax 2 typesets after load: wait for its queue to drain
      const maths = await page.evaluate(() => new Promise((resolve) => {
        if (!window.MathJax || !window.MathJax.Hub) return resolve(0);
        window.MathJax.Hub.Queue(() => resolve(document.querySelectorAll("span.MathJax").length));
      }));
      // every image, loaded (lazy ones are made eager and awaited)
      const images = await page.evaluate(async () => {
        const imgs = [...document.querySelectorAll("img")];
        imgs.forEach((img) => { img.loading = "eager"; });
        await Promise.all(imgs.map((img) => (img.complete ? null : new Promise((r) => {
          img.addEventListener("load", r); img.addEventListener("error", r);
        }))));
        return imgs.map((img) => ({ src: img.currentSrc || img.src, width: img.naturalWidth }));
      });
      const links = await page.evaluate(() => [...document.querySelectorAll("a[href]")]
        .map((a) => a.href).filter((h) => h.startsWith("http")));
      const title = await page.title();
      result.pages.push({ page: rel, title, maths, raw_maths: await page.evaluate(rawMaths), images, links });
      const shot = cfg.screenshots[rel];
      if (shot) {
        await page.screenshot({ path: shot });
        result.screenshots.push(shot);
      }
    }

    // the sidebar of the index: its captions and the pages under each
    await page.goto(cfg.base + "index.html", { waitUntil: "load" });
    result.sidebar = await page.evaluate(() => {
      const nav = document.querySelector(".bd-docs-nav, nav.bd-links");
      if (!nav) return [];
      const out = [];
      for (const el of nav.querySelectorAll("p.caption, .caption, a.reference")) {
        if (el.matches("a")) {
          if (out.length) out[out.length - 1].pages.push({ text: el.innerText.trim(), href: el.href });
        } else {
          out.push({ caption: el.innerText.trim(), pages: [] });
        }
      }
      return out;
    });

    // search, through the search box as a reader would
    const box = page.locator("input[name='q']").first();
    if (!(await box.isVisible())) await page.keyboard.press("Control+k");
    await page.locator("input[name='q']:visible").first().fill(cfg.search_term);
    await page.locator("input[name='q']:visible").first().press("Enter");
    await page.waitForURL(/search\.html/);
    await page.waitForFunction(() => {
      const status = document.querySelector("#search-results .search-summary, #search-results p");
      return status && !/Searching|Preparing/i.test(status.innerText);
    }, null, { timeout: 60000, polling: 250 });
    result.search = await page.evaluate(() => [...document.querySelectorAll("#search-results ul.search li a")]
      .map((a) => a.href));

    // every link to this site resolves: the file is served and the anchor exists on it
    const targets = new Map();
    for (const p of result.pages) {
      for (const href of p.links) {
        if (!href.startsWith(cfg.base)) continue;
        const [file, anchor] = href.split("#");
        if (!targets.has(file)) targets.set(file, new Set());
        if (anchor) targets.get(file).add(decodeURIComponent(anchor));
      }
    }
    result.links_checked = 0;
    result.broken_links = [];
    for (const [file, anchors] of targets) {
      const res = await context.request.get(file);
      result.links_checked += 1 + anchors.size;
      if (!res.ok()) { result.broken_links.push(`${file} (${res.status()})`); continue; }
      const body = await res.text();
      for (const anchor of anchors) {
        if (!body.includes(`id="${anchor}"`)) result.broken_links.push(`${file}#${anchor}`);
      }
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
