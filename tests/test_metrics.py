"""Tests for mmcourse.metrics: scikit-learn is the reference wherever it has the metric; the
rest (calibration, Recall@K, BLEU, CIDEr-D) is checked on examples worked by hand and against
independent loop implementations."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections import defaultdict

import numpy as np
import pytest
import sklearn.metrics as skm

from mmcourse import metrics as M

# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def labels():
    """Imbalanced 5-class data; the model never predicts class 3."""
    rng = np.random.default_rng(0)
    n, c = 300, 5
    y_true = rng.choice(c, size=n, p=[0.5, 0.25, 0.15, 0.07, 0.03])
    y_pred = y_true.copy()
    flip = rng.random(n) < 0.4
    y_pred[flip] = rng.choice(c, size=flip.sum())
    y_pred[y_pred == 3] = 0
    assert 3 in y_true and 3 not in y_pred
    return y_true, y_pred


def _retrieval_data(seed=0, q=15, d=40):
    """Continuous similarities (no ties) and a relevance matrix with >= 1 match per query."""
    rng = np.random.default_rng(seed)
    rel = rng.random((q, d)) < 0.15
    rel[np.arange(q), rng.integers(0, d, size=q)] = True
    sim = rng.normal(size=(q, d)) + 1.0 * rel
    return sim, rel


# --------------------------------------------------------------------------- classification


def test_accuracy_matches_sklearn(labels):
    y_true, y_pred = labels
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_accuracy_takes_argmax_of_scores():
    scores = np.array([[2.0, -1.0, 0.5], [0.1, 0.3, 0.2], [0.0, 0.0, 5.0], [1.0, 2.0, 0.0]])
    assert M.accuracy([0, 1, 2, 2], scores) == 0.75


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
@pytest.mark.parametrize("num_classes", [None, 6])  # 6: class 5 is absent from both
def test_precision_recall_f1_matches_sklearn(labels, average, num_classes):
    y_true, y_pred = labels
    c = num_classes or 5
    ref = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(c), average=average, zero_division=0
    )
    got = M.precision_recall_f1(y_true, y_pred, num_classes=num_classes, average=average)
    np.testing.assert_allclose(got.precision, ref[0], atol=1e-12)
    np.testing.assert_allclose(got.recall, ref[1], atol=1e-12)
    np.testing.assert_allclose(got.f1, ref[2], atol=1e-12)
    np.testing.assert_array_equal(got.support, np.bincount(y_true, minlength=c))
    if average is None:
        assert got.precision[3] == 0.0  # never predicted: 0/0 -> 0


def test_micro_average_is_accuracy(labels):
    y_true, y_pred = labels
    got = M.precision_recall_f1(y_true, y_pred, average="micro")
    acc = M.accuracy(y_true, y_pred)
    assert got.precision == pytest.approx(acc)
    assert got.recall == pytest.approx(acc)
    assert got.f1 == pytest.approx(acc)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(labels, normalize):
    y_true, y_pred = labels
    ref = skm.confusion_matrix(y_true, y_pred, labels=np.arange(6), normalize=normalize)
    got = M.confusion_matrix(y_true, y_pred, num_classes=6, normalize=normalize)
    assert got.shape == (6, 6)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    if normalize is None:
        assert got.dtype.kind == "i"


def test_confusion_matrix_rows_are_true_classes():
    cm = M.confusion_matrix([0, 0, 1], [1, 1, 1])
    np.testing.assert_array_equal(cm, [[0, 2], [0, 1]])


# --------------------------------------------------------------------------- calibration


def test_ece_hand_example():
    # n_bins = 5: bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    #   conf .9 correct           -> bin 4: acc 1,  conf .9,  gap .10, weight 1/4 -> .025
    #   conf .8 wrong, .7 correct -> bin 3: acc .5, conf .75, gap .25, weight 2/4 -> .125
    #   conf .6 wrong             -> bin 2: acc 0,  conf .6,  gap .60, weight 1/4 -> .150
    # ECE = .025 + .125 + .150 = .300  (.8 and .6 sit on upper edges: (lo, hi] keeps them low)
    probs = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]
    y = [0, 0, 0, 0]
    assert M.expected_calibration_error(probs, y, n_bins=5) == pytest.approx(0.3)
    bins = M.reliability_bins(probs, y, n_bins=5)
    np.testing.assert_allclose(bins.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_array_equal(bins.count, [0, 0, 1, 2, 1])
    np.testing.assert_allclose(bins.confidence[2:], [0.6, 0.75, 0.9])
    np.testing.assert_allclose(bins.accuracy[2:], [0.0, 0.5, 1.0])
    assert np.isnan(bins.confidence[:2]).all() and np.isnan(bins.accuracy[:2]).all()


def test_ece_of_a_perfectly_calibrated_bin_is_zero():
    # all at confidence .75, 3 of 4 correct
    probs = [[0.75, 0.25]] * 4
    assert M.expected_calibration_error(probs, [0, 0, 0, 1], n_bins=10) == pytest.approx(0.0)


def test_ece_matches_a_loop_implementation():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, size=500)
    n_bins = 15
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(y)) if lo < conf[i] <= hi]
        if members:
            acc = np.mean([pred[i] == y[i] for i in members])
            ece += len(members) / len(y) * abs(acc - np.mean(conf[members]))
    assert M.expected_calibration_error(probs, y, n_bins) == pytest.approx(ece, abs=1e-12)


# --------------------------------------------------------------------------- retrieval

# Query i's correct item is i; the correct score is marked with *.
#   q0: [.9*, .1, .2, .3]  nothing above             -> rank 1
#   q1: [.8, .5*, .1, .2]  .8 above                  -> rank 2
#   q2: [.3, .6, .4*, .7]  .6 and .7 above           -> rank 3
#   q3: [.9, .8, .7, .1*]  everything above          -> rank 4
S4 = np.array([
    [0.9, 0.1, 0.2, 0.3],
    [0.8, 0.5, 0.1, 0.2],
    [0.3, 0.6, 0.4, 0.7],
    [0.9, 0.8, 0.7, 0.1],
])


def test_ranks_recall_and_median_rank_on_known_matrix():
    np.testing.assert_array_equal(M.ranks(S4), [1, 2, 3, 4])
    assert M.recall_at_k(S4, k=(1, 2, 3, 5)) == {1: 0.25, 2: 0.5, 3: 0.75, 5: 1.0}
    assert M.recall_at_k(S4, k=1) == {1: 0.25}
    assert M.median_rank(S4) == 2.5
    # the same ground truth as indices and as a matrix
    assert M.recall_at_k(S4, (1, 2), relevant=[0, 1, 2, 3]) == {1: 0.25, 2: 0.5}
    assert M.recall_at_k(S4, (1, 2), relevant=np.eye(4, dtype=bool)) == {1: 0.25, 2: 0.5}


def test_several_relevant_items_use_the_best_ranked_one():
    rel = np.eye(4, dtype=bool)
    rel[3, 0] = True  # q3 also matches item 0, its top-scoring item
    np.testing.assert_array_equal(M.ranks(S4, rel), [1, 2, 3, 1])


def test_ties_are_pessimistic():
    # constant similarities (collapsed embeddings): every correct item is ranked last
    flat = np.zeros((4, 4))
    np.testing.assert_array_equal(M.ranks(flat), [4, 4, 4, 4])
    assert M.recall_at_k(flat, (1, 3, 4)) == {1: 0.0, 3: 0.0, 4: 1.0}
    # q0's correct item 0 ties with item 1 -> counted below it: rank 2
    tie = np.array([[0.5, 0.5, 0.1], [0.0, 0.9, 0.2]])
    np.testing.assert_array_equal(M.ranks(tie, relevant=[0, 1]), [2, 1])
    # two relevant items tied with each other do not push each other down
    rel = np.array([[True, True, False]])
    np.testing.assert_array_equal(M.ranks([[0.5, 0.5, 0.1]], rel), [1])


def test_map_matches_sklearn_per_query():
    sim, rel = _retrieval_data()
    ref = np.mean([skm.average_precision_score(rel[i], sim[i]) for i in range(len(sim))])
    assert M.mean_average_precision(sim, rel) == pytest.approx(ref, abs=1e-12)


def test_map_with_one_relevant_item_is_mean_reciprocal_rank():
    assert M.mean_average_precision(S4, None) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)


def test_map_ties_are_pessimistic():
    # all three tied, items 0 and 1 relevant -> order (irrelevant, rel, rel):
    # AP = (P@2 + P@3) / 2 = (1/2 + 2/3) / 2 = 7/12   (scikit-learn would group the tie: 2/3)
    ap = M.mean_average_precision([[0.5, 0.5, 0.5]], [[True, True, False]])
    assert ap == pytest.approx(7 / 12)


@pytest.mark.parametrize("theta", [-10.0, -0.5, 0.0, 0.3, 1.0, 2.0, 10.0])
def test_threshold_metrics_match_sklearn(theta):
    sim, rel = _retrieval_data(seed=2, q=20, d=30)
    retrieved = (sim > theta).ravel()
    got = M.precision_recall_at_threshold(sim, rel, theta)
    ref_p = skm.precision_score(rel.ravel(), retrieved, zero_division=0)
    ref_r = skm.recall_score(rel.ravel(), retrieved, zero_division=0)
    assert got.precision == pytest.approx(ref_p, abs=1e-12)
    assert got.recall == pytest.approx(ref_r, abs=1e-12)
    assert got.tp == int(np.sum(rel.ravel() & retrieved))
    assert got.fp == int(np.sum(~rel.ravel() & retrieved))
    assert got.fn == int(np.sum(rel.ravel() & ~retrieved))


def test_threshold_is_strict_and_empty_retrieval_has_precision_zero():
    sim = [[0.5, 0.2], [0.1, 0.5]]
    got = M.precision_recall_at_threshold(sim, None, 0.5)  # 0.5 > 0.5 is false
    assert (got.tp, got.fp, got.fn) == (0, 0, 2)
    assert (got.precision, got.recall) == (0.0, 0.0)
    # the same 0/0 convention as scikit-learn's default zero_division ("warn" -> 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skm.precision_score([1, 0, 0, 1], [0, 0, 0, 0]) == got.precision
    got = M.precision_recall_at_threshold(sim, None, 0.15)
    assert (got.tp, got.fp, got.fn) == (2, 1, 0)
    assert got.precision == pytest.approx(2 / 3) and got.recall == 1.0


def test_precision_recall_curve_matches_pointwise():
    sim, rel = _retrieval_data(seed=3)
    thetas = np.linspace(-2, 3, 11)
    curve = M.precision_recall_curve_at_thresholds(sim, rel, thetas)
    assert curve.precision.shape == curve.recall.shape == (11,)
    for i, theta in enumerate(thetas):
        point = M.precision_recall_at_threshold(sim, rel, theta)
        assert curve.precision[i] == pytest.approx(point.precision)
        assert curve.recall[i] == pytest.approx(point.recall)
        assert (curve.tp[i], curve.fp[i], curve.fn[i]) == (point.tp, point.fp, point.fn)
    assert np.all(np.diff(curve.recall) <= 0)  # raising θ never raises recall


# --------------------------------------------------------------------------- BLEU


def test_bleu_clips_repeated_unigrams():
    # "the" appears 7 times in the hypothesis but at most twice in one reference:
    # p1 = min(7, 2) / 7 = 2/7. c = 7, reference lengths 6 and 7 -> closest r = 7, BP = 1.
    # No bigram "the the" in any reference: p2 = 0/6 -> BLEU-2 = 0 without smoothing.
    hyp = ["the the the the the the the"]
    refs = [["the cat is on the mat", "there is a cat on the mat"]]
    scores = M.bleu(refs, hyp)
    assert scores["bleu1"] == pytest.approx(2 / 7)
    assert scores["bleu2"] == scores["bleu4"] == 0.0
    assert set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4"}
    # smoothing adds 1 to p_n for n >= 2: p2 = (0+1)/(6+1) -> BLEU-2 = sqrt(2/7 * 1/7)
    assert M.bleu(refs, hyp, smooth=True)["bleu2"] == pytest.approx(math.sqrt(2) / 7)


def test_bleu_brevity_penalty():
    # "the cat" vs "the cat is on the mat": p1 = 2/2, p2 = 1/1, no trigram at all (0/0 -> 0).
    # c = 2 < r = 6 -> BP = exp(1 - 6/2) = e^-2
    scores = M.bleu([["the cat is on the mat"]], ["the cat"], max_n=3)
    assert scores["bleu1"] == pytest.approx(math.exp(-2))
    assert scores["bleu2"] == pytest.approx(math.exp(-2))
    assert scores["bleu3"] == 0.0


def test_bleu_closest_reference_length_ties_to_shorter():
    # hypothesis length 5, references 4 and 6 -> r = 4 (not 6), c > r -> BP = 1, p1 = 1
    # (with r = 6 it would be exp(1 - 6/5) = 0.82)
    scores = M.bleu([["a b c d", "a b c d e f"]], ["a b c d e"], max_n=1)
    assert scores == {"bleu1": 1.0}


def test_bleu_is_pooled_over_the_corpus():
    # A: "the cat sat" = its reference: 3/3 unigrams, 2/2 bigrams, 1/1 trigram, 0 4-grams
    # B: "a dog" vs "a cat": 1/2 unigrams, 0/1 bigrams
    # p1 = 4/5, p2 = 2/3, p3 = 1/1, p4 = 0/0 -> 0; c = r = 5 -> BP = 1
    refs = [[["the", "cat", "sat"]], ["a cat"]]
    hyps = [["the", "cat", "sat"], "a dog"]
    scores = M.bleu(refs, hyps)
    assert scores["bleu1"] == pytest.approx(0.8)
    assert scores["bleu2"] == pytest.approx(math.sqrt(0.8 * 2 / 3))
    assert scores["bleu3"] == pytest.approx((0.8 * 2 / 3) ** (1 / 3))
    assert scores["bleu4"] == 0.0


def test_bleu_of_an_exact_match_is_one():
    assert M.bleu([["a red circle left of a blue square"]],
                  ["a red circle left of a blue square"])["bleu4"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- CIDEr-D


def _coco_cider_d(refs, hyps, sigma=6.0, n=4):
    """An independent transcription of coco-caption's cider_scorer.py (CIDEr-D), including
    its habit of measuring length by the number of bigrams."""

    def precook(words):
        counts = defaultdict(int)
        for k in range(1, n + 1):
            for i in range(len(words) - k + 1):
                counts[tuple(words[i:i + k])] += 1
        return counts

    crefs = [[precook(r.split()) for r in rs] for rs in refs]
    ctest = [precook(h.split()) for h in hyps]
    doc_freq = defaultdict(float)
    for rs in crefs:
        for ngram in {g for r in rs for g in r}:
            doc_freq[ngram] += 1
    ref_len = np.log(float(len(crefs)))

    def counts2vec(cnts):
        vec = [defaultdict(float) for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for ngram, tf in cnts.items():
            df = np.log(max(1.0, doc_freq[ngram]))
            k = len(ngram) - 1
            vec[k][ngram] = float(tf) * (ref_len - df)
            norm[k] += vec[k][ngram] ** 2
            if k == 1:
                length += tf
        return vec, [np.sqrt(x) for x in norm], length

    scores = []
    for test, rs in zip(ctest, crefs, strict=True):
        vec, norm, length = counts2vec(test)
        score = np.zeros(n)
        for r in rs:
            vr, nr, lr = counts2vec(r)
            delta = float(length - lr)
            val = np.zeros(n)
            for k in range(n):
                for ngram in vec[k]:
                    val[k] += min(vec[k][ngram], vr[k][ngram]) * vr[k][ngram]
                if norm[k] != 0 and nr[k] != 0:
                    val[k] /= norm[k] * nr[k]
                val[k] *= np.e ** (-(delta**2) / (2 * sigma**2))
            score += val
        scores.append(np.mean(score) / len(rs) * 10.0)
    return np.mean(scores), np.array(scores)


def test_cider_d_hand_example():
    # Two images, one reference each: "a b" and "c d"; |I| = 2, every reference n-gram has
    # df = 1, so its weight is tf * (log 2 - log 1) = log 2.
    # Image 0, hypothesis "a": unigrams g(c) = {a: l}, g(r) = {a: l, b: l} (l = log 2)
    #   n=1: min(l, l) * l / (l * l sqrt 2) = 1/sqrt 2, length penalty exp(-(1-2)^2 / 72)
    #   n=2..4: the hypothesis has no such n-grams -> 0
    #   score = 10 * (1/sqrt 2) e^{-1/72} / 4 = 1.7434...
    # Image 1, hypothesis "c d" = its reference: n=1 and n=2 give 1, n=3, 4 give 0 -> 10*2/4 = 5
    score, per = M.cider_d([["a b"], ["c d"]], ["a", "c d"], per_caption=True)
    expected0 = 10 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    np.testing.assert_allclose(per, [expected0, 5.0])
    assert score == pytest.approx((expected0 + 5.0) / 2)
    assert expected0 == pytest.approx(1.7434, abs=1e-4)


def test_cider_d_identical_caption_is_maximal():
    refs = [["a red circle above a blue square"], ["two green triangles near the edge"],
            ["one small yellow star in the corner"]]
    hyps = [r[0] for r in refs]
    score, per = M.cider_d(refs, hyps, per_caption=True)
    np.testing.assert_allclose(per, 10.0)  # the upper bound of CIDEr-D
    worse = ["a red circle above a green square", "two green triangles", hyps[2] + " again"]
    _, per_worse = M.cider_d(refs, worse, per_caption=True)
    assert np.all(per_worse < 10.0)


def test_cider_d_no_shared_ngrams_scores_zero():
    # image 0's hypothesis is image 1's caption: no n-gram in common with its reference
    refs = [["a b c d"], ["e f g h"], ["a f"]]
    _, per = M.cider_d(refs, ["e f g h", "e f g h", "a f"], per_caption=True)
    assert per[0] == 0.0 and per[1] > 0


def test_cider_d_single_image_corpus_is_zero():
    assert M.cider_d([["a cat on a mat"]], ["a cat on a mat"]) == 0.0


def test_cider_d_matches_coco_transcription():
    rng = np.random.default_rng(4)
    vocab = "a the red blue circle square left of above big small".split()

    def sentence():
        return " ".join(rng.choice(vocab, size=rng.integers(1, 10)))

    refs = [[sentence() for _ in range(rng.integers(1, 5))] for _ in range(12)]
    hyps = [sentence() if i % 3 else refs[i][0] for i in range(12)]
    for sigma in (6.0, 2.0):
        score, per = M.cider_d(refs, hyps, sigma=sigma, per_caption=True)
        ref_score, ref_per = _coco_cider_d(refs, hyps, sigma=sigma)
        np.testing.assert_allclose(per, ref_per, rtol=1e-12, atol=1e-12)
        assert score == pytest.approx(ref_score)
    # token lists give the same result as strings
    assert M.cider_d([[r.split() for r in rs] for rs in refs],
                     [h.split() for h in hyps]) == pytest.approx(M.cider_d(refs, hyps))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, error, match", [
    (lambda: M.accuracy([0, 1, 2, 0, 1], [0, 1, 2, 0]), ValueError,
     r"y_true and y_pred must have the same length, got 5 and 4"),
    (lambda: M.accuracy([], []), ValueError, r"y_true is empty"),
    (lambda: M.accuracy([0.5, 1.0], [0, 1]), ValueError, r"integer class labels"),
    (lambda: M.accuracy([[0, 1]], [0]), ValueError, r"y_true must be a 1-D array"),
    (lambda: M.accuracy([-1, 0], [0, 0]), ValueError, r"labels >= 0"),
    (lambda: M.precision_recall_f1([0, 1], [0, 1], average="binary"), ValueError,
     r"average must be one of 'macro', 'micro', 'weighted' or None, got 'binary'"),
    (lambda: M.confusion_matrix([0, 3], [0, 1], num_classes=3), ValueError,
     r"labels must lie in \[0, 3\), got label 3"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], normalize="rows"), ValueError,
     r"normalize must be one of"),
    (lambda: M.expected_calibration_error([[2.0, -1.0]], [0]), ValueError,
     r"probs must be probabilities in \[0, 1\].*softmax"),
    (lambda: M.expected_calibration_error([0.2, 0.9], [0, 1]), ValueError,
     r"probs must be a 2-D \(N, C\) matrix"),
    (lambda: M.expected_calibration_error([[0.5, 0.5]], [0, 1]), ValueError,
     r"probs and y_true must have the same length, got 1 and 2"),
    (lambda: M.expected_calibration_error([[0.5, 0.5]], [0], n_bins=0), ValueError,
     r"n_bins must be a positive integer"),
    (lambda: M.recall_at_k([0.1, 0.2, 0.3]), ValueError,
     r"similarity must be a 2-D \(queries, database\) matrix, got shape \(3,\)"),
    (lambda: M.recall_at_k(np.zeros((3, 5))), ValueError,
     r"needs a square similarity matrix, got shape \(3, 5\)"),
    (lambda: M.recall_at_k(S4, k=0), ValueError, r"k must be a positive integer, got 0"),
    (lambda: M.recall_at_k(S4, relevant=[0, 1, 2]), ValueError,
     r"one item index per query: length 4, got 3"),
    (lambda: M.recall_at_k(S4, relevant=[0, 1, 2, 4]), ValueError, r"item index 4"),
    (lambda: M.ranks([[np.nan, 1.0]], [0]), ValueError, r"similarity contains NaN"),
    (lambda: M.mean_average_precision(S4[:2], [[1, 0, 0, 0], [0, 0, 0, 0]]), ValueError,
     r"query 1 has none"),
    (lambda: M.mean_average_precision(S4, np.ones((4, 3), dtype=bool)), ValueError,
     r"must have the similarity's shape \(4, 4\), got \(4, 3\)"),
    (lambda: M.precision_recall_at_threshold(S4, None, [0.1, 0.2]), ValueError,
     r"theta must be a single number"),
    (lambda: M.bleu([["a b"]], ["a b", "c"]), ValueError,
     r"references and hypotheses must have the same length.*got 1 and 2"),
    (lambda: M.bleu([], []), ValueError, r"hypotheses is empty"),
    (lambda: M.bleu([[]], ["a"]), ValueError, r"references\[0\] must be a non-empty list"),
    (lambda: M.bleu([["a"]], [3]), TypeError, r"hypotheses\[0\] must be a string"),
    (lambda: M.cider_d([["a"]], ["a"], sigma=0), ValueError, r"sigma must be a positive"),
])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- input types


def test_torch_tensors_numpy_arrays_and_lists_agree(labels):
    torch = pytest.importorskip("torch")
    y_true, y_pred = labels
    sim, rel = _retrieval_data(seed=5)
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.ones(3), size=50)
    y3 = rng.integers(0, 3, size=50)

    def everything(conv):
        return [
            M.accuracy(conv(y_true), conv(y_pred)),
            M.accuracy(conv(y3), conv(probs)),
            M.precision_recall_f1(conv(y_true), conv(y_pred), average=None).f1,
            M.confusion_matrix(conv(y_true), conv(y_pred), normalize="true"),
            M.expected_calibration_error(conv(probs), conv(y3)),
            M.recall_at_k(conv(sim), (1, 5), relevant=conv(rel)),
            M.median_rank(conv(sim), conv(rel)),
            M.mean_average_precision(conv(sim), conv(rel)),
            M.precision_recall_at_threshold(conv(sim), conv(rel), 0.5).precision,
            M.precision_recall_curve_at_thresholds(conv(sim), conv(rel), conv(
                np.array([0.0, 1.0]))).recall,
        ]

    as_numpy = everything(np.asarray)
    for conv in (torch.as_tensor, lambda a: np.asarray(a).tolist()):
        for got, want in zip(everything(conv), as_numpy, strict=True):
            if isinstance(want, dict):
                assert got == want
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6)
    # float32 probabilities straight from a softmax, and the theta as a 0-d tensor
    p32 = torch.softmax(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    yt = torch.arange(20) % 4
    assert M.expected_calibration_error(p32, yt) == pytest.approx(
        M.expected_calibration_error(p32.double().numpy(), yt.numpy()))
    assert M.precision_recall_at_threshold(sim, rel, torch.tensor(0.5)).theta == 0.5


def test_importing_metrics_is_cheap():
    code = ("import sys, mmcourse.metrics; "
            "assert 'sklearn' not in sys.modules and 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if m in ('sklearn', 'torch'))")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- the package


def test_to_numpy_gives_a_detached_cpu_array_of_any_input():
    import torch

    t = torch.arange(6.0, requires_grad=True).reshape(3, 2) * 2  # part of an autograd graph
    arr = M.to_numpy(t)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, [[0, 2], [4, 6], [8, 10]])
    bf16 = M.to_numpy(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))  # NumPy has no bfloat16
    assert bf16.dtype == np.float32 and bf16.tolist() == [1.5, -2.0]
    given = np.arange(4)
    assert M.to_numpy(given) is given
    assert M.to_numpy([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert M.to_numpy(torch.tensor(3)).ndim == 0
    assert M.to_numpy([]).shape == (0,)  # empty is fine here; the metrics reject it
    if torch.cuda.is_available():
        assert M.to_numpy(torch.ones(2, device="cuda")).tolist() == [1.0, 1.0]


#: every public name of the module before it became a package of one-idea modules
PUBLIC_NAMES = (
    "PrecisionRecallF1", "ReliabilityBins", "ThresholdPrecisionRecall", "accuracy", "bleu", "cider_d",
    "confusion_matrix", "expected_calibration_error", "mean_average_precision", "median_rank",
    "precision_recall_at_threshold", "precision_recall_curve_at_thresholds", "precision_recall_f1",
    "ranks", "recall_at_k", "reliability_bins", "EditCounts", "digit_error_rate", "edit_distance",
    "edit_operations",
)


def test_the_public_names_stay_importable_from_mmcourse_metrics():
    assert sorted(M.__all__) == sorted([*PUBLIC_NAMES, "to_numpy"])
    assert [name for name in M.__all__ if not hasattr(M, name)] == []
