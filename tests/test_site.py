"""The course website (``python3 course.py site``): what a reader finds on it, and in a browser.

``course.py test`` builds the site once (``docs/site/build.py``, which fails on any Sphinx
warning) and points ``MMCOURSE_SITE`` at it; run alone, these tests build it themselves. The
browser test serves it on 127.0.0.1 and reads it in Debian's Chromium with playwright-core,
installed the way ``tests/test_browser.py`` installs them, with every request that would leave
the local server blocked and reported.
"""

from __future__ import annotations

import ast
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import nbformat
import pytest
from test_browser import CACHE, CHROMIUM, ensure_chromium, ensure_playwright, shrink_png

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "docs" / "site" / "build.py"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = {p.name for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")}
SCREENSHOT_CHAPTER = "notebooks/04_attention.html"     # maths, a figure and the chapter's note

#: every test here builds the whole site (tens of seconds): the slow tier, left out by --fast
pytestmark = pytest.mark.slow


def build(out: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), "--root", str(root), "--out", str(out / "html"),
                           "--src", str(out / "src")], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("MMCOURSE_SITE")
    if built and (Path(built) / "index.html").is_file():
        return Path(built)
    out = tmp_path_factory.mktemp("site")
    done = build(out)
    assert done.returncode == 0, f"the site build failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out / "html"


def text_of(page: Path) -> str:
    """What a reader sees of a page, roughly: its text without tags."""
    body = page.read_text(encoding="utf-8")
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def pre_text(page: Path) -> str:
    """The text of the page's literal blocks (``<pre>``), whitespace collapsed."""
    blocks = re.findall(r"<pre\b.*?</pre>", page.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(" ".join(html.unescape(re.sub(r"<[^>]+>", "", b)).split()) for b in blocks)


def title_of(path: Path) -> str:
    for cell in nbformat.read(path, as_version=4).cells:
        found = re.search(r"^#\s+(.+)$", cell.source, flags=re.M) if cell.cell_type == "markdown" else None
        if found:
            return found[1].strip()
    return path.stem


# ---------------------------------------------------------------------------------------------
# What the pages hold
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_page_says_how_to_open_it_and_links_its_exercise(site, chapter):
    page = site / "notebooks" / f"{chapter.stem}.html"
    assert page.is_file(), f"no page for {chapter.name}"
    text = " ".join(text_of(page).split())
    assert f"notebooks/{chapter.name}" in text and "python3 course.py lab" in text
    links = re.findall(r'href="([^"#]+)', page.read_text(encoding="utf-8"))
    if chapter.name in EXERCISES:
        assert f"../exercises/{chapter.stem}.html" in links, "the chapter does not link its exercise"
        assert (site / "exercises" / f"{chapter.stem}.html").is_file()
    else:
        assert "has no graded exercise" in text


def test_exercise_pages_say_how_they_are_graded_and_no_solution_is_published(site):
    assert not [p for p in site.rglob("*") if "solution" in p.name.lower()]
    for name in EXERCISES:
        text = text_of(site / "exercises" / name.replace(".ipynb", ".html"))
        assert "Graded exercises" in text and "hidden cases" in text
    assert "mmcourse grade submissions/" in text_of(site / "exercises.html")
    # code that only the solutions hold appears nowhere on the site
    pages = "\n".join(" ".join(text_of(p).split()) for p in site.rglob("*.html"))
    checked = 0
    for name in sorted(EXERCISES):
        exercise = {line.strip() for cell in nbformat.read(ROOT / "exercises" / name, as_version=4).cells
                    for line in cell.source.splitlines()}
        solution = nbformat.read(ROOT / "solutions" / name, as_version=4)
        only = [line.strip() for cell in solution.cells if cell.cell_type == "code"
                for line in cell.source.splitlines()
                if len(line.strip()) > 30 and line.strip() not in exercise]
        for line in only:
            assert " ".join(line.split()) not in pages, f"solution code of {name} is on the site: {line}"
            checked += 1
    assert checked > len(EXERCISES), "found too few solution-only lines to check"


def module_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "mmcourse").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if path.name == "__init__.py":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))
    return names


def formula_blocks(docstring: str) -> list[list[str]]:
    """The indented blocks of a docstring that follow a blank line: its displayed formulas."""
    blocks, lines = [], docstring.splitlines()
    for i, line in enumerate(lines):
        starts = (i >= 2 and not lines[i - 1].strip() and line.startswith("    ")
                  and lines[i - 2].strip() and not lines[i - 2].startswith(" ")
                  and not re.match(r"\s*([-*+•]|\d+[.)])\s", line))
        if starts:
            block = []
            for follow in lines[i:]:
                if follow.strip() and not follow.startswith(" "):
                    break
                block.append(follow)
            blocks.append([b.strip() for b in block if b.strip()])
    return blocks


