"""Free-response questions: collect a class's answers for the instructor, merge the rubric scores back.

The questions, their points and rubrics come from the exercise's master (``masters/NN_name.py``,
``# %% [markdown] free-response ID POINTS`` / ``answer ID`` / ``rubric ID``), never from a
submission (a student could edit a notebook's metadata). A student's answer is the markdown cell
whose ``metadata.mmcourse`` says ``{"free_response": ID, "role": "answer"}``; if a student
deleted that metadata, the markdown cell right after the question's text is taken instead.

``collect`` writes, per exercise and question, ``<out>/<exercise>/<ID>.md`` (the question, the
rubric, then every student's answer under their name: one file to read and mark) and
``<ID>_scores.csv`` (``student,score,comment``, scores blank) for the instructor to fill in;
``read_scores`` reads the filled files back for the gradebook (``--free-response-scores``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mmcourse.grading import masters


@dataclass(frozen=True)
class Question:
    id: str
    points: float
    text: str
    rubric: str
    model_answer: str


def questions(exercise: str, root: Path = masters.ROOT) -> list[Question]:
    """The free-response questions of ``exercise`` (empty if its master has none)."""
    master = root / "masters" / f"{exercise}.py"
    if not master.exists():
        return []
    cells = masters.parse_cells(master.read_text())
    found: dict[str, dict] = {}
    for _, source, free in cells:
        if free:
            role, qid, points = free
            entry = found.setdefault(qid, {"points": 0.0, "question": "", "answer": "", "rubric": ""})
            entry[role] = source
            if role == "question":
                entry["points"] = points
    return [Question(q, e["points"], e["question"], e["rubric"], e["answer"]) for q, e in found.items()]


def answers_in(path: Path, qs: list[Question]) -> dict[str, str]:
    """``question id -> the student's answer`` (``""`` when missing or left as the placeholder)."""
    import nbformat  # here, not at the top: it is slow to import (jsonschema)

    try:
        cells = nbformat.read(str(path), as_version=4).cells
    except Exception:
        return {q.id: "" for q in qs}
    out = {}
    for q in qs:
        text = None
        for cell in cells:
            meta = cell.get("metadata", {}).get("mmcourse", {})
            if isinstance(meta, dict) and meta.get("free_response") == q.id and meta.get("role") == "answer":
                text = cell.source
                break
        if text is None:   # metadata lost: the markdown cell after the question's text
            for i, cell in enumerate(cells[:-1]):
                if cell.cell_type == "markdown" and cell.source.strip() == q.text.strip() \
                        and cells[i + 1].cell_type == "markdown":
                    text = cells[i + 1].source
                    break
        text = (text or "").strip()
        out[q.id] = "" if text == masters.ANSWER_PLACEHOLDER else text
    return out


def collect(by_exercise: dict[str, list[tuple[str, Path]]], out: Path,
            root: Path = masters.ROOT) -> list[Path]:
    """Write the answer files and score templates; ``by_exercise`` maps an exercise to its
    ``(student, notebook)`` pairs. Returns the files written. A filled scores file is never
    overwritten (the instructor's marks stay)."""
    written = []
    for exercise, subs in sorted(by_exercise.items()):
        qs = questions(exercise, root)
        if not qs:
            continue
        folder = out / exercise
        folder.mkdir(parents=True, exist_ok=True)
        answers = {student: answers_in(path, qs) for student, path in subs}
        for q in qs:
            lines = [f"# {exercise} — {q.id} ({q.points:g} points)", "", "## Question", "", q.text, "",
                     "## Rubric", "", q.rubric or "(no rubric in the master)", ""]
            for student in sorted(answers):
                answer = answers[student][q.id] or "*(no answer)*"
                lines += [f"## {student}", "", answer, ""]
            md = folder / f"{q.id}.md"
            md.write_text("\n".join(lines))
            written.append(md)
            scores = folder / f"{q.id}_scores.csv"
            if not scores.exists():
                with open(scores, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["student", "score", "comment"])
                    w.writerows([s, "", ""] for s in sorted(answers))
                written.append(scores)
    return written


def read_scores(folder: Path, root: Path = masters.ROOT) -> dict[tuple[str, str], dict[str, float]]:
    """``(student, exercise) -> {question id: score}`` from the filled ``*_scores.csv`` files under
    ``folder`` (``<exercise>/<ID>_scores.csv``). Blank scores are left out; a score outside
    ``[0, points]`` or not a number is an error naming the file and student."""
    merged: dict[tuple[str, str], dict[str, float]] = {}
    for path in sorted(Path(folder).glob("*/*_scores.csv")):
        exercise, qid = path.parent.name, path.name[: -len("_scores.csv")]
        points = {q.id: q.points for q in questions(exercise, root)}
        if qid not in points:
            raise ValueError(f"{path}: exercise {exercise} has no free-response question {qid!r} "
                             f"(its questions: {sorted(points)})")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                raw = (row.get("score") or "").strip()
                if not raw:
                    continue
                try:
                    score = float(raw)
                except ValueError:
                    raise ValueError(f"{path}: the score of {row.get('student')!r} is {raw!r}, "
                                     "not a number") from None
                if not 0 <= score <= points[qid]:
                    raise ValueError(f"{path}: the score of {row.get('student')!r} is {score:g}, outside "
                                     f"[0, {points[qid]:g}]")
                merged.setdefault((row["student"].strip(), exercise), {})[qid] = score
    return merged
