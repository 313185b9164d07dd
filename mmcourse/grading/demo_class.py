"""A synthetic class, to try the grading workflow before a real one (and to test and time it).

``make(folder, exercise, n)`` writes ``n`` students' submissions of ``exercise``, one folder per
student, built from the course's own exercise and solution notebooks: some hand in the solution,
some the untouched exercise, some solve the first or the last part only, one copies a classmate with every
variable renamed and comments added, one hands in a function that never returns; a ``policy.toml``
(deadline, 10 % per day, 3 days at most) and a ``submitted.csv`` with two late students come with
it. It returns what each student should score, so a test can check the grader against it.

    python -m mmcourse.grading.demo_class demo/ 04_attention 30
    mmcourse grade demo/class --jobs 2 --late-policy demo/policy.toml --submitted demo/submitted.csv
"""

from __future__ import annotations

import ast
import copy
import io
import sys
import tokenize
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mmcourse.grading import masters, problems

DEADLINE = "2026-12-01T23:59:00+00:00"


@dataclass(frozen=True)
class Student:
    name: str
    kind: str            # solution, untouched, first_part, last_part, renamed_copy, hangs
    days_late: int
    expected_score: float


def _defines(cell, names: set[str]) -> set[str]:
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} & names


def _rename_locals(source: str) -> str:
    """Every argument and assigned local gets another name (not attributes, not keyword
    arguments of calls), and comments are added: what a student hiding a copy would do."""
    tree = ast.parse(source)
    names = {a.arg for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for a in n.args.args}
    names |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    out, depth, in_def = [], 0, False
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "def":
            in_def = True
        elif tok.type == tokenize.NEWLINE:
            in_def = False
        elif tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        before = tokens[i - 1].string if i else ""
        keyword_arg = depth > 0 and after == "=" and not in_def
        if tok.type == tokenize.NAME and tok.string in names and before != "." and not keyword_arg:
            tok = tok._replace(string=f"my_{tok.string}_var")
        elif tok.type == tokenize.NEWLINE and tokens[i - 1].type != tokenize.COMMENT and depth == 0:
            tok = tok._replace(string="  # my own work" + tok.string)
        out.append(tok)
    return tokenize.untokenize(out)


def make(folder: Path, exercise: str = "04_attention", n: int = 30,
         root: Path = masters.ROOT) -> list[Student]:
    import nbformat  # here, not at the top: it is slow to import (jsonschema)

    ex = problems.get_exercise(exercise)
    solution = nbformat.read(str(root / "solutions" / f"{ex.name}.ipynb"), as_version=4)
    blank = nbformat.read(str(root / "exercises" / f"{ex.name}.ipynb"), as_version=4)
    functions = {p.function for p in ex.parts}
    first = ex.parts[0]

    def with_solution_of(nb, wanted: set[str], transform=None):
        out = copy.deepcopy(nb)
        by_function = {f: c for c in solution.cells if c.cell_type == "code" for f in _defines(c, functions)}
        for cell in out.cells:
            hit = _defines(cell, functions) & wanted
            if cell.cell_type == "code" and hit:
                cell.source = by_function[hit.pop()].source
                if transform:
                    cell.source = transform(cell.source)
        return out

    kinds = ["solution", "renamed_copy", "hangs"] + ["first_part", "last_part"] * (n // 3)
    kinds += ["untouched"] * (n - len(kinds))
    students, late = [], {3: 1, 5: 5}    # student index -> days late
    class_dir = Path(folder) / "class"
    for i, kind in enumerate(kinds[:n]):
        name = f"student{i + 1:02d}"
        if kind == "solution":
            nb, score = solution, ex.points
        elif kind == "renamed_copy":
            nb, score = with_solution_of(blank, functions, _rename_locals), ex.points
        elif kind == "first_part":
            nb, score = with_solution_of(blank, {first.function}), first.points
        elif kind == "last_part":
            nb, score = with_solution_of(blank, {ex.parts[-1].function}), ex.parts[-1].points
        elif kind == "hangs":
            nb = with_solution_of(blank, set())
            for cell in nb.cells:
                if cell.cell_type == "code" and first.function in _defines(cell, functions):
                    cell.source = f"def {first.function}(*args, **kwargs):\n    while True:\n        pass\n"
            score = 0.0
        else:
            nb, score = blank, 0.0
        days = late.get(i, 0)
        factor = 0.0 if days > 3 else 1 - 0.1 * days
        (class_dir / name).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(class_dir / name / f"{ex.name}.ipynb"))
        students.append(Student(name, kind, days, round(score * factor, 4)))
    (Path(folder) / "policy.toml").write_text(
        f'deadline = "{DEADLINE}"\npenalty_per_day = 0.10\nmax_days_late = 3\n')
    deadline = datetime.fromisoformat(DEADLINE)
    when = {s.name: deadline - timedelta(hours=3) if not s.days_late else
            deadline + timedelta(days=s.days_late - 1, hours=1) for s in students}
    rows = ["student,submitted_at"] + [f"{s.name},{when[s.name].isoformat()}" for s in students]
    (Path(folder) / "submitted.csv").write_text("\n".join(rows) + "\n")
    return students


if __name__ == "__main__":
    target, exercise, count = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "04_attention", \
        int(sys.argv[3]) if len(sys.argv) > 3 else 30
    for s in make(Path(target), exercise, count):
        print(f"{s.name}: {s.kind}, {s.days_late} day(s) late, should score {s.expected_score:g}")
