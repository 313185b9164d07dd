"""Grade one submission (a notebook) or a directory of them.

``grade_notebook(path)``:

1. computes, in this process (where student code never runs), every part's hidden cases (from
   a secret seed) and the reference answers (``problems``), encoded and decoded through
   ``codec`` like the student's answers will be;
2. extracts the definitions from the notebook statically (``extract.py``), scans every
   statement that would execute (``extract.scan_module``: those naming what no graded code needs
   are left out) and each part's function and what it uses for the part's forbidden names;
3. executes the notebook top to bottom in a fresh kernel in a temporary copy of its directory,
   isolated (``execute.py`` under ``isolation``, killed at the per-notebook timeout) -- a report
   only;
4. calls the student's functions on the hidden cases in a sandbox (``sandbox.py``, ``boot.py``):
   definitions first, then one case at a time with a nonce per answer, under a run-time ban of
   the exercise's forbidden library functions (less what an experiment part is ``allowed``),
   with wall-clock limits per case (an experiment part's own, if larger) and per
   submission; the decoded answers are compared here with the references of step 1.

A part scores ``points × (hidden cases passed) / (hidden cases)``, except that cases on which a
constant answer is right count only next to a general case that passes (``degenerate.py``).
Nothing the student's code does can reach steps 1 and 4's comparison: it runs in other
processes, sees one case at a time, and what comes back is plain data.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmcourse.grading import codec, degenerate, extract, isolation, problems, sandbox

DEFAULT_TIMEOUT = 120.0
CASE_TIMEOUT = 5.0
SUBMISSION_BUDGET = 90.0    # seconds for starting sandboxes, on top of case_timeout per hidden case


@dataclass
class PartReport:
    id: str
    function: str
    points: float
    score: float
    passed: int
    cases: int
    reason: str
    failures: list[str] = field(default_factory=list)


@dataclass
class Report:
    submission: str
    exercise: str
    score: float
    max_score: float
    parts: list[PartReport]
    execution: dict
    notes: list[str]
    seconds: float
    seed: int
    extracted_source: str = ""
    student: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        data["parts"] = [PartReport(**p) for p in data["parts"]]
        return cls(**data)


def failed_report(path: Path, exercise: str | None, why: str, seconds: float) -> Report:
    """A zero report for a submission whose grading did not finish (its worker died)."""
    try:
        ex = identify(path, exercise)
    except KeyError:
        return Report(str(path), "?", 0.0, 0.0, [], {"status": "skipped"}, [why], round(seconds, 2), -1)
    parts = [PartReport(p.id, p.function, p.points, 0.0, 0, 0, why) for p in ex.parts]
    return Report(str(path), ex.name, 0.0, ex.points, parts, {"status": "skipped"}, [why],
                  round(seconds, 2), -1)


def identify(path: Path, exercise: str | None = None) -> problems.Exercise:
    """The exercise a submission answers: given, else its notebook metadata, else its file name."""
    if exercise:
        return problems.get_exercise(exercise)
    import nbformat  # here, not at the top: it is slow to import (jsonschema)

    try:
        meta = nbformat.read(str(path), as_version=4).metadata.get("mmcourse", {})
        name = meta.get("exercise") if isinstance(meta, dict) else None
        if isinstance(name, str) and name in problems.EXERCISES:
            return problems.EXERCISES[name]
    except Exception:  # an unreadable notebook is graded (as zero) under its file name
        pass
    stem = path.stem
    for name in problems.EXERCISES:
        if stem.startswith(name) or stem.startswith(name.split("_")[0] + "_"):
            return problems.EXERCISES[name]
    raise KeyError(f"cannot tell which exercise {path.name} answers; name it NN_... or pass --exercise")


def _expected(ex: problems.Exercise, seed: int):
    """Hidden cases and the decoded reference answers, computed before any student code runs."""
    cases, expected = {}, {}
    for k, part in enumerate(ex.parts):
        part_seed = (seed * 1_000_003 + k * 7919) % 2**63
        cases[part.id] = problems.hidden_cases(part, part_seed)
        expected[part.id] = [codec.decode(codec.encode(part.reference(*args))) for args in cases[part.id]]
    return cases, expected


def execute(path: Path, timeout: float) -> dict:
    """Run the notebook in a fresh kernel, isolated (``isolation``), in a temporary copy of its
    directory (a report only)."""
    with tempfile.TemporaryDirectory(prefix="mmcourse-run-") as tmp:
        uid = isolation.new_uid()
        isolation.prepare(tmp, uid)
        work = Path(tmp, "work")
        work.mkdir()
        shutil.copy2(path, work / path.name)
        if uid >= 0:
            os.chown(work, uid, uid)
            os.chown(work / path.name, uid, uid)
        summary = Path(tmp, "summary.json")
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT") if k in os.environ}
        env.update({"HOME": tmp, "TMPDIR": tmp, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
                    "OMP_NUM_THREADS": "1", "JUPYTER_RUNTIME_DIR": f"{tmp}/jupyter-runtime",
                    "JUPYTER_CONFIG_DIR": f"{tmp}/jupyter-config", "JUPYTER_DATA_DIR": f"{tmp}/jupyter-data",
                    "IPYTHONDIR": f"{tmp}/ipython", "MPLCONFIGDIR": f"{tmp}/matplotlib",
                    "MMCOURSE_PROFILE": os.environ.get("MMCOURSE_PROFILE", "default")})
        argv = [sys.executable, "-m", "mmcourse.grading.execute", str(work / path.name), str(work),
                str(summary), str(timeout), str(uid)]
        proc = subprocess.Popen(isolation.command(argv, tmp), cwd=work, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "errors": [], "seconds": timeout}
        finally:
            isolation.end(proc, uid)
        try:
            data = json.loads(summary.read_text()[:100_000])
            return data if isinstance(data, dict) else {"status": "failed", "errors": ["bad summary"]}
        except (OSError, ValueError):
            return {"status": "failed", "errors": [f"the runner exited with code {proc.returncode}"]}


def warm_up() -> None:
    """Import what grading imports lazily (nbformat, IPython's transformer, scikit-learn for
    the references), so that workers forked afterwards (``worker.fork``) start warm. No torch
    computation here: OpenMP's thread pool does not survive a fork."""
    import nbformat  # noqa: F401
    import psutil  # noqa: F401
    import sklearn.impute  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.utils.class_weight  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401


