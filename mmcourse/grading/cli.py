"""``mmcourse grade`` / ``python -m mmcourse.grading grade``, and ``generate``.

    mmcourse grade SUB.ipynb [MORE.ipynb | DIR ...] [--out reports/] [--gradebook grades.csv]
    mmcourse generate [--check]

``grade`` prints a table per submission and writes ``<out>/<name>.json``; with a directory
among the arguments (or ``--gradebook``) it also writes one CSV row per submission. Each
submission is graded in a worker process of its own (``worker.py``, forked) with a hard
wall-clock limit; a worker that dies or overruns gives that submission a zero report saying so, and the
batch goes on. Reports and the gradebook are rewritten after every submission, so an
interrupted batch leaves everything graded so far.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from mmcourse.grading import isolation, masters, runner, worker

WORKER_SLACK = 120.0   # seconds a worker may take beyond its notebook run and hidden cases


def _worker_limit(args) -> float:
    cases = 40   # more than any exercise has
    run = 0 if args.no_run else args.timeout + 30
    return run + runner.SUBMISSION_BUDGET + args.case_timeout * cases + WORKER_SLACK


def grade_in_worker(path: Path, report_path: Path, args) -> runner.Report | None:
    """Grade ``path`` in a worker process; None if it is not an exercise we know."""
    report_path.unlink(missing_ok=True)
    start, limit = time.monotonic(), _worker_limit(args)
    tmpdir = tempfile.mkdtemp(prefix="mmcourse-worker-")
    os.chmod(tmpdir, 0o711)   # an own uid may pass through to its scratch directory inside
    try:
        return _wait(path, report_path, args, start, limit,
                     worker.fork(path, report_path, tmpdir, exercise=args.exercise, timeout=args.timeout,
                                 case_timeout=args.case_timeout, seed=args.seed,
                                 run_notebook=not args.no_run))
    finally:
        isolation.sweep()   # what a dead worker left runs no more, then its files go
        shutil.rmtree(tmpdir, ignore_errors=True)


def _wait(path: Path, report_path: Path, args, start: float, limit: float, pid: int) -> runner.Report | None:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            why = (f"the grading worker died (signal {-code})" if code < 0 else
                   f"the grading worker failed with exit code {code}")
            break
        if time.monotonic() - start > limit:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            os.waitpid(pid, 0)
            code, why = None, f"the grading worker overran its {limit:.0f} s limit and was killed"
            break
        time.sleep(0.05)
    if code == 3:
        return None
    try:
        return runner.Report.from_json(report_path.read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return runner.failed_report(path, args.exercise, f"{why}; no report (graded 0)",
                                    time.monotonic() - start)


def _report_name(path: Path, used: set[str]) -> str:
    name = path.stem
    k = 1
    while name in used:
        k += 1
        name = f"{path.stem}-{k}"
    used.add(name)
    return f"{name}.json"


def cmd_grade(args) -> int:
    paths = runner.submissions(args.paths)
    if not paths:
        print("no notebooks to grade", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warning = isolation.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    any_dir = any(Path(p).is_dir() for p in args.paths)
    gradebook = args.gradebook or (out / "gradebook.csv" if any_dir else None)
    reports, used = [], set()
    isolation.become_subreaper()   # what a dead worker leaves is re-parented here, then swept
    runner.warm_up()
    for path in paths:
        name = _report_name(path, used)
        report = grade_in_worker(path, out / name, args)
        if report is None:
            continue
        (out / name).write_text(report.to_json())
        reports.append(report)
        print(runner.table(report), flush=True)
        if gradebook:
            runner.write_gradebook(reports, gradebook)
    if gradebook:
        runner.write_gradebook(reports, gradebook)
        print(f"gradebook: {gradebook}")
    print(f"reports: {out}/")
    if args.json:
        print(json.dumps([{"submission": r.submission, "score": r.score} for r in reports]))
    return 0


def cmd_generate(args) -> int:
    stale = masters.generate(check=args.check)
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(masters.ROOT)} (run: python -m mmcourse.grading generate)")
        return 1 if stale else 0
    for p in stale:
        print(f"wrote {p.relative_to(masters.ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # `mmcourse train CHAPTER ...`: mmcourse/train/cli.py
        from mmcourse.train.cli import main as train_main
        return train_main(argv[1:])
    parser = argparse.ArgumentParser(prog="mmcourse", description="Grade mmcourse exercises.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade submissions (notebooks or directories of them)")
    g.add_argument("paths", nargs="+")
    g.add_argument("--out", default="grading-reports", help="directory for the JSON reports")
    g.add_argument("--gradebook", help="CSV gradebook path (default with a directory: OUT/gradebook.csv)")
    g.add_argument("--exercise", help="the exercise (e.g. 04_attention) instead of the notebook's own")
    g.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT,
                   help="seconds for running each notebook top to bottom")
    g.add_argument("--case-timeout", type=float, default=runner.CASE_TIMEOUT, help="seconds per hidden case")
    g.add_argument("--seed", type=int, help="hidden-case seed (default: secret and random; in the report)")
    g.add_argument("--no-run", action="store_true", help="skip the notebook run (a report only)")
    g.add_argument("--json", action="store_true", help="also print the scores as JSON")
    g.set_defaults(func=cmd_grade)
    m = sub.add_parser("generate", help="write exercises/ and solutions/ from masters/")
    m.add_argument("--check", action="store_true", help="only check that they are up to date")
    m.set_defaults(func=cmd_generate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
