"""``mmcourse grade`` / ``python -m mmcourse.grading grade``, and ``generate``.

    mmcourse grade SUB.ipynb [MORE.ipynb | DIR ...] [--out reports/] [--gradebook grades.csv]
    mmcourse generate [--check]

``grade`` prints a table per submission and writes ``<out>/<name>.json``; with a directory
among the arguments (or ``--gradebook``) it also writes one CSV row per submission.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from mmcourse.grading import masters, runner


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
    reports, used = [], set()
    for path in paths:
        try:
            report = runner.grade_notebook(path, exercise=args.exercise, timeout=args.timeout,
                                           case_timeout=args.case_timeout, seed=args.seed,
                                           run_notebook=not args.no_run)
        except KeyError as err:   # not an exercise we know: reported, never a crash
            print(f"{path}: {err.args[0]}", file=sys.stderr)
            continue
        except Exception:         # a bug of the grader's own: say so, grade the others
            print(f"{path}: the grader failed (please report this):\n{traceback.format_exc()}",
                  file=sys.stderr)
            continue
        reports.append(report)
        print(runner.table(report), flush=True)
        (out / _report_name(path, used)).write_text(report.to_json())
    any_dir = any(Path(p).is_dir() for p in args.paths)
    gradebook = args.gradebook or (out / "gradebook.csv" if any_dir else None)
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