def case_timeouts(ex: problems.Exercise, case_timeout: float) -> dict[str, float]:
    """Seconds each part's hidden case may take: ``case_timeout``, or an experiment part's own
    larger allowance (``Part.case_timeout``)."""
    return {p.id: max(case_timeout, p.case_timeout or 0.0) for p in ex.parts}


def _score_part(part: problems.Part, expected: list, results: dict) -> PartReport:
    """Score one part; degenerate cases pay only next to a general one (``degenerate.py``)."""
    passed, failures, stubs, timeouts, ok = 0, [], 0, 0, []
    for i, want in enumerate(expected):
        got = results[(part.id, i)]
        if got.error is not None:
            reason = got.error
            stubs += got.stub
            timeouts += got.timeout
        else:
            try:
                reason = codec.compare(want, got.value, part.atol, part.rtol)
            except Exception as err:  # a comparison must never crash the grader
                reason = f"could not compare ({type(err).__name__})"
        ok.append(reason is None)
        if reason is None:
            passed += 1
        else:
            failures.append(f"hidden case {i + 1}: {reason}")
    n = len(expected)
    flags = [degenerate.is_degenerate(want, part.atol, part.rtol) for want in expected]
    credit = degenerate.credited(ok, flags)
    if passed and not credit:
        why = (f"{passed}/{n} hidden cases pass, but only ones a constant answer also passes (no "
               f"credit); first failure: {failures[0]}")
    elif passed == n:
        why = f"all {n} hidden cases pass"
    elif stubs == n:
        why = "not implemented (raises NotImplementedError)"
    elif timeouts:
        why = f"{passed}/{n} hidden cases pass; timed out ({failures[0]})"
    else:
        why = f"{passed}/{n} hidden cases pass; first failure: {failures[0]}"
    return PartReport(part.id, part.function, part.points, round(part.points * credit / n, 4), passed, n,
                      why, failures[:5])


