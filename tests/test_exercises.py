"""The exercises as a course (issue 20): what each one asks, and that the public checks teach.

* every exercise from chapter 02 (and the capstone) has at least three graded parts (the
  capstone two), one of them an *experiment* (its own time allowance, re-run on hidden seeds
  within a stated margin), and at least one free-response question with a model answer and an
  instructor's rubric; the course has >= 150 auto-graded points, rising from chapter 02 to 10;
* every trap an exercise's instructions warn about is in a public case: the plausible wrong
  answer fails ``check()`` with a message that points at the lesson (the reason and the hint);
* the references the grader compares with agree with independent computations.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmcourse.grading import masters, problems
from mmcourse.grading.inline import Checker

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(n for n in problems.EXERCISES if n[:2].isdigit())


# ------------------------------------------------------------------------------ structure
def test_every_exercise_has_a_core_part_a_second_idea_an_experiment_and_a_free_response():
    for name, ex in problems.EXERCISES.items():
        assert len(ex.parts) >= (2 if name == "capstone" else 3), name
        experiments = [p for p in ex.parts if p.case_timeout]
        assert experiments, f"{name} has no experiment part"
        for part in experiments:   # re-run on hidden seeds, compared within a stated margin
            assert part.atol > 1e-5 or part.rtol > 1e-4, (name, part.id)
            assert part.case_timeout <= 60, (name, part.id)
        cells = masters.parse_cells((ROOT / "masters" / f"{name}.py").read_text())
        roles = {(f[0], f[1]) for _, _, f in cells if f}
        questions = {fid for role, fid in roles if role == "question"}
        assert questions, f"{name} has no free-response question"
        for fid in questions:
            assert {("answer", fid), ("rubric", fid)} <= roles, (name, fid)
        for part in ex.parts:   # the master states each part's points as the grader counts them
            text = (ROOT / "masters" / f"{name}.py").read_text()
            assert re.search(rf"## {part.id} \({part.points:g} points?\)", text), (name, part.id)


def test_the_course_has_at_least_150_points_rising_from_chapter_02_to_10():
    points = {name: ex.points for name, ex in problems.EXERCISES.items()}
    assert sum(points.values()) >= 150, points
    assert "capstone" in points
    chapter = [points[n] for n in CHAPTERS[:9]]                  # 02 .. 10
    assert chapter[0] == min(chapter), chapter
    assert sum(chapter[-4:]) / 4 > sum(chapter[:3]) / 3, chapter


def test_trivia_parts_are_gone():
    functions = {p.function for ex in problems.EXERCISES.values() for p in ex.parts}
    assert not functions & {"conv_output_size", "causal_mask", "early_fusion"}


# ------------------------------------------------------------------------------ lessons
def _naive_softmax(z, dim=-1):
    e = torch.exp(z)
    return e / e.sum(dim, keepdim=True)


def _stable_softmax(z, dim=-1):
    e = torch.exp(z - z.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def _attention_neg_inf(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def _attention_unstable(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, -1e4)
    w = _naive_softmax(s)
    if mask is not None:
        w = w.masked_fill(~mask, 0.0)
    return w @ v, w


def _ce_log_of_softmax(scores, labels):
    return -torch.log(_stable_softmax(scores))[torch.arange(len(labels)), labels].mean()


def _ece_floor(probs, labels, n_bins):
    conf, pred = probs.max(1)
    which = (conf * n_bins).floor().long()
    out = 0.0
    for b in range(n_bins + 1):
        inside = which == b
        if inside.any():
            acc = (pred[inside] == labels[inside]).double().mean()
            out += float(inside.sum()) / len(conf) * abs(float(acc - conf[inside].double().mean()))
    return out


def _late_fusion_count(logits, present):
    p = present.to(logits.dtype)[..., None]
    return (p * logits).sum(0) / p.sum(0)


def _log_prob_of_softmax(table, tokens, bos):
    prev = torch.cat([torch.tensor([bos]), tokens[:-1]])
    return float(torch.log(_stable_softmax(table[prev].double()))[torch.arange(len(tokens)), tokens].sum())


def _impute_plain_mean(features, present):
    mean = features[present].sum(0) / present.sum()
    out = features.clone()
    out[~present] = mean
    return out


def _weights_no_absent(labels, num_classes):
    counts = torch.bincount(labels, minlength=num_classes).float()
    k = int((counts > 0).sum())
    return len(labels) / (k * counts)


def _weighted_ce_over_n(scores, labels, weights):
    ce = torch.logsumexp(scores, 1) - scores.gather(1, labels[:, None])[:, 0]
    return (weights[labels] * ce).mean()


def _f1_from_precision_recall(confusion):
    m = confusion.double()
    tp = m.diag()
    precision, recall = tp / m.sum(0), tp / m.sum(1)
    return float((2 * precision * recall / (precision + recall)).mean())


def _pool_zero_start(x, kernel, stride=None):
    stride = stride or kernel
    b, c, h, w = x.shape
    cols = F.unfold(x.reshape(b * c, 1, h, w), kernel, stride=stride)
    h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    return cols.clamp(min=0).max(1).values.reshape(b, c, h, w)


def _rnn_ignoring_lengths(x, lengths, h0, W, U, b):
    h, out = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W.T + h @ U.T + b)
        out.append(h)
    return torch.stack(out, 1), h


def _gru_bias_outside(x, h, W, U, b_x, b_h):
    xr, xz, xn = (x @ W.T + b_x).chunk(3, -1)
    hr, hz, hn = (h @ U.T).chunk(3, -1)
    cr, cz, cn = b_h.chunk(3)
    r, z = torch.sigmoid(xr + hr + cr), torch.sigmoid(xz + hz + cz)
    n = torch.tanh(xn + r * hn + cn)
    return (1 - z) * n + z * h


def _mha_wrong_split(x, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, heads, mask=None):
    B, L, D = x.shape

    def split(t):
        return t.reshape(B, heads, L, D // heads)

    q, k, v = split(x @ W_q.T + b_q), split(x @ W_k.T + b_k), split(x @ W_v.T + b_v)
    s = q @ k.transpose(-2, -1) / math.sqrt(D // heads)
    if mask is not None:
        s = s.masked_fill(~mask[:, None, None, :], -1e9)
    return (torch.softmax(s, -1) @ v).reshape(B, L, D) @ W_o.T + b_o


def _recall_optimistic(similarity, relevant, k):
    best = similarity.masked_fill(~relevant, float("-inf")).max(1, keepdim=True).values
    rank = 1 + ((similarity > best) & ~relevant).sum(1)
    return float((rank <= k).float().mean())


def _info_nce_one_way(image_emb, text_emb, scale):
    logits = scale * image_emb @ text_emb.T
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _dropout_without_rescue(features, present, p, u):
    keep = present & (u >= p)
    return features * keep[..., None].to(features.dtype), keep


# (exercise, part, wrong answer, what the check must print besides "fails")
WRONG = [
    ("02", "q2", _pool_zero_start, "negative"),
    ("03", "q1", _rnn_ignoring_lengths, "padded step"),
    ("03", "q2", _gru_bias_outside, "c_n too"),
    ("04", "q1", _attention_neg_inf, "0/0 = NaN"),                 # -inf mask, fully-masked row
    ("04", "q1", _attention_unstable, "subtract each row's max"),  # unstabilised softmax
    ("04", "q2", _mha_wrong_split, "(B, heads, L, D/heads)"),
    ("05", "q1", lambda s, t=1.0: _naive_softmax(s / t), "subtract each row's maximum"),
    ("05", "q2", _ce_log_of_softmax, "log(softmax) underflows"),
    ("05", "q3", _ece_floor, "upper edge included"),
    ("06", "q1", _late_fusion_count, "0/0 = NaN"),                 # masked mean dividing by zero
    ("07", "q2", _recall_optimistic, "tied"),
    ("07", "q3", _info_nce_one_way, "both directions"),
    ("08", "q1", _log_prob_of_softmax, "underflows"),               # log(softmax) underflow
    ("09", "q1", _impute_plain_mean, "0/0 = NaN"),                  # masked mean dividing by zero
    ("09", "q2", _weights_no_absent, "absent class"),
    ("09", "q3", _weighted_ce_over_n, "not by N"),                  # mean over N, weights not summing to N
    ("09", "q4", _dropout_without_rescue, "keeps its present modality"),
    ("10", "q1", _f1_from_precision_recall, "0/0"),                 # NaN from 0/0 in F1
]


@pytest.mark.parametrize("exercise, part, wrong, lesson", WRONG,
                         ids=[f"{e}-{p}-{w.__name__.strip('_<>')}" for e, p, w, _ in WRONG])
def test_each_warned_about_wrong_answer_fails_its_public_check_with_the_lesson(exercise, part, wrong,
                                                                                lesson, capsys):
    check = Checker(exercise)
    check(part, wrong)
    out = capsys.readouterr().out
    assert check.passed == {part: False}, out
    assert "fails" in out and lesson in out, out


def test_the_right_answers_pass_the_same_public_checks(capsys):
    """The references themselves pass (so the failures above are the lessons, not the cases)."""
    for exercise, part, _, _ in WRONG:
        check = Checker(exercise)
        check(part, check.exercise.part(part).reference)
        assert check.passed == {part: True}, capsys.readouterr().out


# ------------------------------------------------------------------------------ references
def test_beam_search_with_a_wide_beam_is_exhaustive_search_and_beam_one_is_greedy():
    from mmcourse.grading import references as ref
    from mmcourse.grading.problems.ex08 import beam_search

    g = torch.Generator().manual_seed(3)
    for _ in range(6):
        table, eos, max_len = 2 * torch.randn(4, 4, generator=g), 3, 4
        logp = F.log_softmax(table.double(), -1)
        best = None
        for n in range(1, max_len + 1):
            for seq in itertools.product(range(4), repeat=n):
                if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                    continue
                score = sum(float(logp[a, b]) for a, b in zip((0, *seq[:-1]), seq))
                if best is None or score > best[1]:
                    best = (list(seq), score)
        tokens, score = beam_search(table, 0, eos, 10_000, max_len)
        assert tokens == best[0] and score == pytest.approx(best[1])
        assert beam_search(table, 0, eos, 1, max_len)[0] == ref.greedy_decode(table, 0, eos, max_len)


def test_temperature_fitting_finds_the_minimum_of_the_validation_nll():
    from mmcourse.grading.problems.ex05 import _fit_temperature

    g = torch.Generator().manual_seed(0)
    z = 4 * torch.randn(300, 5, generator=g)
    y = torch.multinomial(torch.softmax(z / 2.5, -1), 1, generator=g)[:, 0]
    grid = torch.exp(torch.linspace(math.log(0.05), math.log(20), 4001, dtype=torch.float64))
    nll = torch.stack([F.cross_entropy(z.double() / t, y) for t in grid])
    assert _fit_temperature(z, y) == pytest.approx(float(grid[nll.argmin()]), rel=2e-3)


def test_tensor_fusion_and_saliency_references_match_the_package():
    from mmcourse.grading.problems.ex06 import _tensor_fusion_ref
    from mmcourse.grading.problems.ex10 import _saliency_ref
    from mmcourse.interpret import saliency
    from mmcourse.models.output import ModelOutput

    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(3, 2, generator=g), torch.randn(3, 4, generator=g)
    z1, z2 = (torch.cat([f, torch.ones(3, 1)], 1) for f in (f1, f2))
    assert torch.allclose(_tensor_fusion_ref([f1, f2]), torch.einsum("bi,bj->bij", z1, z2).flatten(1))
    x, W1, b1 = torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    W2, b2 = torch.randn(4, 6, generator=g), torch.randn(4, generator=g)

    class MLP(torch.nn.Module):
        modalities = ("x",)

        def forward(self, batch):
            return ModelOutput(logits=torch.relu(batch["x"] @ W1.T + b1) @ W2.T + b2)

    assert torch.allclose(_saliency_ref(x, W1, b1, W2, b2), saliency(MLP(), {"x": x}, modality="x"))


# ------------------------------------------------------------------------------ the grader's side
def test_experiment_parts_import_the_package_get_their_time_and_their_allowed_loss(bubblewrap):
    """What experiment parts rely on: the package (never ``mmcourse.grading``) in the sandbox, a
    longer allowance per case, a name another part forbids, and named results compared per key."""
    from mmcourse.grading import codec, sandbox

    source = ("import time\nimport torch\nimport torch.nn.functional as F\n"
              "from mmcourse.models import make_fusion\nimport mmcourse.metrics\n"
              "def uses_grader(x):\n    import mmcourse.grading.references as r\n    return 1\n"
              "def uses_package(x):\n"
              "    return [make_fusion.__name__, mmcourse.metrics.accuracy([0, 1], [0, 1])]\n"
              "def trains(x):\n    time.sleep(1.5)\n"
              "    return float(F.cross_entropy(torch.zeros(1, 2), torch.tensor([x])))\n")
    jobs = [("q1", "uses_grader", 0, (1,)), ("q2", "uses_package", 0, (1,)), ("q3", "trains", 0, (1,)),
            ("q4", "trains", 0, (0,))]
    results, _ = sandbox.evaluate([("cell 1", source)], jobs, banned=("cross_entropy",), case_timeout=1.0,
                                  timeouts={"q3": 10.0, "q4": 10.0}, part_banned={"q3": ()})
    assert "not available to graded functions" in results[("q1", 0)].error
    assert results[("q2", 0)].value == ["make_fusion", 1.0]
    assert results[("q3", 0)].value == pytest.approx(math.log(2))      # allowed, and given 10 s
    assert "calls cross_entropy" in results[("q4", 0)].error          # the exercise's ban still holds
    assert codec.compare({"a": 0.5, "b": 2}, {"a": 0.53, "b": 2}, 0.05, 0) is None
    assert "['a']" in codec.compare({"a": 0.5, "b": 2}, {"a": 0.6, "b": 2}, 0.05, 0)
    assert "keys" in codec.compare({"a": 0.5}, {"b": 0.5}, 0.05, 0)
