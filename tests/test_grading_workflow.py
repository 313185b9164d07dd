"""The instructor's workflow around the grader: a class directory graded with --jobs, late
penalties, per-student feedback that reveals no hidden case, free-response answers collected
and their marks merged back, a Canvas CSV, a Gradescope bundle and its results.json, and a
similarity report that sees through renamed variables.

The formats are checked against what Canvas and Gradescope document: a JSON schema transcribed
from Gradescope's autograder specification, and Canvas's gradebook import columns. The committed
samples in docs/grading/ are what these exports look like.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import nbformat
import pytest

from mmcourse.grading import (
    canvas,
    classroom,
    demo_class,
    feedback,
    free_response,
    gradescope,
    late,
    masters,
    problems,
    runner,
    similarity,
)

pytestmark = pytest.mark.usefixtures("bubblewrap")
ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "04_attention"

# Gradescope's results.json, as its autograder specification documents it (top level and tests)
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number"}, "output": {"type": "string"},
        "output_format": FORMAT, "test_output_format": FORMAT, "test_name_format": FORMAT,
        "visibility": VISIBILITY, "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "name_format": FORMAT, "number": {"type": "string"}, "output": {"type": "string"},
                "output_format": FORMAT, "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": VISIBILITY, "extra_data": {"type": "object"}},
            "additionalProperties": False}},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "value": {},
                                             "order": {"enum": ["asc", "desc"]}},
            "required": ["name", "value"]}},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
}


def grade_cli(*args, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mmcourse.grading", "grade", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# ------------------------------------------------------------------------------ the whole class
@pytest.mark.slow
def test_a_class_graded_with_two_jobs(tmp_path):
    """Eight students of every kind (benchmarks/bench_grading.py times a class of 30)."""
    students = demo_class.make(tmp_path, EXERCISE, 8)
    out = tmp_path / "reports"
    start = time.perf_counter()
    proc = grade_cli(tmp_path / "class", "--out", out, "--jobs", 2, "--timeout", 60, "--case-timeout", 2,
                     "--late-policy", tmp_path / "policy.toml", "--submitted", tmp_path / "submitted.csv")
    seconds = time.perf_counter() - start
    print(f"{len(students)} students of {EXERCISE}, --jobs 2: {seconds:.0f} s")

    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert len(rows) == len(students)
    for s in students:
        row = rows[s.name]
        assert float(row["final"]) == pytest.approx(s.expected_score, abs=1e-6), (s, row)
        assert int(row["days_late"]) == s.days_late
        assert (out / s.name / f"{EXERCISE}.json").exists()          # one report per student, as it completed
    hangs = next(s.name for s in students if s.kind == "hangs")
    assert "timed out" in json.loads((out / hangs / f"{EXERCISE}.json").read_text())["parts"][0]["reason"]

    # Canvas: identity columns, then the assignment; the Points Possible row; one row per student
    with open(out / "canvas.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][:5] == canvas.IDENTITY and table[0][5].startswith(EXERCISE)
    assert table[1][0] == "Points Possible" and float(table[1][5]) == problems.get_exercise(EXERCISE).points \
        + sum(q.points for q in free_response.questions(EXERCISE))
    assert sorted(r[3] for r in table[2:]) == sorted(s.name for s in students)   # SIS Login ID

    # feedback for every student, and it never quotes a hidden case
    for s in students:
        text = (out / "feedback" / s.name / f"{EXERCISE}.md").read_text()
        assert "hidden case 1:" not in text and "expected shape" not in text
        assert (out / "feedback" / s.name / f"{EXERCISE}.html").read_text().startswith("<!DOCTYPE html>")
    # the renamed copy is flagged with the student it copied; untouched stubs are not a match
    flagged = {(r["student_a"], r["student_b"]) for r in csv.DictReader((out / "similarity.csv").open())}
    copier = next(s.name for s in students if s.kind == "renamed_copy")
    original = next(s.name for s in students if s.kind == "solution")
    assert tuple(sorted((copier, original))) in flagged
    untouched = [s.name for s in students if s.kind == "untouched"]
    assert not {p for p in flagged if set(p) <= set(untouched)}
    assert "similarity" in proc.stdout and "canvas gradebook" in proc.stdout


def test_jobs_run_submissions_in_parallel_and_report_as_each_completes(tmp_path, monkeypatch):
    """Two slow submissions with --jobs 2 take about as long as one."""
    subs = tmp_path / "class"
    for name in ("a", "b"):
        (subs / name).mkdir(parents=True)
        nb = nbformat.v4.new_notebook()
        nb.metadata["mmcourse"] = {"exercise": EXERCISE}
        hang = "def attention(q, k, v, mask=None):\n    while True:\n        pass"
        nb.cells = [nbformat.v4.new_code_cell(hang)]
        nbformat.write(nb, str(subs / name / "work.ipynb"))
    out = tmp_path / "out"
    start = time.perf_counter()
    grade_cli(subs, "--out", out, "--jobs", 2, "--no-run", "--case-timeout", 1)
    both = time.perf_counter() - start
    reports = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/work.json")}
    assert set(reports) == {"a", "b"} and all(r["score"] == 0 for r in reports.values())
    start = time.perf_counter()
    grade_cli(subs / "a", "--out", tmp_path / "one", "--no-run", "--case-timeout", 1)
    one = time.perf_counter() - start
    assert both < 1.6 * one, (both, one)


def test_worker_limits_bound_every_part_without_drawing_a_case_in_the_batch():
    """The batch never runs torch before it forks a worker (OpenMP's pool would hang the child);
    so a worker's limit assumes at most ``cli.MAX_CASES`` hidden cases a part: check that bound."""
    from mmcourse.grading import cli

    for ex in problems.EXERCISES.values():
        for part in ex.parts:
            assert len(problems.hidden_cases(part, 1)) <= cli.MAX_CASES, (ex.name, part.id)


# ------------------------------------------------------------------------------ late policy
def test_late_policy_counts_started_days_extensions_grace_and_a_cut_off(tmp_path):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('deadline = "2026-12-01T23:59:00+00:00"\npenalty_per_day = 0.25\n'
                           'max_days_late = 2\ngrace_minutes = 5\n'
                           '[extensions]\nalice = 2026-12-03T23:59:00Z\n')
    policy = late.LatePolicy.load(policy_file)
    at = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)   # noqa: E731
    assert policy.days_late("bob", at("2026-12-02T00:03:00")) == 0           # inside the grace
    assert policy.days_late("bob", at("2026-12-02T00:05:00")) == 1           # a minute past it: a started day
    assert policy.days_late("bob", at("2026-12-03T23:00:00")) == 2
    assert [policy.factor(d) for d in (0, 1, 2, 3)] == [1.0, 0.75, 0.5, 0.0]
    assert policy.days_late("alice", at("2026-12-03T20:00:00")) == 0         # her extension
    assert policy.days_late("carol", None) == 0
    for bad, message in (('penalty_per_day = 0.1\n', "deadline"), ('deadline = "soon"\n', "ISO 8601"),
                         ('deadline = "2026-12-01"\npenalty_per_day = 2\n', "fraction"),
                         ('deadline = "2026-12-01"\nlate_fee = 1\n', "unknown keys")):
        policy_file.write_text(bad)
        with pytest.raises(ValueError, match=message):
            late.LatePolicy.load(policy_file)


