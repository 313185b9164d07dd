"""The graded exercises: for each chapter, its parts, points, references and test cases.

A part asks for one function with a stated signature. Its test cases are argument tuples;
``public`` cases (fixed seed, shown by the inline ``check``) and ``hidden`` cases (drawn from a
secret seed at grading time, different shapes and values, edge cases included) are both made
by the part's ``cases(generator, public)`` function, and the expected answers come from the
``reference`` function, which is the package's own implementation, PyTorch or scikit-learn.
``forbidden`` lists the names a solution may not use (calling the library is not implementing).

The parts live one exercise per module (``ex02`` .. ``ex14``, and ``capstone`` after chapter
10); ``base`` defines ``Part`` and ``Exercise`` and draws the cases.
"""

from __future__ import annotations

from mmcourse.grading.problems.base import PUBLIC_SEED, Cases, Exercise, Part, hidden_cases, public_cases
from mmcourse.grading.problems.capstone import CAPSTONE
from mmcourse.grading.problems.ex02 import EX02
from mmcourse.grading.problems.ex03 import EX03
from mmcourse.grading.problems.ex04 import EX04
from mmcourse.grading.problems.ex05 import EX05
from mmcourse.grading.problems.ex06 import EX06
from mmcourse.grading.problems.ex07 import EX07
from mmcourse.grading.problems.ex08 import EX08
from mmcourse.grading.problems.ex09 import EX09
from mmcourse.grading.problems.ex10 import EX10
from mmcourse.grading.problems.ex11 import EX11
from mmcourse.grading.problems.ex12 import EX12
from mmcourse.grading.problems.ex13 import EX13
from mmcourse.grading.problems.ex14 import EX14

__all__ = ["EXERCISES", "PUBLIC_SEED", "Cases", "Exercise", "Part", "get_exercise", "hidden_cases",
           "public_cases", "CAPSTONE", "EX02", "EX03", "EX04", "EX05", "EX06", "EX07", "EX08", "EX09", "EX10",
           "EX11", "EX12", "EX13", "EX14"]


EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in
                                  (EX02, EX03, EX04, EX05, EX06, EX07, EX08, EX09, EX10, CAPSTONE,
                                   EX11, EX12, EX13, EX14)}


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name`` (its file stem, e.g. ``"04_attention"``, or its number ``"04"``)."""
    if name in EXERCISES:
        return EXERCISES[name]
    matches = [ex for key, ex in EXERCISES.items() if key.split("_")[0] == name]
    if len(matches) == 1:
        return matches[0]
    raise KeyError(f"no exercise {name!r}; the exercises are {sorted(EXERCISES)}")
