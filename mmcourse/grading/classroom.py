"""A class's submissions: who handed in which notebook, and when.

``mmcourse grade CLASS_DIR`` accepts the layouts instructors get from their tools:

* one folder per student (``CLASS_DIR/<student>/...ipynb``, e.g. a JupyterHub or nbgrader
  ``submitted/`` tree) -- the student is the folder's name;
* one file per student (``CLASS_DIR/<student>.ipynb`` or ``<student>_04_attention.ipynb``) --
  the student is the file name without the exercise;
* Canvas's "Download submissions" zip, unpacked: ``<name>[_LATE]_<user id>_<submission id>_<file>``
  -- the student is the Canvas user id (which the Canvas gradebook export matches), and Canvas's
  own late flag is kept.

The time of a submission is, in order: the instructor's ``submitted.csv`` (``student,submitted_at``,
ISO 8601), else the file's modification time (what an LMS download or ``nbgrader collect``
leaves; say so in the late report).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CANVAS_NAME = re.compile(r"^(?P<name>[a-z0-9]+)(?P<late>_LATE)?_(?P<user>\d+)_(?P<sub>\d+)_(?P<file>.+)$",
                         re.IGNORECASE)


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    submitted_at: datetime | None = None
    time_source: str = ""          # "submitted.csv", "file time" or "" (unknown)
    canvas_late: bool = False      # Canvas marked the download _LATE
    in_folder: bool = False        # found in a folder of the student's own


def parse_time(text: str, where: str) -> datetime:
    """An ISO 8601 time; a time without a zone is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO 8601 time such as "
                         "2026-12-01T23:59:00+00:00") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_submitted(path: Path) -> dict[str, datetime]:
    """``student -> submitted_at`` from a CSV with the columns ``student`` and ``submitted_at``."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    if not {"student", "submitted_at"} <= set(reader.fieldnames or ()):
        raise ValueError(f"{path}: expected the columns 'student' and 'submitted_at', "
                         f"got {reader.fieldnames}")
    return {r["student"].strip(): parse_time(r["submitted_at"], f"{path}, student {r['student']}")
            for r in rows}


def student_of(path: Path, root: Path, exercises: list[str]) -> tuple[str, bool]:
    """(student, Canvas late flag) for a notebook found under ``root``."""
    rel = path.relative_to(root)
    if len(rel.parts) > 1:
        return rel.parts[0], False
    m = CANVAS_NAME.match(path.name)
    if m:
        return m["user"], bool(m["late"])
    stem = path.stem
    for name in sorted(exercises, key=len, reverse=True):
        for tag in (name, name[:2]):
            for sep in ("_", "-", "."):
                if stem.endswith(sep + tag) and len(stem) > len(tag) + 1:
                    return stem[: -len(tag) - 1], False
                if stem.startswith(tag + sep) and len(stem) > len(tag) + 1:
                    return stem[len(tag) + 1:], False
    return stem, False


def collect(paths: list[str], exercises: list[str], submitted_csv: Path | None = None) -> list[Submission]:
    """Every notebook named by ``paths``, with its student and time. A directory argument is a
    class directory (see the module docstring); a file argument is its own student."""
    times = read_submitted(submitted_csv) if submitted_csv else {}
    found: list[Submission] = []
    for arg in map(Path, paths):
        if arg.is_dir():
            notebooks = sorted(q for q in arg.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
            pairs = [(q, *student_of(q, arg, exercises), len(q.relative_to(arg).parts) > 1)
                     for q in notebooks]
        else:
            pairs = [(arg, *student_of(arg, arg.parent, exercises), False)]
        for path, student, late, in_folder in pairs:
            if student in times:
                when, source = times[student], "submitted.csv"
            elif path.exists():
                when, source = datetime.fromtimestamp(path.stat().st_mtime, UTC), "file time"
            else:
                when, source = None, ""
            found.append(Submission(student, path, when, source, late, in_folder))
    return found