def test_class_layouts_name_the_student(tmp_path):
    names = sorted(problems.EXERCISES)
    for rel in ("alice/04_attention.ipynb", "bob_04_attention.ipynb", "04_attention-carol.ipynb",
                "smithjane_LATE_12345_67890_04_attention.ipynb", "dave.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    (tmp_path / "times.csv").write_text("student,submitted_at\nalice,2026-12-01T10:00:00\n")
    subs = {s.student: s for s in classroom.collect([str(tmp_path)], names, tmp_path / "times.csv")}
    assert set(subs) == {"alice", "bob", "carol", "12345", "dave"}
    assert subs["12345"].canvas_late and not subs["bob"].canvas_late and subs["alice"].in_folder
    assert subs["alice"].submitted_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert subs["alice"].time_source == "submitted.csv" and subs["bob"].time_source == "file time"
    (tmp_path / "times.csv").write_text("name,when\n")
    with pytest.raises(ValueError, match="'student' and 'submitted_at'"):
        classroom.collect([str(tmp_path)], names, tmp_path / "times.csv")


# ------------------------------------------------------------------------------ feedback
def test_feedback_gives_the_kind_of_failure_and_the_hint_but_no_hidden_case():
    part = runner.PartReport("q1", "attention", 4, 1.0, 1, 4,
                             "1/4 hidden cases pass; first failure: hidden case 2: the result: "
                             "expected shape (3, 7, 2), got (3, 2)")
    line = feedback.part_feedback(part, "mind the mask")
    assert "1/4 hidden cases pass" in line and "wrong shape" in line and "Hint: mind the mask" in line
    assert "(3, 7, 2)" not in line
    crash = runner.PartReport("q1", "attention", 4, 0.0, 0, 4,
                              "0/4 hidden cases pass; first failure: hidden case 1: RuntimeError: size of "
                              "tensor a (7) must match the size of tensor b (5)")
    assert "raised RuntimeError" in feedback.part_feedback(crash, "") and \
        "(7)" not in feedback.part_feedback(crash, "")
    report = runner.Report("x.ipynb", EXERCISE, 1.0, 5.0, [part], {"status": "timeout"}, [], 1.0, 3)
    page = feedback.to_html(feedback.markdown(report, "<script>alert(1)</script>"), "t")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<table>" in page
    assert "did not run top to bottom" in feedback.markdown(report, "s")


# ------------------------------------------------------------------------------ free response
def test_free_response_answers_are_collected_per_question_and_marks_merge_back(tmp_path):
    root = tmp_path / "course"
    (root / "masters").mkdir(parents=True)
    (root / "masters" / f"{EXERCISE}.py").write_text(
        "# %%\nx = 1\n# %% [markdown] free-response fr1 3\n# Why scale by sqrt(d_k)?\n"
        "# %% [markdown] answer fr1\n# The variance of q.k grows with d_k.\n"
        "# %% [markdown] rubric fr1\n# - 3: variance argument\n")
    student = nbformat.reads(masters.build(root / "masters" / f"{EXERCISE}.py", solution=False), as_version=4)
    paths = {}
    for name, answer in (("ann", "Because the dot products grow."), ("ben", None), ("cy", "Lost metadata.")):
        nb = nbformat.from_dict(json.loads(nbformat.writes(student)))
        if answer:
            nb.cells[2].source = answer
        if name == "cy":
            nb.cells[2].metadata = {}
        paths[name] = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, str(paths[name]))
    out = tmp_path / "fr"
    free_response.collect({EXERCISE: list(paths.items())}, out, root)
    text = (out / EXERCISE / "fr1.md").read_text()
    assert "Why scale by sqrt(d_k)?" in text and "variance argument" in text
    assert "Because the dot products grow." in text and "Lost metadata." in text and "*(no answer)*" in text
    scores = out / EXERCISE / "fr1_scores.csv"
    assert [r["student"] for r in csv.DictReader(scores.open())] == ["ann", "ben", "cy"]
    scores.write_text("student,score,comment\nann,3,good\nben,,\ncy,1.5,partly\n")
    assert free_response.read_scores(out, root) == {("ann", EXERCISE): {"fr1": 3.0},
                                                    ("cy", EXERCISE): {"fr1": 1.5}}
    free_response.collect({EXERCISE: list(paths.items())}, out, root)
    assert "ann,3,good" in scores.read_text()                      # the instructor's marks are kept
    scores.write_text("student,score,comment\nann,4,too many\n")
    with pytest.raises(ValueError, match=r"outside \[0, 3\]"):
        free_response.read_scores(out, root)


