"""Single source: ``masters/NN_name.py`` → ``exercises/NN_name.ipynb`` and ``solutions/NN_name.ipynb``.

A master is a plain Python file in the "percent" cell format (readable, diffable, no extra tool):

* ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell (its lines start with ``#`` and a space);
* ``# %% summary`` starts the cell that calls ``check.summary()``: in the solution it is marked
  ``# NBVAL_CHECK_OUTPUT`` and carries the output that nbval then expects (every part passes);
* inside a code cell, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are the
  solution: kept (without the markers) in the solution notebook, replaced in the exercise by
  ``raise NotImplementedError(...)`` at the same indentation;
* free-response questions, graded by the instructor with a rubric:
  ``# %% [markdown] free-response ID POINTS`` is the question (both notebooks),
  ``# %% [markdown] answer ID`` the cell the student writes in (the master's text is the model
  answer, kept in the solution; the exercise gets a placeholder) and ``# %% [markdown] rubric ID``
  the rubric (solution only). Each such cell carries ``metadata.mmcourse`` =
  ``{"free_response": ID, "role": "question" | "answer" | "rubric"}`` (and ``points`` on the
  question), which is how the grader collects the answers.

``python -m mmcourse.grading generate`` writes both notebooks (no outputs, except the solution's
summary cell); ``generate --check`` fails if the committed ones differ from what the masters
generate (a test runs it).
"""

from __future__ import annotations

import re
from pathlib import Path

from mmcourse.grading import problems
from mmcourse.grading.inline import summary_text

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("replace this line with your code")'
HEADER = re.compile(r"^# %%(?: (\[markdown\]|summary))?"
                    r"(?: (free-response|answer|rubric) ([A-Za-z]\w*)(?: (\d+(?:\.\d+)?))?)?\s*$")
ANSWER_PLACEHOLDER = "*Write your answer here (replace this line).*"
FreeResponse = tuple[str, str, float]  # (role, id, points)


def parse(text: str) -> list[tuple[str, str]]:
    """``[(kind, source)]`` with kind in ``code``, ``markdown``, ``summary``."""
    return [(kind, source) for kind, source, _ in parse_cells(text)]


def parse_cells(text: str) -> list[tuple[str, str, FreeResponse | None]]:
    """``[(kind, source, free_response)]``; ``free_response`` is ``(role, id, points)`` or None."""
    cells: list[tuple[str, list[str], FreeResponse | None]] = []
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            kind = {"[markdown]": "markdown", "summary": "summary"}.get(m.group(1) or "", "code")
            role = m.group(2)
            if role and kind != "markdown":
                raise ValueError(f"{line!r}: a free-response cell must be '# %% [markdown] {role} ID'")
            if role == "free-response" and not m.group(4):
                raise ValueError(f"{line!r}: a free-response question needs its points: "
                                 "'# %% [markdown] free-response ID POINTS'")
            free = None if not role else (
                "question" if role == "free-response" else role, m.group(3), float(m.group(4) or 0))
            cells.append((kind, [], free))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
    out = []
    for kind, lines, free in cells:
        if kind == "markdown":
            lines = [re.sub(r"^# ?", "", ln) for ln in lines]
        out.append((kind, "\n".join(lines).strip("\n"), free))
    questions = {f[1] for _, _, f in out if f and f[0] == "question"}
    for _, _, f in out:
        if f and f[0] != "question" and f[1] not in questions:
            raise ValueError(f"'{f[0]} {f[1]}' has no '# %% [markdown] free-response {f[1]} POINTS' question")
    return out


def split_solution(source: str, solution: bool) -> str:
    """The cell as the solution (markers dropped) or the exercise (solution → stub)."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested '### BEGIN SOLUTION'")
            inside = True
            if not solution:
                indent = line[: len(line) - len(line.lstrip())]
                out += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
            continue
        if stripped == END:
            if not inside:
                raise ValueError("'### END SOLUTION' without a BEGIN")
            inside = False
            continue
        if solution or not inside:
            out.append(line)
    if inside:
        raise ValueError("'### BEGIN SOLUTION' without an END")
    return "\n".join(out)


def build(master: Path, solution: bool) -> str:
    """The notebook (as its JSON text) that ``master`` generates."""
    import nbformat  # here, not at the top: it is slow to import (jsonschema)

    name = master.stem
    exercise = problems.get_exercise(name)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "mmcourse": {"exercise": name, "kind": "solution" if solution else "exercise"},
    }
    i = 0
    for kind, source, free in parse_cells(master.read_text()):
        if free and free[0] == "rubric" and not solution:
            continue
        if kind == "markdown":
            if free and free[0] == "answer" and not solution:
                source = ANSWER_PLACEHOLDER
            cell = nbformat.v4.new_markdown_cell(source)
            if free:
                cell.metadata["mmcourse"] = {"free_response": free[1], "role": free[0]}
                if free[0] == "question":
                    cell.metadata["mmcourse"]["points"] = free[2]
        else:
            code = split_solution(source, solution)
            if kind == "summary" and solution:
                code = "# NBVAL_CHECK_OUTPUT\n" + code
            cell = nbformat.v4.new_code_cell(code)
            if kind == "summary" and solution:
                cell.execution_count = 1
                text = summary_text(exercise, [p.id for p in exercise.parts]) + "\n"
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cell["id"] = f"{name[:2]}-{i:02d}"
        nb.cells.append(cell)
        i += 1
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def targets(root: Path = ROOT) -> dict[Path, str]:
    """Every generated notebook path and its text."""
    out = {}
    found = [*(root / "masters").glob("[0-9][0-9]_*.py"), *(root / "masters").glob("capstone*.py")]
    for master in sorted(found):
        out[root / "exercises" / f"{master.stem}.ipynb"] = build(master, solution=False)
        out[root / "solutions" / f"{master.stem}.ipynb"] = build(master, solution=True)
    return out


def generate(root: Path = ROOT, check: bool = False) -> list[Path]:
    """Write the notebooks (or, with ``check``, return those that differ from the masters)."""
    stale = []
    for path, text in targets(root).items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return stale
