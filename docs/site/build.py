"""Build the course website: a static HTML book of the committed notebooks (no re-execution).

    python docs/site/build.py [--out build/site]      # what `python3 course.py site` runs

Runs in the course's virtual environment (Sphinx, myst-nb, sphinx-book-theme, and MathJax from
the ``jupyter-server-mathjax`` package). It lays out a source tree under ``build/site-src/``:

* ``notebooks/``, ``exercises/`` -- copies of whatever ``NN_*.ipynb`` files exist (and the capstone; never
  ``solutions/``), each with one note added after its opening cell: how to open it locally and
  a link to the chapter's exercise (or, on an exercise, to its chapter and how it is graded);
* ``index.md`` -- the README's introduction, set-up and data, then the syllabus, generated from
  the notebooks present: chapters 00-10 under "Part I", 11 onward under "Part II";
* ``exercises.md``, ``explorers.md``, ``reference.md``, ``benchmarks.md`` -- the README's
  section on each, plus the exercise list, the package reference (autosummary, recursive over
  whatever modules ``mmcourse`` has) and the benchmark scripts with any logs committed under
  ``docs/benchmarks/``;

then runs ``sphinx-build -W`` (any warning -- a missing image, a broken cross-reference, a
notebook that does not parse -- fails the build) with ``docs/site/conf.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # --root changes it (the tests build small courses)
CONF_DIR = Path(__file__).resolve().parent
NAME = re.compile(r"^(\d\d)_\w+\.ipynb$")
PART_II_FROM = 11
PARTS = [("Part I — Foundations", lambda n: n < PART_II_FROM),
         ("Part II — Pretraining, multimodal transformers, alignment and generation",
          lambda n: n >= PART_II_FROM)]
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


# ---------------------------------------------------------------------------------------------
# Reading the repository
# ---------------------------------------------------------------------------------------------
def readme_sections() -> dict[str, str]:
    """The README split at its ``## `` headings: ``{"title": its first line, "": the introduction,
    "Set-up": ..., ...}``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    title, _, intro = parts[0].partition("\n") if parts[0].startswith("# ") else ("# mmcourse", "", parts[0])
    sections = {"title": title.strip(), "": intro.strip()}
    for title, body in zip(parts[1::2], parts[2::2]):
        sections[title.strip()] = body.strip()
    return sections


def readme_syllabus() -> dict[str, str]:
    """``{notebook file name: what it teaches}`` from the README's syllabus table."""
    rows = {}
    for line in readme_sections().get("Syllabus", "").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        found = re.search(r"\(notebooks/([\w.]+\.ipynb)\)", cells[1]) if len(cells) >= 4 else None
        if found:
            rows[found[1]] = cells[-1]
    return rows


def numbered(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).glob("*.ipynb") if NAME.match(p.name))


