"""Graded exercises: inline checks for students, a batch grader for instructors.

Students::

    from mmcourse.grading import checks_for
    check = checks_for("04_attention")
    check("q1", attention)                 # public cases, immediate feedback

Instructors::

    python -m mmcourse.grading grade submissions/ --out reports/     # or: mmcourse grade ...
    python -m mmcourse.grading generate [--check]                   # masters → exercises/, solutions/

Modules: ``problems`` (the exercises, parts, points, case generators, references), ``references``,
``inline`` (``check``), ``extract`` (static extraction and scanning of definitions), ``sandbox``
(the grader's side of the evaluation process) and ``boot`` (its side), ``isolation`` (bubblewrap,
own uid, process limits, sweeping), ``execute`` (nbclient run in a fresh kernel), ``codec`` (safe
wire format + comparison), ``degenerate`` (cases a constant passes), ``runner`` (one report per
submission, the gradebook), ``worker`` (one submission in its own process), ``masters``
(single-source generation), ``cli``; around them, the instructor's workflow for a class:
``classroom`` (who handed in what, when), ``late`` (deadline, extensions, penalty),
``feedback`` (per-student pages without hidden cases), ``free_response`` (answers collected,
rubric marks merged), ``canvas`` (the gradebook import CSV), ``gradescope`` (the autograder
bundle and its ``results.json``), ``similarity`` (pairs to read side by side) and
``demo_class`` (a synthetic class to try it all on).

Threat model
------------
The submission is a notebook written by a student who may try to raise their score or break
the grading run. The grader guarantees, for a submission that contains anything at all:

* **It always produces a score and a reason**, and a batch always ends with a gradebook. Syntax
  errors skip that cell; exceptions, ``SystemExit`` and crashes fail the case in flight (a fresh
  sandbox takes the other parts); every case has a hard wall-clock limit (``SIGALRM`` in the
  sandbox, and the grader kills the process at ``case_timeout`` (an experiment part's own
  allowance if larger) + 2 s whatever it does with
  signals or output), so does every submission and the notebook run; the CLI grades each
  submission in a worker process of its own, so a worker that dies costs only that report.
  Outputs are capped (kernel outputs at 200 kB, sandbox stdout to ``/dev/null``, answers at
  64 MB, memory at 6 GB of address space, CPU time bounded).
* **Student code never runs in the grading process**, and the hidden cases are out of its
  reach: the grader reads the notebook as data, keeps only definitions (``extract``), scans
  *every* statement that would execute -- function and class bodies, decorators, default
  values, imports -- and leaves out any that names what no graded code needs (``os``, ``sys``,
  ``eval``, ``getattr``, frames, ``gc``, threads, torch internals...). The sandbox loads the
  definitions before any hidden case exists in it, then receives one case at a time with a
  fresh random nonce; its answer must be one JSON line with that nonce, decoded without
  ``pickle`` and compared in the grader with references computed there. Answers written ahead
  of time, or anything else written to the channel, are tampering and fail the case.
* **Hidden cases** are drawn from a secret seed (``secrets``) with other shapes and values than
  the public ones, so hard-coding public answers earns nothing; the seed is in the report
  (``--seed`` reproduces a grade). Cases on which a constant answer is right pay only next to a
  general case that passes (``degenerate``), so a constant scores 0.
* **Calling the library is not implementing.** A part whose function -- or a function or class
  it uses -- names one of its forbidden names (e.g. ``F.conv2d``) scores 0 with that reason, and
  at run time every torch function and ATen operator whose name the exercise forbids raises,
  however it was reached (an alias, ``torch.ops.aten``, a module that calls it); an experiment
  part may be ``allowed`` a name another part forbids (it trains with the library's loss).
  Imports of ``mmcourse.grading`` (the references), scikit-learn, SciPy and system modules are
  refused in the sandbox (experiment parts may import the package's data, models, metrics,
  training, interpretation and robustness modules), and its built-ins lack ``open``, ``eval``,
  ``getattr``...
* **Isolation from the operating system** (``isolation``): with bubblewrap, the sandbox and the
  notebook run have their own PID namespace (no process outlives grading; the grader is out of
  sight), no network, and a read-only file system but for a scratch directory; as root they
  also run under an unprivileged uid of their own with a process limit (the sandbox cannot
  fork or start a thread). Without bubblewrap a warning says what is lost.

Not protected: without bubblewrap and as an ordinary user, submissions run with that user's
files, network and signals (the grader warns). Python code cannot be confined in-process: code
obfuscated past the name scan could still change its *own* answers in ways Python allows -- it
cannot see other cases, the references or the comparison, and the run-time ban still applies
-- and the report's ``extracted_source`` is there for a human to review.
"""

from __future__ import annotations

__all__ = ["Checker", "checks_for"]


def __getattr__(name: str):
    # lazy, so that the notebook runner (``execute``) starts without importing torch
    if name in __all__:
        from mmcourse.grading import inline

        return getattr(inline, name)
    raise AttributeError(f"module 'mmcourse.grading' has no attribute {name!r}")
