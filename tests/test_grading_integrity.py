"""The grader's promise against a hostile student (see ``mmcourse/grading/__init__.py``).

Each crafted submission is graded by the real grader and must get the expected score and
reason, in bounded time, with the grader alive, the gradebook written, no process left behind
and no file outside the scratch directories touched. bubblewrap is installed with apt-get when
missing (the ``bubblewrap`` fixture, as root); without it the fallback mode is tested and what
it cannot protect is skipped.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_grading import FAST, notebook, reasons  # the same helpers as the basic grader tests

from mmcourse.grading import degenerate, extract, isolation, problems, runner, sandbox

pytestmark = pytest.mark.usefixtures("bubblewrap")
ROOT = Path(__file__).resolve().parents[1]
STUB = "def {}(*args, **kwargs):\n    raise NotImplementedError"


def leftovers(marker: str) -> list[str]:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(" ".join(p.info["cmdline"]))
        except psutil.Error:
            pass
    return found


# ------------------------------------------------------------------------------ channel and scan
def test_cases_are_sent_one_at_a_time_and_only_after_the_definitions(monkeypatch):
    log = []
    send, receive = sandbox._Process.send, sandbox._Process.receive

    def logged_send(self, obj):
        log.append(("send", sorted(obj)))
        return send(self, obj)

    def logged_receive(self, seconds, what):
        msg = receive(self, seconds, what)
        log.append(("receive", sorted(msg)))
        return msg

    monkeypatch.setattr(sandbox._Process, "send", logged_send)
    monkeypatch.setattr(sandbox._Process, "receive", logged_receive)
    results, _ = sandbox.evaluate([("cell 0", "def f(x):\n    return x + 1")],
                                  [("q1", "f", 0, (1,)), ("q1", "f", 1, (2,))], case_timeout=2)
    assert [results[("q1", i)].value for i in (0, 1)] == [2, 3]
    assert log[0] == ("send", ["banned", "case_timeout", "cpu", "fsize", "memory", "statements"])
    assert [k for k, _ in log] == ["send", "receive"] * 3          # setup, ready; case, answer ...
    assert log[2] == ("send", ["args", "function", "nonce", "timeout"])   # the case, its own time limit


@pytest.mark.parametrize("mode", ["auto", "none"])
def test_definition_time_code_is_scanned_and_forged_answers_are_tampering(tmp_path, monkeypatch, mode):
    """Untouched stubs; a class body writes answers into the result channel ahead of time, a
    decorator on an unused function walks the frames: nothing is earned, nothing crashes.
    (With an own uid the kernel already refuses ``/proc/self/fd``; as the grader's user the
    write succeeds and the nonce check catches it.)"""
    monkeypatch.setenv("MMCOURSE_SANDBOX", mode)
    forged = '{"ready": true}\\n' + '\\n'.join('{"nonce": "guess", "value": 1.0}' for _ in range(3))
    path = notebook(
        tmp_path / "forge.ipynb", "05_joint_classification",
        "import numpy\nimport torch",
        f"class Forge:\n    for fd in range(3, 40):\n        try:\n"
        f"            numpy.savetxt('/proc/self/fd/%d' % fd, numpy.zeros((0, 1)), header='{forged}',"
        f" comments='')\n        except Exception:\n            pass",
        "import sys\n@(lambda f: sys._getframe(1))\ndef spy():\n    pass",
        f"class Litter:\n    try:\n        numpy.savetxt({str(tmp_path / 'litter.txt')!r}, [1.0])\n"
        f"    except Exception:\n        pass",
        STUB.format("joint_probabilities"), STUB.format("joint_cross_entropy"))
    start = time.monotonic()
    report = runner.grade_notebook(path, **FAST)
    assert time.monotonic() - start < 60
    assert report.score == 0, runner.table(report)
    defined = {p.id: r for p, r in zip(report.parts, reasons(report).values())
               if p.function in ("joint_probabilities", "joint_cross_entropy")}
    assert len(defined) == 2 and all(r.startswith("no function named") for p, r in reasons(report).items()
                                     if p not in defined)
    if isolation.new_uid() < 0:
        assert all("tampering" in r for r in defined.values()), runner.table(report)
    else:
        assert all("tampering" in r or "not implemented" in r for r in defined.values())
    assert any("spy uses" in n and "sys" in n and "not loaded" in n for n in report.notes), report.notes
    if isolation.mode() != "none":   # read-only outside the scratch directory
        assert not (tmp_path / "litter.txt").exists()


def test_banned_library_reached_indirectly_earns_nothing(tmp_path):
    """``softmin`` (which calls softmax) kept in a class attribute, and ATen's ``_log_softmax``
    as a default argument: the names pass the static scan, the run-time ban stops them."""
    path = notebook(
        tmp_path / "indirect.ipynb", "05_joint_classification",
        "import torch\nimport torch.nn.functional as F",
        "class Lib:\n    soft = staticmethod(F.softmin)",
        "def joint_probabilities(scores, temperature=1.0):\n"
        "    return Lib.soft(-scores / temperature, dim=-1)",
        "def joint_cross_entropy(scores, labels, _ls=torch.ops.aten._log_softmax):\n"
        "    return -_ls(scores, 1, False)[torch.arange(len(labels)), labels].mean()")
    ex = extract.extract(path)
    assert extract.scan(ex, "joint_probabilities", problems.EX05.parts[0].forbidden) == []
    report = runner.grade_notebook(path, **FAST)
    why = reasons(report)
    assert report.score == 0, runner.table(report)
    assert "calls softmax, which this exercise does not allow" in why["q1"]
    assert "calls log_softmax" in why["q2"]


# ------------------------------------------------------------------------------ hangs, processes
def test_a_function_that_ignores_signals_and_keeps_printing_is_killed_on_time(tmp_path):
    path = notebook(
        tmp_path / "hang.ipynb", "04_attention",
        "import time",
        "def attention(q, k, v, mask=None):\n    while True:\n        try:\n"
        "            print('still working', flush=True)\n            time.sleep(0.05)\n"
        "        except BaseException:\n            pass",
        "def multi_head_attention(*args):\n    import torch\n"
        "    return list(torch.utils.data.DataLoader(range(4), num_workers=2))")
    start = time.monotonic()
    report = runner.grade_notebook(path, **FAST)
    assert time.monotonic() - start < 60, runner.table(report)
    why = reasons(report)
    assert report.score == 0 and "no answer within 4 s" in why["q1"], runner.table(report)
    assert "hidden cases pass" in why["q2"], why["q2"]          # the worker processes could not start


def test_the_sandbox_can_start_no_process_or_thread():
    """With an own uid (root is exempt from RLIMIT_NPROC) the limit equals the tasks it has."""
    if isolation.new_uid() < 0:
        pytest.skip("no own uid here: the process limit is a margin over this user's tasks")
    source = ("def f(x):\n    import numpy\n"
              "    limits = numpy.genfromtxt('/proc/self/limits', dtype=str, delimiter='\\n')\n"
              "    status = numpy.genfromtxt('/proc/self/status', dtype=str, delimiter='\\n')\n"
              "    limit = [s for s in limits if s.startswith('Max processes')][0].split()[2]\n"
              "    return [limit, [s for s in status if s.startswith('Threads')][0].split()[1]]")
    results, _ = sandbox.evaluate([("cell 0", source)], [("q1", "f", 0, (1,))], case_timeout=3)
    limit, threads = results[("q1", 0)].value
    assert limit == threads, (limit, threads)


def _killer(marker: str, outside: Path, target: str) -> str:
    """Kernel code: a double-forked daemon, a write and a delete outside, then it kills its
    ancestors whose command line mentions ``target`` ("worker": only the one grading it)."""
    kill = ("psutil.Process().parent().parent()" if target == "worker" else
            "*[p for p in psutil.Process().parents() if 'mmcourse.grading' in ' '.join(p.cmdline())]")
    return (f"import os, subprocess, time, psutil\n"
            f"subprocess.Popen(['setsid', 'sh', '-c', 'sleep {marker} & sleep {marker} &'])\n"
            f"try:\n    open({str(outside / 'written.txt')!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
            f"try:\n    os.remove({str(outside / 'keep.txt')!r})\nexcept OSError:\n    pass\n"
            f"for p in [{kill}]:\n"     # only its own ancestors: safe on a shared machine
            f"    try:\n        p.kill()\n    except psutil.Error:\n        pass\n"
            f"time.sleep(1)")


def _grade_batch(tmp_path: Path, marker: str, target: str, env: dict) -> tuple:
    subs, outside = tmp_path / "submissions", tmp_path / "outside"
    subs.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    notebook(subs / "a_killer.ipynb", "02_cnn_for_images_and_spectrograms", _killer(marker, outside, target),
             STUB.format("conv2d_unfold"), STUB.format("max_pool2d"), STUB.format("shift_experiment"))
    notebook(subs / "b_half.ipynb", "02_cnn_for_images_and_spectrograms",
             "def max_pool2d(x, kernel, stride=None):\n    import torch.nn.functional as F\n"
             "    stride = stride or kernel\n    b, c, h, w = x.shape\n"
             "    cols = F.unfold(x.reshape(b * c, 1, h, w), kernel, stride=stride)\n"
             "    h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1\n"
             "    return cols.max(1).values.reshape(b, c, h, w)")
    out = tmp_path / "reports"
    workdirs = set(Path(tempfile.gettempdir()).glob("mmcourse-worker-*"))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mmcourse.grading", "grade", str(subs), "--out", str(out),
                           "--timeout", "20", "--case-timeout", "2"], capture_output=True, text=True,
                          timeout=400, env={**os.environ, **env})
    assert time.monotonic() - start < 300
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["submission"]).name: float(r["score"])
            for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows == {"a_killer.ipynb": 0.0, "b_half.ipynb": 4.0}, rows
    assert not leftovers(f"sleep {marker}"), leftovers(f"sleep {marker}")
    assert set(Path(tempfile.gettempdir()).glob("mmcourse-worker-*")) <= workdirs   # files gone too
    return proc, {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_a_notebook_that_attacks_the_grader_changes_nothing_outside(tmp_path, bubblewrap):
    """It tries to kill every grading process above it, leaves a double-forked daemon, writes
    and deletes files outside its copy: the batch goes on, nothing survives, nothing is touched."""
    if bubblewrap == "none":
        pytest.skip("no bubblewrap and no own uid: the grader's processes are not protected (documented)")
    proc, reports = _grade_batch(tmp_path, "313.25", "all", {})
    assert (tmp_path / "outside" / "keep.txt").read_text() == "keep"
    assert not (tmp_path / "outside" / "written.txt").exists()
    assert reports["a_killer"]["execution"]["status"] != "skipped"


def test_without_bubblewrap_a_dead_worker_costs_only_its_own_grade(tmp_path):
    """The fallback: the notebook kills the worker grading it; the batch reports it at 0 and
    goes on, and the worker's leftovers are swept."""
    proc, reports = _grade_batch(tmp_path, "313.75", "worker", {"MMCOURSE_SANDBOX": "none"})
    assert "the grading worker died" in reports["a_killer"]["parts"][0]["reason"]
    assert "warning: no bubblewrap" in proc.stderr


