"""Grade one submission in a process of its own: ``python -m mmcourse.grading.worker``.

    python -m mmcourse.grading.worker SUBMISSION REPORT.json [--exercise E] [--timeout T]
                                      [--case-timeout C] [--seed S] [--no-run]

``cli grade`` starts one worker per submission, so that whatever a submission manages to do to
the process grading it (kill it, exhaust its memory, hit a grader bug) costs that submission's
report only: the batch goes on and the gradebook is written. The worker is a child subreaper
(``isolation.become_subreaper``), and before it leaves it kills every process still below it,
double-forked ones included. Exit codes: 0 report written, 3 not an exercise we know (message
on stderr), 4 a grader error (traceback on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from mmcourse.grading import isolation, runner


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmcourse.grading.worker")
    p.add_argument("submission")
    p.add_argument("report")
    p.add_argument("--exercise")
    p.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT)
    p.add_argument("--case-timeout", type=float, default=runner.CASE_TIMEOUT)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-run", action="store_true")
    args = p.parse_args(argv)
    isolation.become_subreaper()
    try:
        report = runner.grade_notebook(Path(args.submission), exercise=args.exercise, timeout=args.timeout,
                                       case_timeout=args.case_timeout, seed=args.seed,
                                       run_notebook=not args.no_run)
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 3
    except Exception:
        print(traceback.format_exc(), file=sys.stderr)
        return 4
    finally:
        isolation.sweep()
    out = Path(args.report)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(report.to_json())
    tmp.replace(out)   # a report is there whole or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main())
