"""DTW, the CTC loss, CTC decoding, forced alignment and template matching, each checked against
its reference: dtw-python, torch.nn.functional.ctc_loss, brute-force enumeration of paths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcourse.alignment import (
    TemplateMatcher,
    collapse,
    ctc_alpha,
    ctc_loss,
    dtw,
    extend_with_blanks,
    forced_align,
    greedy_decode,
    prefix_beam_search,
)
from mmcourse.alignment.forced import word_boundaries


# ---------------------------------------------------------------------------------------------
# DTW
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,m,f", [(1, 1, 2), (1, 7, 3), (12, 5, 1), (20, 25, 4)])
def test_dtw_matches_dtw_python(n, m, f):
    ref = pytest.importorskip("dtw")
    rng = np.random.default_rng(n * 100 + m)
    x, y = rng.normal(size=(n, f)), rng.normal(size=(m, f))
    ours = dtw(x, y)
    theirs = ref.dtw(x, y, dist_method="euclidean", step_pattern=ref.symmetric1, keep_internals=True)
    assert ours.distance == pytest.approx(theirs.distance, rel=1e-10)
    np.testing.assert_allclose(ours.cost, theirs.localCostMatrix, rtol=1e-10)
    np.testing.assert_allclose(ours.accumulated, theirs.costMatrix, rtol=1e-10)
    np.testing.assert_array_equal(ours.path[:, 0], theirs.index1)
    np.testing.assert_array_equal(ours.path[:, 1], theirs.index2)


def test_dtw_aligns_a_slowed_down_copy_to_itself_at_zero_cost():
    x = np.sin(np.linspace(0, 6, 30))[:, None]
    slow = np.repeat(x, 2, axis=0)                       # every frame said twice as long
    result = dtw(x, slow)
    assert result.distance == pytest.approx(0.0, abs=1e-9)
    assert (np.diff(result.path, axis=0) >= 0).all()     # monotonic
    assert tuple(result.path[0]) == (0, 0) and tuple(result.path[-1]) == (29, 59)


def test_dtw_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same F"):
        dtw(np.zeros((3, 2)), np.zeros((4, 3)))


# ---------------------------------------------------------------------------------------------
# CTC loss
# ---------------------------------------------------------------------------------------------
def test_collapse_and_extend():
    assert collapse([3, 3, 0, 3, 0, 0, 7], blank=0) == [3, 3, 7]
    assert collapse([0, 0, 0], blank=0) == []
    assert extend_with_blanks([4, 2], blank=0).tolist() == [0, 4, 0, 2, 0]


def _compare(logits, targets, il, tl, blank, reduction):
    logits = logits.clone().requires_grad_(True)
    ours = ctc_loss(logits.log_softmax(2), targets, il, tl, blank, reduction, zero_infinity=True)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    theirs = F.ctc_loss(logits.log_softmax(2), targets, il, tl, blank, reduction, zero_infinity=True)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    assert torch.isfinite(g_ours).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_loss_matches_torch_in_value_and_gradient_on_random_cases(seed, reduction):
    g = torch.Generator().manual_seed(seed)
    t, n, v = 4 + seed * 2, 3, 5 + seed % 3
    blank = seed % v
    symbols = torch.tensor([k for k in range(v) if k != blank])
    targets = symbols[torch.randint(0, len(symbols), (n, 4), generator=g)]
    il = torch.randint(max(1, t // 2), t + 1, (n,), generator=g)
    tl = torch.randint(1, 5, (n,), generator=g)
    _compare(torch.randn(t, n, v, generator=g, dtype=torch.float64), targets, il, tl, blank, reduction)


def test_ctc_loss_edge_cases_repeats_length_one_and_just_long_enough():
    g = torch.Generator().manual_seed(0)
    # repeated labels (need a blank between), a target of length 1, and T = S + repeats exactly
    targets = torch.tensor([[1, 1, 1, 0], [2, 0, 0, 0], [3, 3, 4, 4]])
    tl = torch.tensor([3, 1, 4])
    il = torch.tensor([5, 1, 6])              # 3 + 2 repeats = 5; 1 symbol in 1 frame; 4 + 2 = 6
    logits = torch.randn(6, 3, 6, generator=g, dtype=torch.float64)
    for reduction in ("none", "mean"):
        _compare(logits, targets, il, tl, 0, reduction)
    losses = ctc_loss(logits.log_softmax(2), targets, il, tl, blank=0, reduction="none")
    assert torch.isfinite(losses).all()
    # one frame fewer is impossible: no path, infinite loss (as torch says)
    short = ctc_loss(logits.log_softmax(2), targets, il - torch.tensor([1, 0, 1]), tl, reduction="none")
    ref = F.ctc_loss(logits.log_softmax(2), targets, il - torch.tensor([1, 0, 1]), tl, reduction="none")
    assert math.isinf(short[0]) and math.isinf(short[2]) and math.isinf(ref[0])


def test_ctc_alpha_sums_every_path_by_brute_force():
    g = torch.Generator().manual_seed(1)
    lp = torch.randn(5, 3, generator=g, dtype=torch.float64).log_softmax(1)
    target = [1, 1]
    total = sum(math.exp(sum(lp[t, k].item() for t, k in enumerate(path)))
                for path in itertools.product(range(3), repeat=5) if collapse(path, 0) == target)
    alpha = ctc_alpha(lp, target, blank=0)
    assert torch.logsumexp(alpha[-1, -2:], 0).item() == pytest.approx(math.log(total), rel=1e-10)


def test_ctc_loss_names_bad_input():
    lp = torch.randn(4, 1, 3).log_softmax(2)
    with pytest.raises(ValueError, match="not the blank"):
        ctc_loss(lp, torch.tensor([[0, 1]]), [4], [2], blank=0)
    with pytest.raises(ValueError, match=r"\(T, N, V\)"):
        ctc_loss(lp[0], torch.tensor([[1]]), [4], [1])
    with pytest.raises(ValueError, match="input_lengths"):
        ctc_loss(lp, torch.tensor([[1]]), [5], [1])


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------
def _string_probs(lp: torch.Tensor, blank: int) -> dict:
    probs: dict = {}
    for path in itertools.product(range(lp.shape[1]), repeat=len(lp)):
        key = tuple(collapse(path, blank))
        probs[key] = probs.get(key, 0.0) + math.exp(sum(lp[t, k].item() for t, k in enumerate(path)))
    return probs


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_search_with_a_wide_beam_finds_the_likeliest_string(seed):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(5, 3, generator=g, dtype=torch.float64) * 1.5).log_softmax(1)
    probs = _string_probs(lp, blank=0)
    best = max(probs, key=probs.get)
    decoded, score = prefix_beam_search(lp, beam_width=100, blank=0, return_score=True)
    assert tuple(decoded) == best
    assert score == pytest.approx(math.log(probs[best]), rel=1e-9)
    # its score is minus the CTC loss of that string
    if decoded:
        loss = F.ctc_loss(lp[:, None], torch.tensor([decoded]), [5], [len(decoded)], reduction="sum")
        assert score == pytest.approx(-loss.item(), rel=1e-9)


def test_greedy_is_the_best_path_not_the_best_string():
    # two frames: the best path is "∅ ∅" (p = .36) but "1" collects .64 from three paths
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    assert greedy_decode(lp, blank=0) == []
    assert prefix_beam_search(lp, beam_width=4, blank=0) == [1]
    batch = torch.stack([lp, lp.flip(1)])
    assert greedy_decode(batch, lengths=[2, 1], blank=0) == [[], [1]]


# ---------------------------------------------------------------------------------------------
# forced alignment
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_forced_align_is_the_best_path_by_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(6, 3, generator=g, dtype=torch.float64).log_softmax(1)
    target = [[1, 2], [2, 2], [1]][seed % 3]
    best_score, best_path = -math.inf, None
    for path in itertools.product(range(3), repeat=6):
        if collapse(path, 0) == target:
            score = sum(lp[t, k].item() for t, k in enumerate(path))
            if score > best_score:
                best_score, best_path = score, path
    a = forced_align(lp, target, blank=0)
    assert a.score == pytest.approx(best_score, rel=1e-10)
    assert tuple(a.symbols.tolist()) == best_path
    assert collapse(a.symbols, 0) == target
    for i, (first, last) in enumerate(a.spans.tolist()):
        assert (a.symbols[first:last] == target[i]).all()


def test_forced_align_refuses_too_few_frames():
    with pytest.raises(ValueError, match="repeats"):
        forced_align(torch.zeros(2, 3).log_softmax(1), [1, 1], blank=0)


def test_word_boundaries_grow_spans_over_speech_and_stop_at_silence():
    t = 12
    p = torch.full((t, 3), 1e-6)
    p[:, 0] = 1.0                                         # blank everywhere ...
    p[2:5, 0], p[2:5, 1], p[3] = 0.6, 0.4, torch.tensor([0.1, 0.9, 0.0])  # word 1: frames 2-4
    p[6:10, 0], p[6:10, 2], p[8] = 0.6, 0.4, torch.tensor([0.1, 0.0, 0.9])  # word 2: frames 6-9
    lp = (p / p.sum(1, keepdim=True)).log()
    a = forced_align(lp, [1, 2], blank=0)
    assert a.spans.tolist() == [[3, 4], [8, 9]]
    assert word_boundaries(lp, a.spans, blank=0).tolist() == [[2, 5], [6, 10]]


# ---------------------------------------------------------------------------------------------
# template matching
# ---------------------------------------------------------------------------------------------
def test_connected_word_dtw_recovers_words_and_boundaries_of_a_noisy_concatenation():
    rng = np.random.default_rng(0)
    templates = [rng.normal(size=(int(rng.integers(4, 8)), 6)) * 3 for _ in range(4)]
    silence = np.zeros(6)
    words = [2, 0, 3, 3, 1]
    pieces, truth, t = [np.zeros((2, 6))], [], 2
    for w in words:
        stretched = np.repeat(templates[w], rng.integers(1, 3, size=len(templates[w])), axis=0)
        truth.append((t, t + len(stretched)))
        pieces += [stretched, np.zeros((2, 6))]
        t += len(stretched) + 2
    x = np.concatenate(pieces) + rng.normal(size=(t, 6)) * 0.3
    labels, bounds = TemplateMatcher(templates, [0, 1, 2, 3], silence).match(x)
    assert labels == words
    assert np.abs(bounds - np.array(truth)).max() <= 1