# ------------------------------------------------------------------------------ constants
def test_constant_answers_score_nothing_on_any_seed():
    for seed in range(12):
        for ex in problems.EXERCISES.values():
            # an experiment part trains models for its reference answers: three seeds of those
            parts = [p for p in ex.parts if not p.case_timeout or seed < 3]
            _, expected = runner._expected(problems.Exercise(ex.name, ex.title, tuple(parts)), seed)
            for part in parts:
                want = expected[part.id]
                flags = [degenerate.is_degenerate(e, part.atol, part.rtol) for e in want]
                assert sum(not f for f in flags) >= 2, (ex.name, part.id, seed)
                for constant in degenerate.candidates(want[0]):
                    results = {(part.id, i): sandbox.CaseResult(value=constant) for i in range(len(want))}
                    assert runner._score_part(part, want, results).score == 0, (ex.name, part.id, constant)


def test_constant_answers_on_degenerate_cases_get_no_credit_but_honest_edges_do(tmp_path):
    path = notebook(
        tmp_path / "constants.ipynb", "07_cross_modal_retrieval",
        "import torch",
        "def retrieval_set(query, database, theta):\n    return torch.zeros(0, dtype=torch.long)",
        "def recall_at_k(similarity, relevant, k):\n    return 1.0",
        "def info_nce(image_emb, text_emb, scale):\n    return torch.tensor(0.0)")
    report = runner.grade_notebook(path, **FAST)
    assert report.score == 0, runner.table(report)
    assert "only ones a constant answer also passes" in reasons(report)["q1"]
    honest = runner.grade_notebook(ROOT / "solutions" / "07_cross_modal_retrieval.ipynb", **FAST)
    assert honest.score == honest.max_score, runner.table(honest)


def test_a_course_checked_out_under_tmp_is_seen_read_only_in_the_sandbox(bubblewrap, tmp_path, monkeypatch):
    """A CI clone (and its virtual environment) may live in an open folder under /tmp, which the
    sandbox replaces by an empty tmpfs: what the child needs from there is bound back, read-only."""
    import shutil

    from mmcourse.grading import isolation

    if bubblewrap != "bwrap":
        pytest.skip(f"bubblewrap is not usable here (mode {bubblewrap!r}): nothing is mounted")
    course = Path(tempfile.mkdtemp(prefix="mmcourse-clone-", dir="/tmp"))   # open, like a clone
    course.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (course / "hello.py").write_text(
        "import pathlib\nprint('seen')\n"
        "try:\n    pathlib.Path(__file__).with_name('written').write_text('x')\n"
        "except OSError:\n    print('read-only')\n")
    needed = isolation._needed()
    monkeypatch.setattr(isolation, "_needed", lambda: sorted({*needed, str(course)}))
    argv = isolation.command([sys.executable, str(course / "hello.py")], str(scratch))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    try:
        assert done.stdout.split() == ["seen", "read-only"], done.stderr
        assert not (course / "written").exists()
    finally:
        shutil.rmtree(course, ignore_errors=True)