def test_every_module_has_a_reference_page_showing_its_formulas(site):
    modules = module_names()
    assert "mmcourse.models.attention" in modules and len(modules) > 20
    formulas = 0
    for module in modules:
        page = site / "reference" / f"{module}.html"
        assert page.is_file(), f"no reference page for {module}"
        source = ROOT / Path(*module.split("."))
        source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
        docstring = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))) or ""
        shown = pre_text(page)
        for block in formula_blocks(docstring):
            for line in block:
                assert " ".join(line.split()) in shown, f"{module}: formula line not shown as written: {line}"
                formulas += 1
    assert formulas > 20, "the module docstrings state their formulas; too few were found"
    attention = text_of(site / "reference" / "mmcourse.models.attention.html")
    assert "scaled_dot_product_attention" in attention
    assert "Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V" in attention


def test_benchmarks_page_lists_every_script_and_the_committed_logs(site):
    text = text_of(site / "benchmarks.html")
    for script in (ROOT / "benchmarks").glob("bench_*.py"):
        assert script.name in text and f"python benchmarks/{script.name}" in text
    logs = [p for p in (ROOT / "docs" / "benchmarks").glob("*") if p.is_file()] \
        if (ROOT / "docs" / "benchmarks").is_dir() else []
    for log in logs:
        assert f"docs/benchmarks/{log.name}" in text
    assert ("No benchmark log is committed yet" in text) == (not logs)


def test_explorers_page_shows_every_screenshot_and_how_to_run_them_live(site):
    page = (site / "explorers.html").read_text(encoding="utf-8")
    for shot in (ROOT / "docs" / "img").glob("explorer-*.png"):
        src = re.search(rf'<img [^>]*src="([^"]*{re.escape(shot.name)})"', page)
        assert src, f"{shot.name} is not on the explorers page"
        assert (site / src[1]).is_file()
    assert "Run them live" in text_of(site / "explorers.html")


def test_site_extra_is_installed_by_dev():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["site"]) <= set(extras["dev"]), "course.py test installs dev and builds the site"


# ---------------------------------------------------------------------------------------------
# Picks up new chapters; broken content fails the build
# ---------------------------------------------------------------------------------------------
def small_course(root: Path) -> None:
    """A course of three chapters (00, 02 with an exercise, and 11), a README, a benchmark and
    two logs, and no package."""
    (root / "notebooks").mkdir(parents=True)
    (root / "exercises").mkdir()
    (root / "benchmarks").mkdir()
    (root / "README.md").write_text("# A small course\n\nIntro.\n\n## Set-up\n\n    python3 course.py lab\n\n"
                                    "## Graded exercises\n\nGrade them.\n")
    chapters = [("00_start", "00 · Start"), ("02_more", "02 · More $x^2$"), ("11_new_topic", "11 · New")]
    for name, title in chapters:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n\nText $a+b$.")])
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Exercise 02\n\nDo it.")])
    nbformat.write(nb, root / "exercises" / "02_more.ipynb")
    (root / "benchmarks" / "bench_speed.py").write_text(
        '"""How fast.\n\n    python benchmarks/bench_speed.py\n"""\n')
    logs = root / "docs" / "benchmarks"
    logs.mkdir(parents=True)
    (logs / "speed-h200.log").write_text("device: NVIDIA H200, 2026-11-30\n42 samples/s\n")
    (logs / "summary.md").write_text("| model | s/epoch |\n| --- | --- |\n| cnn | 0.55 |\n")


