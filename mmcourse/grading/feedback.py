"""Per-student feedback: each part's score, why, and the public hint -- never a hidden case.

A report's reasons are written for the instructor and may quote a hidden case (its shape, the
student's exception message about it). Feedback says only *what kind* of failure it was (wrong
values, wrong shape, NaN where the answer is finite, too slow, an exception and its type, a
forbidden call), how many hidden cases passed, and the part's public hint from
``problems``, which students already see in ``check()``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from mmcourse.grading import problems
from mmcourse.grading.runner import PartReport, Report

KINDS = (  # (pattern in the instructor's reason, what the student is told)
    (r"contains NaN or inf", "NaN or inf where the right answer is a finite number"),
    (r"expected shape|expected an array of shape|values, got", "a result of the wrong shape or length"),
    (r"expected a bool tensor|expected integers|expected numbers", "a result of the wrong dtype"),
    (r"entries differ|expected .*, got", "wrong values"),
    (r"timed out|time budget", "too slow: a case ran past its time limit"),
    (r"calls \w+, which this exercise does not allow|does not allow", "a call this part does not allow"),
    (r"not available to graded functions|relative imports", "an import or name graded code may not use"),
    (r"crashed the sandbox|could not be loaded", "the code crashed the process that ran it"),
)
EXCEPTION = re.compile(r"hidden case \d+: ([A-Z]\w*(?:Error|Exception|Exit|Interrupt))\b")


def failure_kind(reason: str) -> str:
    """The kind of a failure, in words that reveal nothing about the hidden case."""
    m = EXCEPTION.search(reason)
    if m:
        return f"raised {m.group(1)} on some hidden cases"
    for pattern, words in KINDS:
        if re.search(pattern, reason):
            return words
    return "a wrong answer on some hidden cases"


def part_feedback(part: PartReport, hint: str) -> str:
    """One line of feedback for ``part``."""
    if part.cases and part.passed == part.cases and part.score == part.points:
        why = f"all {part.cases} hidden cases pass"
    elif "not implemented" in part.reason:
        why = "not implemented yet"
    elif part.reason.startswith("no function named"):
        why = f"no function named `{part.function}` was found at the top level of a code cell"
    elif "which this part does not allow" in part.reason:
        why = part.reason.split(";")[0]   # names only the forbidden library functions it used
    elif "constant answer" in part.reason:
        why = (f"{part.passed}/{part.cases} hidden cases pass, but only ones a constant answer also "
               "passes, which earn nothing on their own")
    else:
        why = f"{part.passed}/{part.cases} hidden cases pass; the others: {failure_kind(part.reason)}"
    return why + (f". Hint: {hint}" if hint and part.score < part.points else "")


def _hints(exercise: str) -> dict[str, str]:
    try:
        return {p.id: p.hint for p in problems.get_exercise(exercise).parts}
    except KeyError:
        return {}


def markdown(report: Report, student: str, late: dict | None = None, free: dict | None = None) -> str:
    """The feedback page for one student's submission (Markdown)."""
    hints = _hints(report.exercise)
    lines = [f"# Feedback: {report.exercise}", "", f"Student: **{student}**", "",
             f"Auto-graded score: **{report.score:g} / {report.max_score:g}**", "",
             "| part | function | score | feedback |", "| --- | --- | --- | --- |"]
    for p in report.parts:
        text = part_feedback(p, hints.get(p.id, "")).replace("|", "\\|")
        lines.append(f"| {p.id} | `{p.function}` | {p.score:g} / {p.points:g} | {text} |")
    if free:
        lines += ["", "Free-response questions (marked by your instructor): "
                  + ", ".join(f"{q}: {s:g}" for q, s in sorted(free.items()))]
    if late and late.get("days_late"):
        lines += ["", f"Submitted {late['days_late']} day(s) late: the score is multiplied by "
                      f"{late['factor']:g}."]
    run = report.execution.get("status")
    if run and run not in ("ok", "skipped"):
        lines += ["", f"Your notebook did not run top to bottom in a fresh kernel ({run}); "
                      "restart the kernel and run all cells before you hand it in."]
    return "\n".join(lines) + "\n"


def to_html(md: str, title: str) -> str:
    """A self-contained HTML page of the feedback (the table rendered, everything escaped)."""
    body, table = [], []

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-", " "}]
            cells = [[c.strip() for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
            head, *rest = cells
            trs = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
            trs += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest]
            body.append("<table>" + "".join(trs) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _inline(text: str) -> str:
    text = html.escape(text.replace("\\|", "|"))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def write(report: Report, student: str, folder: Path, late: dict | None = None,
          free: dict | None = None) -> list[Path]:
    """``<folder>/<student>/<exercise>.md`` and ``.html``."""
    out = Path(folder) / safe_name(student)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(report, student, late, free)
    paths = [out / f"{report.exercise}.md", out / f"{report.exercise}.html"]
    paths[0].write_text(md)
    paths[1].write_text(to_html(md, f"{report.exercise}: {student}"))
    return paths


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.@+-]", "_", name) or "_"
