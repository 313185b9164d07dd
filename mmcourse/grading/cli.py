"""``mmcourse grade`` / ``python -m mmcourse.grading grade``, and ``generate``.

    mmcourse grade SUB.ipynb [MORE.ipynb | CLASS_DIR ...] [--out reports/] [--jobs N]
        [--late-policy policy.toml] [--submitted times.csv] [--free-response-scores DIR]
        [--roster canvas_export.csv] [--gradebook grades.csv] [--canvas canvas.csv]
    mmcourse gradescope EXERCISE [--out autograder.zip]
    mmcourse generate [--check]

``grade`` prints a table per submission and writes ``<out>/<name>.json`` and the student's
feedback (``<out>/feedback/<student>/<exercise>.md|html``) as each submission completes; with a
class directory among the arguments (``classroom.py``: a folder or a file per student, or
Canvas's downloads) it also writes the gradebook (one row per submission: parts, free-response
marks, days late, final score), ``canvas.csv`` (``canvas.py``), the free-response answers to mark
(``free_response.py``) and a similarity report (``similarity.py``). ``--jobs N`` grades N
submissions at once, each in a worker process of its own (``worker.py``, forked) with a hard
wall-clock limit; a worker that dies or overruns gives that submission a zero report saying so,
and the batch goes on. Reports and the gradebook are rewritten after every submission, so an
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
from datetime import UTC, datetime
from pathlib import Path

from mmcourse.grading import (
    canvas,
    classroom,
    extract,
    feedback,
    free_response,
    gradescope,
    isolation,
    late,
    masters,
    problems,
    runner,
    similarity,
    worker,
)

WORKER_SLACK = 120.0   # seconds a worker may take beyond its notebook run and hidden cases
MAX_CASES = 12         # hidden cases of a part, at most (tests/test_grading_workflow.py checks it)


def _worker_limit(args, path: Path) -> float:
    """The worker's wall-clock limit: the notebook run, then every hidden case at its part's
    allowance (an experiment part's own, ``runner.case_timeouts``), plus slack."""
    run = 0 if args.no_run else args.timeout + 30
    try:
        ex = runner.identify(path, args.exercise)
        allowed = runner.case_timeouts(ex, args.case_timeout)
        # at most MAX_CASES hidden cases a part. Not counted by drawing them: that would run torch
        # here, and OpenMP's thread pool does not survive the fork of the next worker (it hangs)
        cases = sum(allowed.values()) * MAX_CASES
    except Exception:   # not an exercise we know (the worker says so) or unreadable: a generous bound
        cases = args.case_timeout * 40
    return run + runner.SUBMISSION_BUDGET + cases + WORKER_SLACK


class Job:
    """One submission being graded in a forked worker (``worker.py``)."""

    def __init__(self, sub: classroom.Submission, report_path: Path, args):
        self.sub, self.report_path, self.args = sub, report_path, args
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.unlink(missing_ok=True)
        self.start, self.limit = time.monotonic(), _worker_limit(args, sub.path)
        self.tmpdir = tempfile.mkdtemp(prefix="mmcourse-worker-")
        os.chmod(self.tmpdir, 0o711)   # an own uid may pass through to its scratch directory inside
        self.pid = worker.fork(sub.path, report_path, self.tmpdir, exercise=args.exercise,
                               timeout=args.timeout, case_timeout=args.case_timeout, seed=args.seed,
                               run_notebook=not args.no_run)

    def poll(self, others: list[Job]) -> tuple[bool, runner.Report | None]:
        """(finished, its report -- None if it is not an exercise we know); ``others`` are the
        jobs still running, which cleaning up after this one must not touch."""
        try:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            code = os.waitstatus_to_exitcode(status) if done else None
        except ChildProcessError:     # reaped by a sweep after another job: its report tells
            done, code = True, 0 if self.report_path.exists() else -9
        if done:
            why = (f"the grading worker died (signal {-code})" if code < 0 else
                   f"the grading worker failed with exit code {code}")
        elif time.monotonic() - self.start > self.limit:
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            code, why = None, f"the grading worker overran its {self.limit:.0f} s limit and was killed"
        else:
            return False, None
        self.cleanup(others)
        if code == 3:
            return True, None
        try:
            return True, runner.Report.from_json(self.report_path.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return True, runner.failed_report(self.sub.path, self.args.exercise,
                                              f"{why}; no report (graded 0)", time.monotonic() - self.start)

    def cleanup(self, others: list[Job] = ()) -> None:
        """What this worker left runs no more (the other workers and theirs go on), then its files go."""
        isolation.sweep(keep=_tree({job.pid for job in others}))
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _tree(pids: set[int]) -> set[int]:
    """``pids`` and all their descendants."""
    import psutil

    out = set(pids)
    for pid in pids:
        try:
            out |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            pass
    return out


def _report_path(sub: classroom.Submission, out: Path, used: set[str]) -> Path:
    """``OUT/<stem>.json``, or ``OUT/<student>/<stem>.json`` for a class folder per student."""
    base = (feedback.safe_name(sub.student) + "/" if sub.in_folder else "") + sub.path.stem
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return out / f"{name}.json"


def run_jobs(subs: list[classroom.Submission], out: Path, args, on_report) -> None:
    """Grade ``subs`` with up to ``args.jobs`` workers at once; ``on_report(sub, path, report)`` is
    called as each one completes (in completion order)."""
    pending, running, used = list(subs), [], set()
    try:
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                sub = pending.pop(0)
                running.append(Job(sub, _report_path(sub, out, used), args))
            for job in list(running):
                finished, report = job.poll([j for j in running if j is not job])
                if finished:
                    running.remove(job)
                    if report is not None:
                        on_report(job.sub, job.report_path, report)
            time.sleep(0.05)
    finally:
        for job in running:   # interrupted: nothing of ours outlives the batch
            try:
                os.killpg(job.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            job.cleanup()


def cmd_grade(args) -> int:
    exercises = sorted(problems.EXERCISES)
    try:
        subs = classroom.collect(args.paths, exercises, Path(args.submitted) if args.submitted else None)
        policy = late.LatePolicy.load(Path(args.late_policy)) if args.late_policy else None
        marks = (free_response.read_scores(Path(args.free_response_scores))
                 if args.free_response_scores else {})
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not subs:
        print("no notebooks to grade", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warning = isolation.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    any_dir = any(Path(p).is_dir() for p in args.paths)
    gradebook = Path(args.gradebook) if args.gradebook else (out / "gradebook.csv" if any_dir else None)
    graded: list[tuple[classroom.Submission, runner.Report, dict]] = []

    def on_report(sub, path, report):
        report.student = sub.student
        path.write_text(report.to_json())
        row = _row(sub, report, policy, marks)
        graded.append((sub, report, row))
        feedback.write(report, sub.student, out / "feedback", late=row, free=row["free"])
        print(runner.table(report), flush=True)
        if gradebook:
            runner.write_gradebook([r for _, r, _ in graded], gradebook, [x for _, _, x in graded])

    isolation.become_subreaper()   # what a dead worker leaves is re-parented here, then swept
    runner.warm_up()
    run_jobs(subs, out, args, on_report)
    reports = [r for _, r, _ in graded]
    if gradebook:
        runner.write_gradebook(reports, gradebook, [x for _, _, x in graded])
        print(f"gradebook: {gradebook}")
    if any_dir or args.canvas:
        _class_exports(graded, out, args)
    print(f"reports: {out}/")
    if args.json:
        print(json.dumps([{"submission": r.submission, "student": r.student, "score": r.score}
                          for r in reports]))
    return 0


def _row(sub, report, policy, marks) -> dict:
    """The gradebook's extra columns for one submission: free response, lateness, final score."""
    free = marks.get((sub.student, report.exercise), {})
    days = policy.days_late(sub.student, sub.submitted_at) if policy else 0
    factor = policy.factor(days) if policy else 1.0
    total = report.score + sum(free.values())
    return {"student": sub.student, "free": free, "free_response": round(sum(free.values()), 4),
            "submitted_at": sub.submitted_at.isoformat() if sub.submitted_at else "",
            "time_source": sub.time_source, "canvas_late": sub.canvas_late, "days_late": days,
            "factor": factor, "final": round(total * factor, 4)}


def _class_exports(graded, out: Path, args) -> None:
    """Canvas CSV, free-response collections and the similarity report for a class."""
    latest: dict[tuple[str, str], tuple] = {}

    def when(sub):
        return sub.submitted_at or datetime.min.replace(tzinfo=UTC)

    for sub, report, row in graded:   # a student's latest submission of an exercise counts
        key = (sub.student, report.exercise)
        if report.exercise in problems.EXERCISES and (key not in latest or when(sub) >= when(latest[key][0])):
            latest[key] = (sub, report, row)
    exercises = sorted({e for _, e in latest})
    points = {e: problems.EXERCISES[e].points + sum(q.points for q in free_response.questions(e))
              for e in exercises}
    titles = {e: problems.EXERCISES[e].title for e in exercises}
    rows: dict[str, dict[str, float]] = {}
    for (student, exercise), (_, _, row) in latest.items():
        rows.setdefault(student, {})[exercise] = row["final"]
    path = canvas.write(rows, points, titles, Path(args.canvas) if args.canvas else out / "canvas.csv",
                        Path(args.roster) if args.roster else None)
    print(f"canvas gradebook: {path}")
    by_exercise: dict[str, list] = {}
    for (student, exercise), (sub, _, _) in latest.items():
        by_exercise.setdefault(exercise, []).append((student, sub.path))
    written = free_response.collect(by_exercise, out / "free_response")
    if written:
        print(f"free-response answers: {out / 'free_response'}/ (fill in the *_scores.csv files, then grade "
              f"again with --free-response-scores {out / 'free_response'})")
    pairs, counts = [], {}
    for exercise in exercises:
        sources = {s: r.extracted_source for (s, e), (_, r, _) in latest.items() if e == exercise}
        counts[exercise] = len(sources)
        starter = masters.ROOT / "exercises" / f"{exercise}.ipynb"
        start_src = extract.extract(starter).source if starter.exists() else ""
        pairs += similarity.compare(sources, start_src, args.similarity, exercise=exercise)
    similarity.write(pairs, out, args.similarity, counts)
    print(f"similarity: {len(pairs)} pair(s) flagged in {out / 'similarity.md'}")


def cmd_gradescope(args) -> int:
    path = gradescope.bundle(args.exercise, Path(args.out))
    print(f"wrote {path}: upload it as the autograder of {args.exercise} on Gradescope")
    return 0


def cmd_gradescope_run(args) -> int:
    return gradescope.run(Path(args.submission), Path(args.results), args.exercise, timeout=args.timeout,
                          case_timeout=args.case_timeout, run_notebook=not args.no_run)


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
    g.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    g.add_argument("--late-policy", help="TOML file: deadline, penalty_per_day, max_days_late, [extensions]")
    g.add_argument("--submitted", help="CSV of student,submitted_at (default: the files' modification times)")
    g.add_argument("--free-response-scores", help="the free_response/ folder with the filled *_scores.csv")
    g.add_argument("--roster", help="the class's Canvas gradebook export, to match students and assignments")
    g.add_argument("--canvas", help="Canvas import CSV path (default with a directory: OUT/canvas.csv)")
    g.add_argument("--similarity", type=float, default=0.7,
                   help="flag pairs sharing at least this fraction of normalised code (default 0.7)")
    g.set_defaults(func=cmd_grade)
    b = sub.add_parser("gradescope", help="write a Gradescope autograder zip for an exercise")
    b.add_argument("exercise")
    b.add_argument("--out", default="autograder.zip")
    b.set_defaults(func=cmd_gradescope)
    r = sub.add_parser("gradescope-run", help="(inside Gradescope) grade /autograder/submission")
    r.add_argument("submission")
    r.add_argument("results")
    r.add_argument("--exercise", required=True)
    r.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT)
    r.add_argument("--case-timeout", type=float, default=runner.CASE_TIMEOUT)
    r.add_argument("--no-run", action="store_true")
    r.set_defaults(func=cmd_gradescope_run)
    m = sub.add_parser("generate", help="write exercises/ and solutions/ from masters/")
    m.add_argument("--check", action="store_true", help="only check that they are up to date")
    m.set_defaults(func=cmd_generate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