# ------------------------------------------------------------------------------ Canvas
def test_canvas_csv_uses_the_roster_identity_and_existing_assignment_columns(tmp_path):
    roster = tmp_path / "export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,04_attention Masked attention (5678),"
                      "Current Score\n    Points Possible,,,,,5,\n"
                      "\"Lovelace, Ada\",101,S1,ada,Sec A,,\n\"Turing, Alan\",102,S2,alan,Sec A,,\n")
    path = canvas.write({"ada": {EXERCISE: 4.5}, "102": {EXERCISE: 2}}, {EXERCISE: 5.0},
                        {EXERCISE: "Masked attention"}, tmp_path / "canvas.csv", roster)
    table = list(csv.reader(path.open()))
    assert table[0] == canvas.IDENTITY + ["04_attention Masked attention (5678)"]
    assert table[1] == ["Points Possible", "", "", "", "", "5"]
    assert table[2:] == [["Turing, Alan", "102", "S2", "alan", "Sec A", "2"],
                         ["Lovelace, Ada", "101", "S1", "ada", "Sec A", "4.5"]]
    sample = list(csv.reader((ROOT / "docs" / "grading" / "canvas_sample.csv").open()))
    assert sample[0][:5] == canvas.IDENTITY and sample[1][0] == "Points Possible"
    with pytest.raises(ValueError, match="Canvas gradebook export"):
        (tmp_path / "bad.csv").write_text("name,score\nx,1\n")
        canvas.read_roster(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------ Gradescope
@pytest.mark.slow
def test_gradescope_bundle_runs_and_writes_results_in_the_documented_format(tmp_path):
    zpath = gradescope.bundle(EXERCISE, tmp_path / "autograder.zip")
    with zipfile.ZipFile(zpath) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "mmcourse/pyproject.toml", f"mmcourse/masters/{EXERCISE}.py",
                "mmcourse/mmcourse/grading/boot.py"} <= names
        for script in ("setup.sh", "run_autograder"):
            assert (z.getinfo(script).external_attr >> 16) & stat.S_IXUSR
        z.extractall(tmp_path / "bundle")
    setup = (tmp_path / "bundle" / "setup.sh").read_text()
    assert "pip install" in setup and "/autograder/source/mmcourse" in setup and "torch>=" in setup
    auto = tmp_path / "autograder"
    shutil.copytree(tmp_path / "bundle", auto / "source")
    env = {**os.environ, "AUTOGRADER_ROOT": str(auto), "MMCOURSE_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)    # the bundle's own copy of the package is what runs
    for notebook, want in ((ROOT / "solutions" / f"{EXERCISE}.ipynb", "full"),
                           (ROOT / "exercises" / f"{EXERCISE}.ipynb", "zero")):
        shutil.rmtree(auto / "submission", ignore_errors=True)
        (auto / "submission").mkdir()
        shutil.copy(notebook, auto / "submission" / f"{EXERCISE}.ipynb")
        proc = subprocess.run(["bash", str(auto / "source" / "run_autograder"), "--no-run"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        data = json.loads((auto / "results" / "results.json").read_text())
        jsonschema.validate(data, GRADESCOPE_SCHEMA)
        ex = problems.get_exercise(EXERCISE)
        assert [t["max_score"] for t in data["tests"]] == [p.points for p in ex.parts]
        assert data["score"] == (ex.points if want == "full" else 0)
        assert not [t for t in data["tests"] if re.search(r"hidden case \d+:", t["output"])]
    sample = json.loads((ROOT / "docs" / "grading" / "gradescope_results_sample.json").read_text())
    jsonschema.validate(sample, GRADESCOPE_SCHEMA)


def test_gradescope_run_always_writes_a_result(tmp_path):
    (tmp_path / "sub").mkdir()
    gradescope.run(tmp_path / "sub", tmp_path / "results.json", EXERCISE)
    data = json.loads((tmp_path / "results.json").read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == 0 and "found none" in data["output"]


# ------------------------------------------------------------------------------ similarity
ORIGINAL = '''
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights
'''
RENAMED = '''
def attention(query, key, value, m=None):
    # compute the scores
    s = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])

    if m is not None:
        s = s.masked_fill(~m, torch.finfo(s.dtype).min)   # forbid
    w = torch.softmax(s, dim=-1)
    if m is not None:
        w = w.masked_fill(~m, 0.0)
    return w @ value, w
'''
OWN = '''
def attention(q, k, v, mask=None):
    d = q.size(-1)
    logits = torch.einsum("...qd,...kd->...qk", q, k) * d ** -0.5
    if mask is None:
        mask = torch.ones_like(logits, dtype=torch.bool)
    logits = logits - logits.amax(-1, keepdim=True).detach()
    e = torch.exp(logits) * mask
    total = e.sum(-1, keepdim=True)
    p = torch.where(total > 0, e / total.clamp_min(1e-30), torch.zeros_like(e))
    return torch.einsum("...qk,...kd->...qd", p, v), p
'''


def test_similarity_sees_through_renaming_but_not_through_an_own_solution(tmp_path):
    assert similarity.normalise(ORIGINAL) == similarity.normalise(RENAMED)
    pairs = similarity.compare({"ann": ORIGINAL, "ben": RENAMED, "cy": OWN}, min_shared=3, exercise=EXERCISE)
    assert [(p.a, p.b) for p in pairs] == [("ann", "ben")] and pairs[0].similarity == 1.0
    # what the handed-out exercise contains is not evidence
    assert similarity.compare({"ann": ORIGINAL, "ben": RENAMED}, starter=ORIGINAL, min_shared=3) == []
    paths = similarity.write(pairs, tmp_path, 0.7, {EXERCISE: 3})
    assert "| 04_attention | ann | ben | 100% |" in paths[1].read_text()