def test_new_chapters_are_picked_up_and_broken_content_fails_the_build(tmp_path):
    course = tmp_path / "course"
    small_course(course)
    done = build(tmp_path / "ok", course)
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "ok" / "html"
    index = (site / "index.html").read_text(encoding="utf-8")
    part_ii = index.split("Part II", 1)
    assert len(part_ii) == 2 and "notebooks/11_new_topic.html" in part_ii[1]
    assert "notebooks/00_start.html" in part_ii[0] and "notebooks/02_more.html" in part_ii[0]
    assert '../exercises/02_more.html' in (site / "notebooks" / "02_more.html").read_text(encoding="utf-8")
    benchmarks = " ".join(text_of(site / "benchmarks.html").split())
    for shown in ("bench_speed.py", "python benchmarks/bench_speed.py", "docs/benchmarks/speed-h200.log",
                  "device: NVIDIA H200, 2026-11-30", "docs/benchmarks/summary.md", "cnn 0.55"):
        assert shown in benchmarks, f"the benchmarks page does not show {shown!r}"
    assert "No benchmark log is committed yet" not in benchmarks

    # a missing image, a link to a page that does not exist, a notebook that does not parse
    nb = nbformat.read(course / "notebooks" / "02_more.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("![a figure](figure_that_is_missing.png)\n\n"
                                                  "[the exercise](../exercises/99_gone.ipynb)"))
    nbformat.write(nb, course / "notebooks" / "02_more.ipynb")
    (course / "notebooks" / "03_broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    done = build(tmp_path / "broken", course)
    assert done.returncode != 0
    log = done.stdout + done.stderr
    for culprit in ("figure_that_is_missing.png", "99_gone", "03_broken"):
        assert culprit in log, f"the failed build does not name {culprit}:\n{log[-3000:]}"


# ---------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.browser
def test_site_in_chromium(site, tmp_path):
    ensure_chromium()
    playwright, _ = ensure_playwright()
    shots = CACHE / "site"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    chapters = [f"notebooks/{p.stem}.html" for p in CHAPTERS]
    pages = ["index.html", *chapters, "exercises.html", "explorers.html", "reference.html", "benchmarks.html",
             *sorted(f"exercises/{n.replace('.ipynb', '.html')}" for n in EXERCISES)]
    # a word of the last chapter's title that the search must find on that chapter's page
    last = CHAPTERS[-1]
    term = max(re.findall(r"[A-Za-z]{6,}", title_of(last)), key=len)
    screenshots = {"index.html": str(shots / "site-index.png"),
                   SCREENSHOT_CHAPTER if SCREENSHOT_CHAPTER in chapters else chapters[-1]:
                       str(shots / "site-chapter.png")}
    handler = functools.partial(QuietHandler, directory=site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = {"base": f"http://127.0.0.1:{server.server_address[1]}/", "pages": pages,
                  "chromium": str(CHROMIUM), "profile": str(tmp_path / "chromium-profile"),
                  "outdir": str(shots), "search_term": term, "screenshots": screenshots}
        driver = subprocess.run(["node", str(ROOT / "tests" / "browser_site.js"), json.dumps(config)],
                                capture_output=True, text=True, timeout=900,
                                env={**os.environ, "PLAYWRIGHT_DIR": str(playwright)})
    finally:
        server.shutdown()
        server.server_close()
    lines = [line for line in driver.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the browser driver printed no result (exit {driver.returncode}):\n{driver.stderr[-3000:]}"
    result = json.loads(lines[-1])
    (shots / "result.json").write_text(json.dumps(result, indent=1))
    print({k: result[k] for k in ("total_s", "links_checked")},
          [(p["page"], p["maths"]) for p in result["pages"]])

    assert not result["errors"], f"browser errors: {result['errors']} (see {shots / 'failure.png'})"
    assert not result["outside"], f"the site asked for something outside it: {result['outside'][:5]}"
    assert not result["failed"], f"requests that failed: {result['failed'][:10]}"
    seen = {p["page"]: p for p in result["pages"]}
    assert list(seen) == pages
    for page in result["pages"]:
        assert not page["raw_maths"], f"{page['page']}: maths left unrendered: {page['raw_maths'][:3]}"
        for image in page["images"]:
            assert image["width"] > 0, f"{page['page']}: image did not load: {image['src']}"
    for chapter, page in zip(CHAPTERS, chapters, strict=True):
        nb = nbformat.read(chapter, as_version=4)
        if any("$" in cell.source for cell in nb.cells if cell.cell_type == "markdown"):
            assert seen[page]["maths"] > 0, f"{page}: no maths rendered"
        outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
        figures = sum("image/png" in out.get("data", {}) for out in outputs)
        assert len(seen[page]["images"]) >= figures, f"{page}: {figures} figures stored, fewer shown"
    shown = sum(len(p["images"]) for p in result["pages"] if p["page"] == "explorers.html")
    assert shown >= len(list((ROOT / "docs" / "img").glob("explorer-*.png")))

    # the sidebar: every chapter, under its part
    captions = {entry["caption"]: [p["href"] for p in entry["pages"]] for entry in result["sidebar"]}
    for chapter, page in zip(CHAPTERS, chapters, strict=True):
        part = "Part I —" if int(chapter.name[:2]) < 11 else "Part II —"
        under = [c for c, hrefs in captions.items()
                 if c.startswith(part) and any(h.endswith(page) for h in hrefs)]
        assert under, f"the sidebar does not list {page} under {part}: {captions}"

    found = [h.split("?")[0].split("#")[0] for h in result["search"]]
    assert any(h.endswith(f"notebooks/{last.stem}.html") for h in found), \
        f"searching {term!r} did not find {last.name}: {result['search']}"
    assert result["links_checked"] > 100 and not result["broken_links"], result["broken_links"]
    for shot in screenshots.values():
        assert Path(shot).stat().st_size > 20000, f"{shot}: empty screenshot"
    if os.environ.get("MMCOURSE_UPDATE_SCREENSHOTS") == "1":
        for shot in screenshots.values():
            shrink_png(Path(shot), ROOT / "docs" / "img" / Path(shot).name, colours=128)
