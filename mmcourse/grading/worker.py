"""Grade one submission in a process of its own, forked from the batch (``cli grade``).

Whatever a submission manages to do to the process grading it -- kill it, exhaust its memory,
hit a grader bug -- costs that submission's report only: the batch goes on and the gradebook is
written. The worker is forked (it shares the batch's imports, so it starts at once), leads a
session of its own, is a child subreaper (``isolation.become_subreaper``), and before it leaves
it kills every process still below it, double-forked ones included. Exit codes: 0 report
written, 3 not an exercise we know, 4 a grader error (both explained on stderr).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

from mmcourse.grading import isolation, runner


def grade_one(path: Path, report_path: Path, **options) -> int:
    """Grade ``path`` (``options`` as ``runner.grade_notebook``), write the report whole."""
    isolation.become_subreaper()
    try:
        report = runner.grade_notebook(path, **options)
    except KeyError as err:
        print(f"{path}: {err.args[0]}", file=sys.stderr, flush=True)
        return 3
    except Exception:
        print(f"{path}: the grader failed (please report this):\n{traceback.format_exc()}",
              file=sys.stderr, flush=True)
        return 4
    finally:
        isolation.sweep()
    tmp = report_path.with_name(f".{report_path.name}.{os.getpid()}")
    tmp.write_text(report.to_json())
    tmp.replace(report_path)   # a report is there whole or not at all
    return 0


def fork(path: Path, report_path: Path, tmpdir: str, **options) -> int:
    """Start a worker for ``path`` whose temporary files all go under ``tmpdir`` (the caller
    removes it, even if the worker dies); returns its pid (also its process group)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, measured by the CLI tests
        code = 4
        try:
            os.setsid()
            tempfile.tempdir = tmpdir
            code = grade_one(path, report_path, **options)
        finally:
            os._exit(code)
    return pid