def grade_notebook(path, *, exercise: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                   case_timeout: float = CASE_TIMEOUT, seed: int | None = None,
                   run_notebook: bool = True) -> Report:
    """Grade one submission; never raises for anything the submission does."""
    if os.name != "posix":
        raise RuntimeError("the batch grader needs a POSIX system (Linux, macOS, or WSL on Windows): "
                           "it relies on process groups, SIGALRM and resource limits; inline checks "
                           "work anywhere")
    start = time.perf_counter()
    path = Path(path)
    ex = identify(path, exercise)
    seed = secrets.randbits(62) if seed is None else seed
    cases, expected = _expected(ex, seed)
    notes: list[str] = []
    try:
        extracted = extract.extract(path)
    except Exception as err:
        extracted = extract.Extracted(source="")
        notes.append(f"the notebook could not be read: {type(err).__name__}: {str(err)[:200]}")
    notes.extend(extracted.notes)
    if isolation.warning():
        notes.append(f"isolation: {isolation.warning()}")
    statements, dropped = extract.scan_module(extracted)
    notes.extend(dropped)
    allowed = case_timeouts(ex, case_timeout)
    deadline = time.monotonic() + SUBMISSION_BUDGET + sum(allowed[p] * len(c) for p, c in cases.items())
    # the report-only notebook run goes on in parallel with the sandboxed scoring
    pool = ThreadPoolExecutor(max_workers=1)
    running = pool.submit(execute, path, timeout) if run_notebook else None

    reports: dict[str, PartReport] = {}
    jobs = []
    for part in ex.parts:
        if part.function not in extracted.functions:
            reports[part.id] = PartReport(part.id, part.function, part.points, 0.0, 0, len(expected[part.id]),
                                          f"no function named {part.function} defined at the top level of a "
                                          f"code cell")
            continue
        # only an experiment part (one with its own time allowance) may use the package: in any
        # other part, the package's tested version of the function asked for would be the answer
        package = () if part.case_timeout else ("mmcourse",)
        banned = extract.scan(extracted, part.function, part.forbidden + package)
        if banned:
            reports[part.id] = PartReport(part.id, part.function, part.points, 0.0, 0, len(expected[part.id]),
                                          f"uses {', '.join(banned)}, which this part does not allow")
            continue
        jobs.extend((part.id, part.function, i, args) for i, args in enumerate(cases[part.id]))
    if jobs:
        banned = tuple(sorted({name for p in ex.parts for name in p.forbidden}))
        narrower = {p.id: tuple(n for n in banned if n not in p.allowed) for p in ex.parts if p.allowed}
        results, sandbox_notes = sandbox.evaluate(statements, jobs, banned=banned, case_timeout=case_timeout,
                                                  timeouts=allowed, part_banned=narrower,
                                                  deadline=deadline)
        notes.extend(sandbox_notes)
        for part in ex.parts:
            if part.id not in reports:
                reports[part.id] = _score_part(part, expected[part.id], results)
    parts = [reports[p.id] for p in ex.parts]
    execution = running.result() if running else {"status": "skipped"}
    pool.shutdown()
    return Report(submission=str(path), exercise=ex.name, score=round(sum(p.score for p in parts), 4),
                  max_score=ex.points, parts=parts, execution=execution, notes=notes[:30],
                  seconds=round(time.perf_counter() - start, 2), seed=seed,
                  extracted_source=extracted.source)


def table(report: Report) -> str:
    """The report as a plain-text table."""
    lines = [f"{report.submission}  [{report.exercise}]",
             f"  {'part':<5} {'function':<24} {'score':>11}  reason"]
    for p in report.parts:
        lines.append(f"  {p.id:<5} {p.function:<24} {p.score:>5.2f} / {p.points:<3g}  {p.reason}")
    ex = report.execution
    run = ex.get("status", "?") + (f" ({'; '.join(ex['errors'][:2])})" if ex.get("errors") else "")
    lines.append(f"  {'total':<30} {report.score:>5.2f} / {report.max_score:<3g}  notebook run: {run}")
    lines += [f"  note: {n}" for n in report.notes[:10]]
    return "\n".join(lines)


def submissions(paths) -> list[Path]:
    """Notebooks named by ``paths``: files as they are, directories searched recursively."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        else:
            found.append(p)
    return found


EXTRA = ("student", "free_response", "submitted_at", "time_source", "days_late", "factor", "final")


def write_gradebook(reports: list[Report], path, extras: list[dict] | None = None) -> None:
    """One CSV row per submission: its total, every part's score, the notebook run status and,
    for a class (``extras``, from ``cli``), the student, free-response marks, lateness and the
    final score (written to a temporary file, then renamed into place)."""
    ids = sorted({p.id for r in reports for p in r.parts})
    frees = sorted({q for x in extras or [] for q in x.get("free", {})})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "exercise", "score", "max_score", *ids, "notebook_run", "seconds",
                    *([*EXTRA, *frees] if extras else [])])
        for k, r in enumerate(reports):
            by_id = {p.id: p.score for p in r.parts}
            row = [r.submission, r.exercise, r.score, r.max_score, *(by_id.get(i, "") for i in ids),
                   r.execution.get("status", ""), r.seconds]
            if extras:
                row += [extras[k].get(c, "") for c in EXTRA] + [extras[k]["free"].get(q, "") for q in frees]
            w.writerow(row)
    tmp.replace(path)   # whole or not at all, even if the batch is interrupted