def title_of(nb: dict, fallback: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            found = re.search(r"^#\s+(.+)$", "".join(cell["source"]), flags=re.M)
            if found:
                return found[1].strip()
    return fallback


UNREADABLE: list[str] = []     # notebooks that do not parse: left out, and the build fails


def load(path: Path) -> dict | None:
    """The notebook, or None (and a line in ``UNREADABLE``) where it does not parse."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
        return nb
    except ValueError as err:
        UNREADABLE.append(f"{path.relative_to(ROOT)}: the notebook does not parse: {err}")
        return None


# ---------------------------------------------------------------------------------------------
# Writing the source tree
# ---------------------------------------------------------------------------------------------
def fix_links(markdown: str, src: Path) -> str:
    """README links are relative to the repository root; the pages live at the root of ``src``.
    A link to something that is not on the site (a solution, a file in the repository) becomes
    the file's name in code, so the site has no dead link."""
    def repl(m: re.Match) -> str:
        text, target = m[1], m[2]
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m[0]
        if (src / target.split("#")[0]).exists():
            return m[0]
        return f"`{target}`" if text.strip("`") == target else f"{text} (`{target}`)"
    return LINK.sub(repl, markdown)


def write(dst: Path, nb: dict | None, note: str) -> None:
    """``nb`` with a markdown cell holding ``note`` after its opening cell (the title)."""
    if nb is None:
        return
    cell = {"cell_type": "markdown", "metadata": {}, "source": note}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = "mmcourse-site-note"                  # cell ids exist from nbformat 4.5 on
    nb["cells"].insert(1 if nb["cells"] else 0, cell)
    dst.write_text(json.dumps(nb), encoding="utf-8")


def chapter_note(path: Path, exercise: Path | None, exercise_title: str | None) -> str:
    run_it = (f"This page shows `notebooks/{path.name}` with the outputs stored in the repository. "
              "To run it yourself, from the repository root run `python3 course.py lab` (it sets "
              "up `.venv/` and opens JupyterLab at the repository root, on chapter 00), open "
              f"`notebooks/{path.name}` and choose *Run ▸ Run All Cells*.")
    if exercise:
        practise = (f"**Exercise:** [{exercise_title}](../exercises/{exercise.name}) — graded; "
                    "see [Graded exercises](../exercises.md) for how.")
    else:
        practise = "This chapter has no graded exercise."
    return f":::{{admonition}} Open this chapter locally\n:class: tip\n\n{run_it}\n\n{practise}\n:::\n"


def exercise_note(path: Path, chapter: Path | None, chapter_title: str | None) -> str:
    back = f"It goes with chapter [{chapter_title}](../notebooks/{chapter.name}). " if chapter else ""
    return (":::{admonition} Work on this exercise\n:class: note\n\n"
            f"{back}Hand-out notebook `exercises/{path.name}`: fill in the stubs, and each "
            "`check(...)` cell tests your code on public cases at once. Open it in "
            "`python3 course.py lab` (JupyterLab at the repository root: the `exercises/` folder, "
            "or the closing link of its chapter). Instructors grade it on hidden cases: "
            "see [Graded exercises](../exercises.md).\n:::\n")


def write_notebooks(src: Path) -> tuple[list[tuple[int, str, str, Path | None]], list[str]]:
    """Copy chapters and exercises with their notes; returns the chapters
    ``(number, title, page, exercise)`` and the exercise pages."""
    (src / "notebooks").mkdir(parents=True)
    (src / "exercises").mkdir()
    exercises = {p.name[:2]: p for p in numbered("exercises")}
    chapters = {p.name[:2]: p for p in numbered("notebooks")}
    notebooks = {p: load(p) for p in [*exercises.values(), *chapters.values()]}
    titles = {p: title_of(nb, p.stem) if nb else p.stem for p, nb in notebooks.items()}
    rows = []
    for number, path in chapters.items():
        exercise = exercises.get(number)
        write(src / "notebooks" / path.name, notebooks[path],
              chapter_note(path, exercise, titles.get(exercise)))
        if notebooks[path] is not None:
            rows.append((int(number), titles[path], f"notebooks/{path.name}", exercise))
    pages = []
    for number, path in exercises.items():
        chapter = chapters.get(number)
        write(src / "exercises" / path.name, notebooks[path],
              exercise_note(path, chapter, titles.get(chapter)))
        if notebooks[path] is not None:
            pages.append(f"exercises/{path.stem}")
    for path in sorted((ROOT / "exercises").glob("capstone*.ipynb")):   # the project after Part I
        nb = load(path)
        write(src / "exercises" / path.name, nb, exercise_note(path, None, None))
        if nb is not None:
            pages.append(f"exercises/{path.stem}")
    return rows, pages


def toctree(caption: str | None, entries: list[str], hidden: bool = True) -> str:
    options = (f":caption: {caption}\n" if caption else "") + (":hidden:\n" if hidden else "")
    return "```{toctree}\n:maxdepth: 1\n" + options + "\n" + "\n".join(entries) + "\n```\n"


def index_page(readme: dict[str, str], chapters: list) -> str:
    teaches = readme_syllabus()
    out = [readme["title"] + "\n", readme[""],
           "\n## Set-up\n", readme.get("Set-up", ""), "\n## The data\n", readme.get("The data", ""),
           "\n## Syllabus\n",
           "Read the chapters in order. Each page shows a notebook with its stored outputs and says "
           "how to open it locally; each chapter from 02 on links to its graded exercise.\n"]
    tocs = []
    for caption, belongs in PARTS:
        rows = [c for c in chapters if belongs(c[0])]
        if not rows:
            continue
        out += [f"\n### {caption}\n", "| chapter | exercise | what it teaches |", "| --- | --- | --- |"]
        for _, title, page, exercise in rows:
            ex = f"[exercise](exercises/{exercise.name})" if exercise else "—"
            out.append(f"| [{title}]({page}) | {ex} | {teaches.get(Path(page).name, '')} |")
        tocs.append(toctree(caption, [page.removesuffix(".ipynb") for _, _, page, _ in rows]))
    practice = ["exercises", "explorers", "reference", "benchmarks"]
    if not (ROOT / "mmcourse").is_dir():
        practice.remove("reference")
    tocs.append(toctree("Practice and reference", practice))
    return "\n".join(out) + "\n\n" + "\n".join(tocs)


def exercises_page(readme: dict[str, str], pages: list[str]) -> str:
    return ("# Graded exercises\n\n" + readme.get("Graded exercises", "") + "\n\n"
            "Solutions are kept out of this site. The exercises:\n\n" + toctree(None, pages, hidden=False))


def explorers_page(readme: dict[str, str]) -> str:
    return ("# Interactive explorers\n\n" + readme.get("Interactive explorers", "") + "\n\n"
            "## Run them live\n\nThe pictures above are screenshots; the explorers need a running "
            "Python kernel. Open a chapter from 04 to 09 with `python3 course.py lab`, run its cells "
            "and move the sliders, or open the gallery of all six with `.venv/bin/jupyter lab "
            "docs/explorers.ipynb` from the repository root.\n")


def reference_page(readme: dict[str, str]) -> str:
    return ("# Package reference\n\n" + readme.get("The package", "") + "\n\n"
            "Every module below is documented from its docstrings; a module's docstring states the "
            "formula it implements.\n\n"
            "```{eval-rst}\n.. autosummary::\n   :toctree: reference\n   :recursive:\n\n   mmcourse\n```\n")


def benchmarks_page(readme: dict[str, str], src: Path) -> str:
    out = ["# Benchmarks\n", readme.get("Tests and benchmarks", ""),
           "\n## The benchmark scripts\n",
           "Each script prints its figures; `python3 course.py bench` runs them all. Figures are "
           "quoted only from a run anyone can repeat.\n"]
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        summary = doc.split("\n\n", 1)[0].replace("\n", " ")
        commands = re.findall(r"^\s+(python .+)$", doc, flags=re.M) or [f"python benchmarks/{script.name}"]
        out += [f"\n### `{script.name}`\n", summary + "\n", "```bash\n" + "\n".join(commands) + "\n```\n"]
    out.append("\n## Committed logs\n")
    logs = sorted(p for p in (ROOT / "docs" / "benchmarks").glob("*") if p.is_file()) \
        if (ROOT / "docs" / "benchmarks").is_dir() else []
    if not logs:
        out.append("No benchmark log is committed yet (`docs/benchmarks/` holds none). To produce "
                   "one, run a script above and save what it prints, e.g. "
                   "`python benchmarks/bench_models.py | tee docs/benchmarks/models-cpu.log`; GPU "
                   "figures come from `bash scripts/gpu_check.sh`, whose logs name the device and "
                   "the date.\n")
    for log in logs:
        (src / "benchmark-logs").mkdir(exist_ok=True)
        shutil.copy(log, src / "benchmark-logs" / log.name)
        out.append(f"\n### `docs/benchmarks/{log.name}`\n")
        if log.suffix == ".md":
            out.append(f"```{{include}} benchmark-logs/{log.name}\n:heading-offset: 3\n```\n")
        else:
            out.append(f"```{{literalinclude}} benchmark-logs/{log.name}\n:language: text\n```\n")
    return "\n".join(out)


def write_sources(src: Path) -> None:
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    if (ROOT / "docs" / "img").is_dir():
        shutil.copytree(ROOT / "docs" / "img", src / "docs" / "img")   # the README's pictures
    chapters, exercise_pages = write_notebooks(src)
    readme = {k: fix_links(v, src) for k, v in readme_sections().items()}
    pages = {"index.md": index_page(readme, chapters),
             "exercises.md": exercises_page(readme, exercise_pages),
             "explorers.md": explorers_page(readme),
             "benchmarks.md": benchmarks_page(readme, src)}
    if (ROOT / "mmcourse").is_dir():
        pages["reference.md"] = reference_page(readme)
    for name, text in pages.items():
        (src / name).write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="the HTML goes here")
    parser.add_argument("--src", type=Path, default=ROOT / "build" / "site-src",
                        help="where the generated sources go (rewritten on every build)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course repository to build")
    args = parser.parse_args(argv)
    ROOT = args.root.resolve()
    start = time.perf_counter()
    src = args.src.resolve()
    write_sources(src)
    shutil.rmtree(args.out, ignore_errors=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E",
           "-c", str(CONF_DIR), "-d", str(src.parent / f"{src.name}-doctrees"), str(src),
           str(args.out.resolve())]
    done = subprocess.run(cmd, cwd=ROOT, check=False)
    for problem in UNREADABLE:
        print(f"ERROR: {problem}", file=sys.stderr)
    if done.returncode or UNREADABLE:
        print(f"site build failed (sphinx-build exit {done.returncode}, {len(UNREADABLE)} notebooks "
              "that do not parse); see the messages above", file=sys.stderr)
        return done.returncode or 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"site built in {time.perf_counter() - start:.0f} s: {args.out.resolve() / 'index.html'} "
          f"({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
