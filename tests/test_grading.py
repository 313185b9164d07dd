"""The graded exercises and the grader: single source, full marks, zeros, and bad submissions.

Each bad submission below is graded by the real grader (sandboxes, and for one of them a
kernel run) and must get the expected score and reason, without the grader crashing. Several
misbehaviours are packed into one notebook (one per part) to keep the sandbox start-ups few.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mmcourse.grading import codec, extract, masters, problems, runner
from mmcourse.grading.inline import Checker

pytestmark = pytest.mark.usefixtures("bubblewrap")
ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(problems.EXERCISES)
FAST = {"run_notebook": False, "case_timeout": 2.0}


def notebook(path: Path, exercise: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["mmcourse"] = {"exercise": exercise}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def reasons(report) -> dict[str, str]:
    return {p.id: p.reason for p in report.parts}


# ------------------------------------------------------------------------------ single source
def test_committed_exercises_and_solutions_are_what_the_masters_generate():
    stale = masters.generate(ROOT, check=True)
    assert stale == [], f"re-run `python -m mmcourse.grading generate`: {stale}"
    assert sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb")) == NAMES
    assert sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb")) == NAMES


def test_every_chapter_from_02_has_an_exercise_with_points():
    """Chapters 02 onward have one exercise each; the capstone (after chapter 10) is the one
    exercise that is not a chapter's."""
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [n for n in NAMES if n != "capstone"] == chapters[2:]
    assert "capstone" in NAMES and not (ROOT / "notebooks" / "capstone.ipynb").exists()
    for ex in problems.EXERCISES.values():
        assert len(ex.parts) >= 2 and all(p.points > 0 for p in ex.parts)


def test_master_solution_regions_become_stubs():
    cell = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert masters.split_solution(cell, solution=True) == "def f(x):\n    return x"
    stub = masters.split_solution(cell, solution=False)
    assert "return x" not in stub and f"    {masters.STUB}" in stub
    for broken in ("    ### BEGIN SOLUTION\n", "    ### END SOLUTION\n",
                   "### BEGIN SOLUTION\n### BEGIN SOLUTION\n"):
        with pytest.raises(ValueError):
            masters.split_solution(broken, solution=False)


