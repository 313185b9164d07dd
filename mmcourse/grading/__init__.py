"""Graded exercises: inline checks for students, a batch grader for instructors.

Students::

    from mmcourse.grading import checks_for
    check = checks_for("04_attention")
    check("q1", attention)                 # public cases, immediate feedback

Instructors::

    python -m mmcourse.grading grade submissions/ --out reports/     # or: mmcourse grade ...
    python -m mmcourse.grading generate [--check]                   # masters → exercises/, solutions/

Modules: ``problems`` (the exercises, parts, points, case generators, references), ``references``,
``inline`` (``check``), ``extract`` (static extraction of definitions), ``sandbox`` (evaluation
in a limited child process), ``execute`` (nbclient run in a fresh kernel), ``codec`` (safe wire
format + comparison), ``runner`` (one report per submission, the gradebook), ``masters``
(single-source generation), ``cli``.

Threat model
------------
The submission is a notebook written by a student who may try to raise their score or break
the grading run. The grader guarantees, for a submission that contains anything at all:

* **It always produces a score and a reason.** Syntax errors skip that cell; exceptions,
  ``sys.exit()`` and ``os._exit()`` fail the case in flight (the sandbox is restarted for the
  other parts); infinite loops and ``time.sleep(1e9)`` hit a per-case ``SIGALRM`` timeout, or,
  if the code swallows it, the parent kills the process group after ``case_timeout`` + 3 s of
  no progress; the notebook run has its own timeout and its kernel is killed with it; huge
  outputs are capped (kernel outputs at 200 kB, sandbox stdout goes to ``/dev/null``, results
  at 64 MB, memory at 6 GB of address space, CPU time bounded).
* **Student code never runs in the grading process.** The grader reads the notebook as data
  and extracts only definitions (imports, ``def``, ``class``, literal constants) with ``ast``.
  Top-level statements -- monkeypatching ``torch``, ``numpy``, ``mmcourse`` or ``check``,
  deleting files -- are not executed by the grader at all (only in the report-only notebook
  run, in a temporary copy of the directory). Hidden cases and reference answers are computed
  before any student code runs, in the grading process, and answers come back as JSON data
  decoded without ``pickle`` (``codec``) and compared here; so patching ``torch.allclose`` or
  the references inside the sandbox changes nothing that is compared.
* **Hidden cases are not visible from the student's kernel**: they are drawn from a secret
  random seed (``secrets``) at grading time, with other shapes and values than the public
  cases, so hard-coding the public answers earns nothing. The seed is in the report, so a
  grade can be reproduced (``--seed``).
* **A submission cannot score more than an honest stub by cheating the grader**: an unchanged
  stub scores 0; each part is scored only by comparing its function's own answers.
* **Calling the library is not implementing.** Each part lists forbidden names (e.g.
  ``F.conv2d`` for the convolution); a part whose function -- or a helper it calls -- names
  one, or names ``eval``/``exec``/``getattr``/``open``/``os``/``sys``/``importlib``..., scores
  0 with that reason. In the sandbox, ``mmcourse`` (the references) and scikit-learn cannot
  be imported. The source that was graded is in the JSON report for the instructor to read.

Out of scope: this is not an operating-system sandbox. The student's code runs as the
instructor's user (without the grader's memory, but with the file system), so a deliberately
malicious submission could damage files outside the temporary directories by absolute path,
or use the network. Grade untrusted submissions in a throw-away account or container. Static
checks for forbidden calls can be defeated by obfuscation that Python allows; the report's
``extracted_source`` is there for a human to review.
"""

from __future__ import annotations

__all__ = ["Checker", "checks_for"]


def __getattr__(name: str):
    # lazy, so that the notebook runner (``execute``) starts without importing torch
    if name in __all__:
        from mmcourse.grading import inline

        return getattr(inline, name)
    raise AttributeError(f"module 'mmcourse.grading' has no attribute {name!r}")
