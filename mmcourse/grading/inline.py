"""Immediate feedback in the student's notebook: ``check("q1", fn)`` on the *public* cases.

    from mmcourse.grading import checks_for
    check = checks_for("02_cnn_for_images_and_spectrograms")
    ...
    check("q1", conv2d_unfold)      # prints what passes and, if not, the first difference
    check.summary()                 # which parts pass their public cases

This runs in the student's kernel, so it is advice, not a grade: the grader calls the same
functions on hidden cases in a sandbox (``runner.py``). ``check`` never raises (a stub that
raises ``NotImplementedError`` is reported as not done yet), so an exercise notebook runs top
to bottom.
"""

from __future__ import annotations

import time

from mmcourse.grading import codec, problems


class Checker:
    """The inline checks of one exercise; call it as ``check(part_id, function)``."""

    def __init__(self, exercise: str):
        self.exercise = problems.get_exercise(exercise)
        self.passed: dict[str, bool] = {}

    def __call__(self, part_id: str, fn) -> None:
        """Print how ``fn`` does on part ``part_id``'s public cases; ``self.passed[part_id]``
        keeps the verdict (nothing is returned, so the cell shows only the message)."""
        part = self.exercise.part(part_id)
        label = f"{part.id} {part.function} ({part.points:g} point{'s' if part.points != 1 else ''})"
        if not callable(fn):
            print(f"{label}: expected a function, got {type(fn).__name__}")
            return self._record(part, False)
        cases = problems.public_cases(part)
        for i, args in enumerate(cases, 1):
            want = codec.decode(codec.encode(part.reference(*args)))
            start = time.perf_counter()
            try:
                got = codec.decode(codec.encode(fn(*args)))
            except NotImplementedError:
                print(f"{label}: not implemented yet")
                return self._record(part, False)
            except Exception as err:
                print(f"{label}: public case {i} raised {type(err).__name__}: {err}")
                return self._record(part, False)
            reason = codec.compare(want, got, part.atol, part.rtol)
            if reason:
                hint = f"\n    hint: {part.hint}" if part.hint else ""
                print(f"{label}: public case {i} fails: {reason}{hint}")
                return self._record(part, False)
            allowed = max(5.0, part.case_timeout or 0.0)
            if time.perf_counter() - start > 0.4 * allowed:
                print(f"{label}: public case {i} took {time.perf_counter() - start:.1f} s; the grader "
                      f"allows {allowed:g} s per case")
        print(f"{label}: all {len(cases)} public cases pass")
        return self._record(part, True)

    def _record(self, part: problems.Part, ok: bool) -> None:
        self.passed[part.id] = ok

    def summary(self) -> None:
        print(summary_text(self.exercise, [p.id for p in self.exercise.parts if self.passed.get(p.id)]))


def summary_text(exercise: problems.Exercise, passing: list[str]) -> str:
    n = len(exercise.parts)
    if len(passing) == n:
        return (f"{exercise.name}: all {n} parts pass their public cases. "
                "The grader will also test them on hidden cases.")
    todo = [p.id for p in exercise.parts if p.id not in passing]
    return (f"{exercise.name}: {len(passing)} of {n} parts pass their public cases; "
            f"still to do: {', '.join(todo)}")


def checks_for(exercise: str) -> Checker:
    """The ``check`` function of an exercise (its file stem, e.g. ``"04_attention"``)."""
    return Checker(exercise)