def test_exercise_notebooks_hold_no_solution_code():
    for name in NAMES:
        ex = (ROOT / "exercises" / f"{name}.ipynb").read_text()
        sol = (ROOT / "solutions" / f"{name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in ex + sol
        # every graded function is a stub (a helper the student writes for it may be one too)
        parts = problems.EXERCISES[name].parts
        assert ex.count("NotImplementedError(") >= len(parts)
        nb = nbformat.reads(ex, as_version=4)
        for part in parts:
            cell = next(c.source for c in nb.cells if f"def {part.function}(" in c.source)
            assert masters.STUB in cell, (name, part.function)
        assert "NBVAL_CHECK_OUTPUT" in sol and "NBVAL_CHECK_OUTPUT" not in ex


# ------------------------------------------------------------------------------ cases, checks
def test_hidden_cases_differ_from_the_public_ones_and_between_seeds():
    for ex in problems.EXERCISES.values():
        for part in ex.parts:
            public = problems.public_cases(part)
            a, b = problems.hidden_cases(part, 1), problems.hidden_cases(part, 2)
            assert len(a) >= 3 and public
            enc = [json.dumps(codec.encode(list(c))) for c in public]
            assert not {json.dumps(codec.encode(list(c))) for c in a} & set(enc), part
            if part.function not in ("balanced_class_weights",):
                assert json.dumps(codec.encode([list(c) for c in a])) != json.dumps(
                    codec.encode([list(c) for c in b])), part


def test_inline_check_reports_pass_stub_and_failure(capsys):
    from mmcourse.grading import references as ref

    check = Checker("06_fusion_strategies")
    check("q1", ref.late_fusion)
    assert check.passed == {"q1": True}

    def stub(logits, present):
        raise NotImplementedError

    check("q1", stub)
    assert check.passed == {"q1": False}
    check("q1", lambda logits, present: logits.mean(0))           # ignores which are present
    assert check.passed == {"q1": False}
    check.summary()
    out = capsys.readouterr().out
    assert "all 3 public cases pass" in out and "not implemented yet" in out
    assert "public case 2 fails" in out and "hint: average the logits of the present modalities" in out
    assert "0 of 3 parts pass" in out


def test_codec_refuses_anything_but_plain_data():
    import numpy as np

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(codec.decode(codec.encode(x)), x)
    for forged in ({"__nd__": ["object", [1], ""]}, {"__nd__": ["float32", [100], "AAAA"]},
                   {"__reduce__": 1}, {"__nd__": ["float32", [-1], ""]}):
        with pytest.raises(ValueError):
            codec.decode(forged)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(codec.EncodeError):
        codec.encode(Evil())
    assert codec.compare(np.zeros(3), [0.0, 0.0, 0.0], 1e-6, 1e-6) is None
    assert "shape" in codec.compare(np.zeros(3), np.zeros(4), 1e-6, 1e-6)
    assert "NaN" in codec.compare(np.zeros(2), np.array([0.0, np.nan]), 1e-6, 1e-6)


def test_extraction_keeps_definitions_only_and_resolves_aliases(tmp_path):
    path = notebook(tmp_path / "x.ipynb", "02",
                    "%matplotlib inline\nimport torch.nn.functional as F\nfrom torch import tanh as th\n"
                    "N = 3\ntorch.allclose = None\nprint('side effect')",
                    "def f(x):\n    return helper(x)\ndef helper(x):\n    return F.conv2d(x, x)\n"
                    "def g(x):\n    return th(x)",
                    "def broken(:\n    pass")
    ex = extract.extract(path)
    assert "allclose" not in ex.source and "print" not in ex.source and "N = 3" in ex.source
    assert set(ex.functions) == {"f", "helper", "g"}
    assert any("syntax error" in n for n in ex.notes)
    assert extract.scan(ex, "f", ("conv2d",)) == ["conv2d"]
    assert extract.scan(ex, "g", ("tanh",)) == ["tanh"]
    assert extract.scan(ex, "g", ("conv2d",)) == []
    own = notebook(tmp_path / "own.ipynb", "06",
                   "import torch\ndef softmax(z):\n    e = torch.exp(z - z.max())\n    return e / e.sum()\n"
                   "def early_fusion(features, weight, bias):\n"
                   "    linear = torch.cat(features, 1) @ weight.T\n"
                   "    return softmax(linear + bias)\n"
                   "def cheat(z):\n    softmax = torch.softmax\n    return softmax(z, -1)")
    ex = extract.extract(own)
    assert extract.scan(ex, "early_fusion", ("linear", "softmax")) == []   # own helper, own variable
    assert extract.scan(ex, "cheat", ("softmax",)) == ["softmax"]


# ------------------------------------------------------------------------------ the grader
@pytest.mark.slow   # the experiment parts train small models on three hidden seeds
@pytest.mark.parametrize("name", NAMES)
def test_every_solution_scores_full_marks(name):
    report = runner.grade_notebook(ROOT / "solutions" / f"{name}.ipynb", **FAST)
    assert report.score == report.max_score == problems.EXERCISES[name].points, runner.table(report)
    assert all(p.reason.startswith("all ") for p in report.parts)


@pytest.mark.parametrize("name", NAMES)
def test_every_untouched_exercise_scores_zero(name):
    report = runner.grade_notebook(ROOT / "exercises" / f"{name}.ipynb", **FAST)
    assert report.score == 0, runner.table(report)
    assert all("not implemented" in p.reason for p in report.parts)


def test_loops_exits_and_crashes_score_zero_with_reasons(tmp_path):
    path = notebook(
        tmp_path / "crash.ipynb", "09_data_quality",
        "import time\nimport torch",
        "class K:\n    import os\n    boom = os._exit",    # os._exit in a class body: not loaded
        "def mean_impute(features, present):\n    while True:\n        pass",
        "def balanced_class_weights(labels, num_classes):\n    raise SystemExit(0)",
        "def weighted_cross_entropy(scores, labels, weights):\n    import numpy\n"   # a segfault
        "    return numpy.lib.stride_tricks.as_strided(numpy.zeros(1), (4,), (2**40,)).sum()")
    report = runner.grade_notebook(path, **FAST)
    why = reasons(report)
    assert report.score == 0, runner.table(report)
    assert "timed out" in why["q1"]
    assert "SystemExit" in why["q2"]
    assert "died (signal 11)" in why["q3"]
    assert any("K uses os" in n and "not loaded" in n for n in report.notes), report.notes


def test_swallowed_timeouts_errors_and_huge_prints_score_zero(tmp_path):
    path = notebook(
        tmp_path / "swallow.ipynb", "09_data_quality",
        "import time\nimport torch",
        "def mean_impute(features, present):\n    while True:\n        try:\n            time.sleep(100)\n"
        "        except BaseException:\n            pass",
        "def balanced_class_weights(labels, num_classes):\n    raise ValueError('nope')",
        "def weighted_cross_entropy(scores, labels, weights):\n    print('x' * 50_000_000)\n"
        "    return scores.sum() * 0")
    report = runner.grade_notebook(path, **FAST)
    why = reasons(report)
    assert report.score == 0, runner.table(report)
    assert "no answer within" in why["q1"]
    assert "ValueError: nope" in why["q2"]
    assert "differ" in why["q3"]


def test_hard_coded_public_answers_and_library_calls_score_zero(tmp_path, capsys):
    part = problems.EXERCISES["07_cross_modal_retrieval"].part("q1")
    answers = {round(float(args[0].sum()), 4): part.reference(*args).tolist()
               for args in problems.public_cases(part)}
    path = notebook(
        tmp_path / "cheat.ipynb", "07_cross_modal_retrieval",
        f"import torch\nimport mmcourse.models as mm\nfrom mmcourse.metrics import recall_at_k as r\n"
        f"ANSWERS = {answers!r}",
        "def retrieval_set(query, database, theta):\n"
        "    return torch.tensor(ANSWERS[round(float(query.sum()), 4)], dtype=torch.long)",
        "def recall_at_k(similarity, relevant, k):\n    return r(similarity, k, relevant=relevant)[k]",
        "def info_nce(image_emb, text_emb, scale):\n"
        "    return getattr(mm, 'info_' + 'nce')(image_emb, text_emb, scale)")
    # the hard-coded answers do fool the public check in the student's kernel...
    ns: dict = {}
    exec(extract.extract(path).source, ns)
    check = Checker("07")
    check("q1", ns["retrieval_set"])
    assert check.passed == {"q1": True}
    assert "all 2 public cases pass" in capsys.readouterr().out
    # ... but not the grader
    report = runner.grade_notebook(path, **FAST)
    why = reasons(report)
    assert report.score == 0, runner.table(report)
    assert "KeyError" in why["q1"]
    assert "recall_at_k" in why["q2"] and "does not allow" in why["q2"]
    assert "uses getattr" in why["q3"]


def test_monkeypatching_torch_numpy_the_grader_and_check_changes_nothing(tmp_path):
    path = notebook(
        tmp_path / "patch.ipynb", "05_joint_classification",
        "import numpy\nimport torch\nimport mmcourse.grading.codec as c\n"
        "from mmcourse.grading import checks_for\ncheck = checks_for('05')\n"
        "c.compare = lambda *a, **k: None\ncheck.__class__.__call__ = lambda *a: True\n"
        "torch.allclose = lambda *a, **k: True",
        "def joint_probabilities(scores, temperature=1.0):\n"
        "    import mmcourse.grading.codec as c2\n    c2.compare = lambda *a, **k: None\n"
        "    torch.allclose = lambda *a, **k: True\n    numpy.isclose = lambda *a, **k: True\n"
        "    return torch.zeros(1)",
        "class Evil:\n    def __reduce__(self):\n        return (print, ('pwned',))",
        "def joint_cross_entropy(scores, labels):\n    return Evil()")
    report = runner.grade_notebook(path, **FAST)
    why = reasons(report)
    assert report.score == 0, runner.table(report)
    # reaching the grader is refused twice: by the scan (no part but an experiment may name the
    # package) and, were it to run, by the sandbox's import guard
    assert "uses mmcourse" in why["q1"] or "not available to graded functions" in why["q1"]
    assert "returned a Evil" in why["q2"]


def test_syntax_errors_and_unreadable_notebooks_are_graded(tmp_path):
    nb = nbformat.read(str(ROOT / "solutions" / "02_cnn_for_images_and_spectrograms.ipynb"), 4)
    for cell in nb.cells:
        if cell.source.startswith("def max_pool2d"):
            cell.source = "def max_pool2d(:\n    return 1"
        if "def shift_experiment" in cell.source:    # (not graded here: the experiment takes a while)
            cell.source = "import torch"
    nbformat.write(nb, str(tmp_path / "02_syntax.ipynb"))
    (tmp_path / "02_garbage.ipynb").write_text("{ this is not json")
    report = runner.grade_notebook(tmp_path / "02_syntax.ipynb", **FAST)
    assert report.score == 6, runner.table(report)   # q1 is right; q2 is in the broken cell
    assert "no function named max_pool2d" in reasons(report)["q2"]
    assert any("syntax error" in n for n in report.notes)
    garbage = runner.grade_notebook(tmp_path / "02_garbage.ipynb", **FAST)
    assert garbage.score == 0 and any("could not be read" in n for n in garbage.notes)


def test_cli_runs_vandal_notebooks_in_a_kernel_and_writes_reports_and_gradebook(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    keep = subs / "instructor_file.txt"
    keep.write_text("do not delete")
    stub = "def {}(*args):\n    raise NotImplementedError"
    notebook(subs / "vandal.ipynb", "02_cnn_for_images_and_spectrograms",
             "import os\nfor f in os.listdir('.'):\n    os.remove(f)\n"
             "open('grades.csv', 'w').write('me,100')",
             "print('x' * 5_000_000)",
             stub.format("conv2d_unfold"), stub.format("max_pool2d"), stub.format("shift_experiment"),
             "import sys\nsys.exit()",
             "import time\ntime.sleep(1e9)")
    # half done, and quick to run in a kernel (torch is imported inside the functions only)
    notebook(subs / "half.ipynb", "02_cnn_for_images_and_spectrograms",
             "def conv2d_unfold(x, weight, bias=None, stride=1, padding=0):\n"
             "    import torch.nn.functional as F\n    return F.unfold(x, weight.shape[2:])",
             "def max_pool2d(x, kernel, stride=None):\n    import torch.nn.functional as F\n"
             "    stride = stride or kernel\n    b, c, h, w = x.shape\n"
             "    cols = F.unfold(x.reshape(b * c, 1, h, w), kernel, stride=stride)\n"
             "    h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1\n"
             "    return cols.max(1).values.reshape(b, c, h, w)",
             "print(max_pool2d.__name__)")
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "mmcourse.grading", "grade", str(subs), "--out", str(out),
                           "--timeout", "10", "--case-timeout", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "total" in proc.stdout and keep.read_text() == "do not delete"
    assert (subs / "vandal.ipynb").exists() and not (subs / "grades.csv").exists()
    vandal = json.loads((out / "vandal.json").read_text())
    assert vandal["score"] == 0 and vandal["execution"]["status"] == "timeout", vandal["execution"]
    assert vandal["execution"]["truncated"] is True                 # the 5 MB print was cut
    half = json.loads((out / "half.json").read_text())
    assert half["score"] == 4 and half["execution"]["status"] == "ok", half
    assert "expected shape" in half["parts"][0]["reason"]
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert {(Path(r["submission"]).name, float(r["score"]), r["q2"]) for r in rows} == {
        ("vandal.ipynb", 0.0, "0.0"), ("half.ipynb", 4.0, "4.0")}


def test_partial_credit_counts_hidden_cases():
    """A naive softmax (no max subtraction) fails only the two large-score hidden cases."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = notebook(Path(tmp) / "naive.ipynb", "05_joint_classification",
                        "import torch",
                        "def joint_probabilities(scores, temperature=1.0):\n"
                        "    e = torch.exp(scores / temperature)\n    return e / e.sum(-1, keepdim=True)")
        report = runner.grade_notebook(path, **FAST)
    q1 = report.parts[0]
    assert (q1.passed, q1.cases) == (4, 6) and q1.score == pytest.approx(4 * 4 / 6, abs=1e-3), \
        runner.table(report)
    assert "NaN" in q1.reason


def test_references_agree_with_independent_computations():
    import numpy as np
    import torch

    from mmcourse import metrics
    from mmcourse.grading import references as ref

    g = torch.Generator().manual_seed(0)
    m = torch.randint(0, 9, (5, 5), generator=g)
    true = np.repeat(np.arange(5), m.sum(1).numpy())
    pred = np.concatenate([np.repeat(np.arange(5), row) for row in m.numpy()])
    assert ref.macro_f1(m) == pytest.approx(metrics.precision_recall_f1(true, pred, 5).f1)
    x, present = torch.randn(6, 3, generator=g), torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    imputed = ref.mean_impute(x, present)
    assert torch.allclose(imputed[~present], x[present].mean(0).expand(2, 3), atol=1e-6)
    assert torch.equal(imputed[present], x[present])
    labels = torch.tensor([0, 0, 0, 2])
    assert torch.allclose(ref.balanced_class_weights(labels, 4), torch.tensor([4 / 6, 0, 2.0, 0]))
    for n, k, s, p in [(28, 3, 1, 0), (28, 3, 2, 1), (7, 2, 3, 0)]:
        assert ref.conv_output_size(n, k, s, p) == (n + 2 * p - k) // s + 1
    logits, present = torch.randn(3, 4, 2, generator=g), torch.tensor([[1, 0, 1, 0]] * 3, dtype=torch.bool)
    fused = ref.late_fusion(logits, present)
    assert torch.allclose(fused[0], logits[:, 0].mean(0)) and torch.equal(fused[1], torch.zeros(2))
    table = torch.tensor([[0.0, 5, 1], [0, 0, 9], [9, 0, 0]])        # 0 -> 1 -> 2 (eos)
    assert ref.greedy_decode(table, 0, 2, 10) == [1, 2] and ref.greedy_decode(table, 0, 2, 1) == [1]
    expected = float(torch.log_softmax(table[0], 0)[1] + torch.log_softmax(table[1], 0)[2])
    assert ref.sequence_log_prob(table, torch.tensor([1, 2]), 0) == pytest.approx(expected)
    y = torch.tensor([0, 1, 1, 0])
    two = torch.stack([torch.eye(2)[y] * 3, torch.zeros(4, 2)])        # modality 0 knows, 1 does not
    assert torch.allclose(ref.modality_ablation(two, y), torch.tensor([0.5, 0.0]))


def test_master_free_response_cells_keep_the_model_answer_and_rubric_for_the_instructor(tmp_path):
    master = tmp_path / "04_attention.py"
    master.write_text("# %%\nx = 1\n# %% [markdown] free-response fr1 3\n# Why does it work?\n"
                      "# %% [markdown] answer fr1\n# Because the weights sum to one.\n"
                      "# %% [markdown] rubric fr1\n# - 3 points: says the weights sum to one\n")
    student = nbformat.reads(masters.build(master, solution=False), as_version=4)
    teacher = nbformat.reads(masters.build(master, solution=True), as_version=4)
    roles = [(c.metadata.get("mmcourse", {}).get("role"), c.source) for c in student.cells]
    assert roles == [(None, "x = 1"), ("question", "Why does it work?"),
                     ("answer", masters.ANSWER_PLACEHOLDER)]
    assert student.cells[1].metadata["mmcourse"] == {"free_response": "fr1", "role": "question",
                                                     "points": 3.0}
    assert [c.source for c in teacher.cells][2:] == ["Because the weights sum to one.",
                                                     "- 3 points: says the weights sum to one"]
    master.write_text("# %% [markdown] answer fr9\n# text\n")
    with pytest.raises(ValueError, match="fr9"):
        masters.build(master, solution=False)
    master.write_text("# %% [markdown] free-response fr1\n# no points\n")
    with pytest.raises(ValueError, match="needs its points"):
        masters.build(master, solution=False)


def test_only_experiment_parts_may_call_the_package(tmp_path):
    """The package holds tested versions of what the parts ask for: calling it is not implementing."""
    path = notebook(tmp_path / "10_x.ipynb", "10_evaluation_and_interpretability",
                    "from mmcourse.metrics import classification as c\n"
                    "def macro_f1(*args, **kwargs):\n    return c.f1_score(*args, **kwargs)")
    report = runner.grade_notebook(path, **FAST)
    assert report.parts[0].score == 0 and "mmcourse" in report.parts[0].reason
