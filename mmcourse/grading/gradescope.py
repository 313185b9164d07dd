"""A Gradescope autograder for an exercise: the bundle to upload, and what runs inside it.

``mmcourse gradescope 04_attention --out autograder.zip`` writes the zip Gradescope's
"Autograder configuration" takes unchanged (its documented layout): ``setup.sh`` (run once, as
root, when Gradescope builds the image: Python, bubblewrap, a CPU torch and this package, which
the zip carries as source) and ``run_autograder`` (run per submission). The latter grades the
notebook in ``/autograder/submission/`` on hidden cases exactly as ``mmcourse grade`` does and
writes ``/autograder/results/results.json``: one test per part, with its score, max score,
status and the student's feedback (``feedback.py``: never a hidden case's content).
Free-response questions are not scored here: add them as manually graded questions in
Gradescope (their rubrics are in the solution notebook).
"""

from __future__ import annotations

import json
import stat
import sys
import time
import zipfile
from pathlib import Path

from mmcourse.grading import feedback, masters, problems, runner

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
/autograder/venv/bin/pip install -q "torch{torch}" --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -q /autograder/source/mmcourse
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission. AUTOGRADER_ROOT and MMCOURSE_PYTHON exist for
# testing the bundle outside Gradescope; on Gradescope they are unset.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{MMCOURSE_PYTHON:-$ROOT/venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$ROOT/source/mmcourse"
"$PY" -m mmcourse.grading gradescope-run "$ROOT/submission" "$ROOT/results/results.json" \\
    --exercise {exercise} "$@"
"""

SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def _torch_bound() -> str:
    text = (masters.ROOT / "pyproject.toml").read_text()
    start = text.index('"torch') + len('"torch')
    return text[start: text.index('"', start)]


def bundle(exercise: str, out: Path, root: Path = masters.ROOT) -> Path:
    """Write the autograder zip for ``exercise``."""
    ex = problems.get_exercise(exercise)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scripts = {"setup.sh": SETUP_SH.format(torch=_torch_bound()),
               "run_autograder": RUN_AUTOGRADER.format(exercise=ex.name)}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o755) << 16   # executable, as Gradescope needs
            z.writestr(info, text)
        files = [root / f for f in SOURCE_FILES if (root / f).exists()]
        files += [p for p in sorted((root / "mmcourse").rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
        files += [root / "masters" / f"{ex.name}.py"]
        for p in files:
            z.write(p, f"mmcourse/{p.relative_to(root)}")
    return out


def results(report: runner.Report) -> dict:
    """``results.json`` for one graded submission (Gradescope's format)."""
    hints = {p.id: p.hint for p in problems.get_exercise(report.exercise).parts}
    tests = [{"name": f"{p.id}: {p.function}", "number": str(i + 1), "score": p.score, "max_score": p.points,
              "status": "passed" if p.score == p.points else "failed",
              "output": feedback.part_feedback(p, hints.get(p.id, "")), "visibility": "visible"}
             for i, p in enumerate(report.parts)]
    run = report.execution.get("status", "skipped")
    output = (f"{report.exercise}: {report.score:g} / {report.max_score:g} auto-graded points. "
              f"Notebook run in a fresh kernel: {run}.")
    return {"score": report.score, "execution_time": int(round(report.seconds)), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def failed_results(why: str, exercise: problems.Exercise) -> dict:
    tests = [{"name": f"{p.id}: {p.function}", "number": str(i + 1), "score": 0.0, "max_score": p.points,
              "status": "failed", "output": why, "visibility": "visible"}
             for i, p in enumerate(exercise.parts)]
    return {"score": 0.0, "output": why, "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests}


def run(submission_dir: Path, results_path: Path, exercise: str, **options) -> int:
    """Inside Gradescope: grade the submitted notebook, write ``results.json`` (always)."""
    ex = problems.get_exercise(exercise)
    start = time.monotonic()
    notebooks = sorted(p for p in Path(submission_dir).rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts)
    mine = [p for p in notebooks if p.stem.startswith(ex.name[:2])] or notebooks
    if len(mine) != 1:
        why = (f"expected one notebook for {ex.name} in the submission, found "
               f"{', '.join(p.name for p in notebooks) or 'none'}; upload only your {ex.name}.ipynb")
        data = failed_results(why, ex)
    else:
        try:
            data = results(runner.grade_notebook(mine[0], exercise=ex.name, **options))
        except Exception as err:   # the student always gets a result and a reason
            data = failed_results(f"the grader failed ({type(err).__name__}); tell your instructor", ex)
    data.setdefault("execution_time", int(round(time.monotonic() - start)))
    results_path = Path(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(data, indent=2))
    print(data["output"], file=sys.stderr)
    return 0
