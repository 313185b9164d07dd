"""A gradebook Canvas imports unchanged (Grades > Import).

Canvas's gradebook CSV has the identity columns ``Student, ID, SIS User ID, SIS Login ID,
Section``, then one column per assignment, named ``Title (assignment id)`` for an assignment
that exists or just ``Title`` for one Canvas should create; a second row starting with
``Points Possible`` gives each assignment's points. Canvas matches a row to a student by
``ID`` (its user id), else ``SIS User ID``, else ``SIS Login ID``.

Pass the class's own Canvas export (``--roster export.csv``) and each row gets the student's
real identity columns (a submission's student key matches ``ID``, ``SIS User ID``,
``SIS Login ID`` or the name), and an exercise whose assignment already exists there (a column
whose title starts with the exercise's name, e.g. ``04_attention (5678)``) keeps that column.
Without a roster, Canvas user ids (from Canvas's submission file names) go in ``ID`` and other
keys in ``SIS Login ID``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
ASSIGNMENT = re.compile(r"^(?P<title>.*?)\s*\((?P<id>\d+)\)\s*$")


def read_roster(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The roster's student rows and its assignment column names (Canvas's own export)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"Student", "ID"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a Canvas gradebook export (columns Student, ID, SIS User ID, "
                         f"SIS Login ID, Section, ...), got {list(rows[0]) if rows else 'an empty file'}")
    columns = [c for c in rows[0] if c not in IDENTITY]
    students = [r for r in rows if r.get("Student", "").strip() not in ("Points Possible", "Student, Test")
                and r.get("ID", "").strip()]
    return students, columns


def _identity(student: str, roster: list[dict[str, str]]) -> dict[str, str]:
    key = student.strip().lower()
    for row in roster:
        keys = {(row.get(c) or "").strip().lower() for c in ("ID", "SIS User ID", "SIS Login ID", "Student")}
        if key in keys:
            return {c: row.get(c, "") for c in IDENTITY}
    if student.isdigit():
        return {"Student": "", "ID": student, "SIS User ID": "", "SIS Login ID": "", "Section": ""}
    return {"Student": student, "ID": "", "SIS User ID": "", "SIS Login ID": student, "Section": ""}


def column_for(exercise: str, title: str, roster_columns: list[str]) -> str:
    """The roster's column for ``exercise`` if it has one, else a new assignment's title."""
    for col in roster_columns:
        m = ASSIGNMENT.match(col)
        if m and (m["title"].startswith(exercise) or m["title"] == title):
            return col
    return f"{exercise} {title}".strip()


def write(rows: dict[str, dict[str, float]], points: dict[str, float], titles: dict[str, str], path: Path,
          roster: Path | None = None) -> Path:
    """``rows``: student -> {exercise: final score}; ``points``: exercise -> points possible."""
    students, columns = read_roster(roster) if roster else ([], [])
    exercises = sorted(points)
    header = [column_for(e, titles.get(e, ""), columns) for e in exercises]
    unknown = [s for s in rows if students and _identity(s, students)["ID"] == ""]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(IDENTITY + header)
        w.writerow(["Points Possible", "", "", "", ""] + [f"{points[e]:g}" for e in exercises])
        for student in sorted(rows):
            ident = _identity(student, students)
            w.writerow([ident[c] for c in IDENTITY] + [_fmt(rows[student].get(e)) for e in exercises])
    tmp.replace(path)
    if unknown:
        print(f"warning: {len(unknown)} student(s) not in the roster {roster}: "
              f"{', '.join(sorted(unknown)[:10])} -- their rows will not match in Canvas")
    return path


def _fmt(score: float | None) -> str:
    return "" if score is None else f"{round(score, 2):g}"
