"""Evaluation metrics, written out in NumPy so that each one can be read as its formula.

Classification
    ``accuracy``, ``precision_recall_f1``, ``confusion_matrix``.
Calibration
    ``reliability_bins`` and ``expected_calibration_error``.
Retrieval over a similarity matrix ``S`` of shape ``(Q, D)`` (query ``i`` against database
item ``j``)
    ``ranks``, ``median_rank``, ``recall_at_k``, ``mean_average_precision``,
    ``precision_recall_at_threshold``, ``precision_recall_curve_at_thresholds``.
Captioning
    ``bleu`` (corpus BLEU-1..4) and ``cider_d`` (CIDEr-D).

Every function accepts PyTorch tensors, NumPy arrays or (nested) lists. Classes are integers
``0 .. C-1``. For retrieval, the ground truth ``relevant`` is one of

* ``None``: query ``i`` matches database item ``i`` only (``S`` must be square);
* a 1-D array of length ``Q``: the index of the one correct item for each query;
* a boolean ``(Q, D)`` matrix: ``relevant[i, j]`` is true when item ``j`` is a correct answer
  to query ``i`` (several correct matches per query).

Ties in similarity are broken *pessimistically* everywhere in the ranking metrics: an
irrelevant item whose similarity equals that of a relevant item is ranked above it. A model
whose embeddings collapse to a constant therefore scores Recall@1 = 0 (rank D), never a
flattering 1.0.

scikit-learn is the reference these functions are tested against; it is not imported here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PrecisionRecallF1",
    "ReliabilityBins",
    "ThresholdPrecisionRecall",
    "accuracy",
    "bleu",
    "cider_d",
    "confusion_matrix",
    "expected_calibration_error",
    "mean_average_precision",
    "median_rank",
    "precision_recall_at_threshold",
    "precision_recall_curve_at_thresholds",
    "precision_recall_f1",
    "ranks",
    "recall_at_k",
    "reliability_bins",
]

_AVERAGES = ("macro", "micro", "weighted", None)
_NORMALIZE = (None, "true", "pred", "all")


# --------------------------------------------------------------------------- input helpers


def _to_numpy(x, name: str) -> np.ndarray:
    """A NumPy copy/view of ``x`` (tensor, array or list); empty input is an error."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            t = t.float()
        x = t.numpy()
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array, got ragged input") from err
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__} of objects")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one element")
    return arr


def _labels(x, name: str) -> np.ndarray:
    """1-D array of non-negative integer class labels."""
    arr = _to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"{name} must hold integer class labels, got non-integer values of dtype "
                f"{arr.dtype}"
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} must hold class labels >= 0, got {arr.min()}")
    return arr


def _predicted_labels(y_pred, name: str = "y_pred") -> np.ndarray:
    """Labels ``(N,)`` as given, or ``argmax_c`` of scores/logits/probabilities ``(N, C)``."""
    arr = _to_numpy(y_pred, name)
    if arr.ndim == 2:
        if np.isnan(arr).any():
            raise ValueError(f"{name} scores contain NaN")
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be labels of shape (N,) or scores of shape (N, C), got shape {arr.shape}"
        )
    return _labels(arr, name)


def _num_classes(num_classes: int | None, *label_arrays: np.ndarray, at_least: int = 0) -> int:
    """``num_classes`` if given (checked against the labels), else ``max label + 1``."""
    top = max(int(a.max()) for a in label_arrays)
    if num_classes is None:
        return max(top + 1, at_least)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int or None, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if top >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got label {top}")
    return int(num_classes)


def _true_and_pred(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, int]:
    true = _labels(y_true, "y_true")
    pred_arr = _to_numpy(y_pred, "y_pred")
    n_score_columns = pred_arr.shape[1] if pred_arr.ndim == 2 else 0
    pred = _predicted_labels(pred_arr)
    if len(true) != len(pred):
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(true)} and {len(pred)}"
        )
    return true, pred, n_score_columns


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- classification


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions: ``acc = (1/N) Σ_i 1[ŷ_i = y_i]``.

    ``y_pred`` is either labels ``(N,)`` or scores/logits/probabilities ``(N, C)``, in which
    case ``ŷ_i = argmax_c y_pred[i, c]``.
    """
    true, pred, _ = _true_and_pred(y_true, y_pred)
    return float(np.mean(true == pred))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None,
                     normalize: str | None = None) -> np.ndarray:
    """``M[t, p] = #{i : y_i = t, ŷ_i = p}``: rows are true classes, columns predictions.

    ``normalize``: ``None`` (counts), ``"true"`` (each row divided by its sum: ``M[t, t]`` is
    the recall of class ``t``), ``"pred"`` (each column divided by its sum: the diagonal is
    precision) or ``"all"`` (divided by ``N``). A row or column with sum 0 stays 0.
    ``num_classes`` defaults to ``max label + 1`` (or the number of score columns).
    """
    if normalize not in _NORMALIZE:
        raise ValueError(
            f"normalize must be one of None, 'true', 'pred', 'all', got {normalize!r}"
        )
    true, pred, n_cols = _true_and_pred(y_true, y_pred)
    c = _num_classes(num_classes, true, pred, at_least=n_cols)
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    if normalize is None:
        return counts
    if normalize == "true":
        denom = counts.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        denom = counts.sum(axis=0, keepdims=True)
    else:
        denom = np.array(counts.sum())
    return np.divide(counts, denom, out=np.zeros((c, c)), where=denom != 0)


@dataclass(frozen=True)
class PrecisionRecallF1:
    """What ``precision_recall_f1`` returns. ``precision``, ``recall`` and ``f1`` are floats
    when averaged and per-class arrays when ``average=None``; ``support`` is always the
    per-class number of true samples ``n_c``."""

    precision: float | np.ndarray
    recall: float | np.ndarray
    f1: float | np.ndarray
    support: np.ndarray


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def precision_recall_f1(y_true, y_pred, num_classes: int | None = None,
                        average: str | None = "macro") -> PrecisionRecallF1:
    """Precision, recall and F1 of each class ``c``, from its one-vs-rest counts
    ``TP_c, FP_c, FN_c``::

        P_c = TP_c / (TP_c + FP_c)     R_c = TP_c / (TP_c + FN_c)
        F1_c = 2 P_c R_c / (P_c + R_c) = 2 TP_c / (2 TP_c + FP_c + FN_c)

    A 0/0 is 0 (as scikit-learn with ``zero_division=0``): a class that is never predicted has
    ``P_c = 0``. ``average``:

    * ``"macro"``: ``(1/C) Σ_c P_c`` (every class counts the same, rare ones included);
    * ``"weighted"``: ``Σ_c (n_c/N) P_c`` with ``n_c`` the class's support;
    * ``"micro"``: pool the counts, ``P = Σ TP_c / Σ (TP_c + FP_c)``; for single-label
      classification micro P = R = F1 = accuracy;
    * ``None``: the per-class arrays.

    The classes are ``0 .. C-1`` with ``C = num_classes`` or, if not given, the largest label
    + 1; a class absent from both ``y_true`` and ``y_pred`` then still counts (with 0) in the
    macro average, as in scikit-learn with ``labels=range(C)``.
    """
    if average not in _AVERAGES:
        raise ValueError(
            f"average must be one of 'macro', 'micro', 'weighted' or None, got {average!r}"
        )
    cm = confusion_matrix(y_true, y_pred, num_classes=num_classes)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    support = cm.sum(axis=1)
    if average == "micro":
        p = float(_safe_div(tp.sum(), tp.sum() + fp.sum()))
        r = float(_safe_div(tp.sum(), tp.sum() + fn.sum()))
        f = float(_safe_div(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum()))
        return PrecisionRecallF1(p, r, f, support)
    p = _safe_div(tp, tp + fp)
    r = _safe_div(tp, tp + fn)
    f = _safe_div(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return PrecisionRecallF1(p, r, f, support)
    weights = support / support.sum() if average == "weighted" else np.full(len(tp), 1 / len(tp))
    return PrecisionRecallF1(float(weights @ p), float(weights @ r), float(weights @ f), support)


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics for a reliability diagram (``n_bins`` equal-width bins).

    ``edges`` has ``n_bins + 1`` entries; bin ``b`` holds the confidences in
    ``(edges[b], edges[b+1]]``. ``confidence`` and ``accuracy`` are the bin means (NaN for an
    empty bin, so that a plot leaves a gap) and ``count`` the number of samples in each bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """``Σ_b (|B_b|/N) |acc(B_b) − conf(B_b)|`` over the non-empty bins."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(weights @ gaps)


def _probabilities(probs) -> np.ndarray:
    p = _to_numpy(probs, "probs").astype(np.float64)
    if p.ndim != 2:
        raise ValueError(
            f"probs must be a 2-D (N, C) matrix of class probabilities, got shape {p.shape}; "
            "for a binary classifier with P(y=1) = p pass np.stack([1 - p, p], axis=1)"
        )
    if not np.all(np.isfinite(p)) or p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError(
            f"probs must be probabilities in [0, 1], got values in [{p.min():.3g}, "
            f"{p.max():.3g}]; apply softmax to logits first"
        )
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = sums[np.argmax(np.abs(sums - 1))]
        raise ValueError(
            f"each row of probs must sum to 1, got a row summing to {worst:.4g}; "
            "apply softmax to logits first"
        )
    return p


def reliability_bins(probs, y_true, n_bins: int = 15) -> ReliabilityBins:
    """Group samples by confidence ``conf_i = max_c p_ic`` into ``n_bins`` equal-width bins.

    Bin ``b`` (``b = 0 .. n_bins-1``) is ``B_b = {i : conf_i ∈ (b/M, (b+1)/M]}`` with
    ``M = n_bins`` (edges ``np.linspace(0, 1, M + 1)``, upper edge inclusive; a confidence of
    exactly 0 goes in the first bin). For each bin::

        acc(B_b)  = (1/|B_b|) Σ_{i ∈ B_b} 1[argmax_c p_ic = y_i]
        conf(B_b) = (1/|B_b|) Σ_{i ∈ B_b} conf_i

    ``probs`` is ``(N, C)`` with rows summing to 1 (softmax outputs, not logits).
    """
    n_bins = _positive_int(n_bins, "n_bins")
    p = _probabilities(probs)
    y = _labels(y_true, "y_true")
    if len(y) != len(p):
        raise ValueError(
            f"probs and y_true must have the same length, got {len(p)} and {len(y)}"
        )
    if y.max() >= p.shape[1]:
        raise ValueError(f"y_true holds label {y.max()} but probs has only {p.shape[1]} columns")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") returns i with edges[i-1] < conf <= edges[i]: bin i - 1
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(which, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(edges, mean_conf, mean_acc, count)


def expected_calibration_error(probs, y_true, n_bins: int = 15) -> float:
    """``ECE = Σ_b (|B_b|/N) |acc(B_b) − conf(B_b)|`` over ``n_bins`` equal-width confidence
    bins ``(b/M, (b+1)/M]`` (see ``reliability_bins``). 0 is perfectly calibrated."""
    return reliability_bins(probs, y_true, n_bins).ece


# --------------------------------------------------------------------------- retrieval


def _similarity(similarity) -> np.ndarray:
    s = _to_numpy(similarity, "similarity")
    if s.ndim != 2:
        raise ValueError(
            f"similarity must be a 2-D (queries, database) matrix, got shape {s.shape}"
        )
    if s.dtype == bool or not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"similarity must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if np.isnan(s).any():
        raise ValueError("similarity contains NaN")
    return s


def _relevance(relevant, shape: tuple[int, int]) -> np.ndarray:
    """The boolean ``(Q, D)`` relevance matrix for any of the accepted ground-truth forms."""
    q, d = shape
    if relevant is None:
        if q != d:
            raise ValueError(
                "relevant=None means query i matches database item i, which needs a square "
                f"similarity matrix, got shape {shape}; pass relevant explicitly"
            )
        return np.eye(q, dtype=bool)
    rel = _to_numpy(relevant, "relevant")
    if rel.ndim == 1:
        idx = _labels(rel, "relevant")
        if len(idx) != q:
            raise ValueError(
                f"relevant as a 1-D array needs one item index per query: length {q}, "
                f"got {len(idx)}"
            )
        if idx.max() >= d:
            raise ValueError(f"relevant holds item index {idx.max()} but the database has {d}")
        out = np.zeros(shape, dtype=bool)
        out[np.arange(q), idx] = True
        return out
    if rel.ndim == 2:
        if rel.shape != shape:
            raise ValueError(
                f"relevant as a matrix must have the similarity's shape {shape}, got {rel.shape}"
            )
        if rel.dtype != bool and not np.all((rel == 0) | (rel == 1)):
            raise ValueError("relevant as a matrix must be boolean (or 0/1)")
        return rel.astype(bool)
    raise ValueError(
        "relevant must be None, a 1-D array of item indices or a boolean (Q, D) matrix, "
        f"got shape {rel.shape}"
    )


def _require_a_relevant_item(rel: np.ndarray) -> None:
    empty = np.flatnonzero(~rel.any(axis=1))
    if len(empty):
        raise ValueError(
            f"every query needs at least one relevant item; query {empty[0]} has none "
            f"({len(empty)} such queries)"
        )


def ranks(similarity, relevant=None) -> np.ndarray:
    """1-based rank of the best-ranked relevant item for each query (higher sim = better).

    With ``m_i = max_{j relevant to i} S[i, j]``::

        rank_i = 1 + #{j irrelevant to i : S[i, j] >= m_i}

    The ``>=`` is the pessimistic tie rule: an irrelevant item tied with the best relevant
    one is counted as ranked above it. Every query must have at least one relevant item.
    """
    s = _similarity(similarity)
    rel = _relevance(relevant, s.shape)
    _require_a_relevant_item(rel)
    best = np.where(rel, s, -np.inf).max(axis=1, keepdims=True)
    return 1 + np.sum(~rel & (s >= best), axis=1)


def median_rank(similarity, relevant=None) -> float:
    """``MedR = median_i rank_i`` (see ``ranks``); 1 is perfect, lower is better."""
    return float(np.median(ranks(similarity, relevant)))


def recall_at_k(similarity, k: int | Iterable[int] = (1, 5, 10),
                relevant=None) -> dict[int, float]:
    """``R@K = (1/Q) Σ_i 1[rank_i <= K]``: the fraction of queries with at least one relevant
    item among their top-K, for each ``K`` in ``k``. Returns ``{K: R@K}``.

    Ranks use the pessimistic tie rule of ``ranks``; ``K >= D`` trivially gives 1.0.
    """
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks:
        raise ValueError("k must name at least one cut-off")
    ks = [_positive_int(kk, "k") for kk in ks]
    r = ranks(similarity, relevant)
    return {kk: float(np.mean(r <= kk)) for kk in ks}


def mean_average_precision(similarity, relevant) -> float:
    """``mAP = (1/Q) Σ_i AP_i`` with, for query ``i`` with relevant set ``R_i`` and the
    database sorted by decreasing similarity::

        AP_i = (1/|R_i|) Σ_{k : item at rank k ∈ R_i} P@k,   P@k = |R_i ∩ top-k| / k

    Ties are broken pessimistically (irrelevant items first among equal similarities);
    scikit-learn's ``average_precision_score`` agrees whenever there are no ties. A query with
    no relevant item has no AP and is an error. ``relevant=None`` means item ``i`` for query
    ``i``.
    """
    s = _similarity(similarity)
    rel = _relevance(relevant, s.shape)
    _require_a_relevant_item(rel)
    irrelevant_first = np.argsort(rel, axis=1, kind="stable")
    by_score = np.argsort(-np.take_along_axis(s, irrelevant_first, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(irrelevant_first, by_score, axis=1)
    hits = np.take_along_axis(rel, order, axis=1)
    precision_at_k = np.cumsum(hits, axis=1) / np.arange(1, s.shape[1] + 1)
    ap = (precision_at_k * hits).sum(axis=1) / hits.sum(axis=1)
    return float(ap.mean())


@dataclass(frozen=True)
class ThresholdPrecisionRecall:
    """Pooled (micro) precision and recall of the retrieval sets ``{d : S[q, d] > θ}``, with the
    counts behind them. Scalars from ``precision_recall_at_threshold``, arrays (one entry per
    θ) from ``precision_recall_curve_at_thresholds``."""

    theta: float | np.ndarray
    precision: float | np.ndarray
    recall: float | np.ndarray
    tp: int | np.ndarray
    fp: int | np.ndarray
    fn: int | np.ndarray


def precision_recall_curve_at_thresholds(similarity, relevant,
                                         thetas) -> ThresholdPrecisionRecall:
    """Pooled precision and recall for each threshold ``θ`` in ``thetas`` (for a trade-off plot).

    Each query ``q`` retrieves ``R(q, θ) = {d : S[q, d] > θ}`` (strictly greater). Pooled over
    all queries::

        TP = Σ_q |R(q, θ) ∩ Rel(q)|,  FP = Σ_q |R(q, θ) \\ Rel(q)|,  FN = Σ_q |Rel(q) \\ R(q, θ)|
        precision = TP / (TP + FP),   recall = TP / (TP + FN)

    This is precision/recall of the flattened binary problem (``relevant``, ``S > θ``). An
    empty retrieved set (``TP + FP = 0``, θ above every similarity) has precision 0, and no
    relevant pairs at all gives recall 0 -- what scikit-learn's ``precision_score`` /
    ``recall_score`` return (with a warning) for 0/0.
    """
    s = _similarity(similarity)
    rel = _relevance(relevant, s.shape)
    th = _to_numpy(thetas, "thetas").astype(np.float64)
    if th.ndim != 1:
        raise ValueError(f"thetas must be a 1-D array of thresholds, got shape {th.shape}")
    if np.isnan(th).any():
        raise ValueError("thetas contains NaN")
    rel_scores = np.sort(s[rel])
    irr_scores = np.sort(s[~rel])
    # number of scores strictly greater than θ = n - #{scores <= θ}
    tp = len(rel_scores) - np.searchsorted(rel_scores, th, side="right")
    fp = len(irr_scores) - np.searchsorted(irr_scores, th, side="right")
    fn = len(rel_scores) - tp
    return ThresholdPrecisionRecall(th, _safe_div(tp, tp + fp), _safe_div(tp, tp + fn),
                                    tp, fp, fn)


def precision_recall_at_threshold(similarity, relevant, theta: float) -> ThresholdPrecisionRecall:
    """Pooled precision and recall of the retrieval sets ``R(q, D) = {d : sim(q, d) > θ}``
    (strictly greater) over all queries; see ``precision_recall_curve_at_thresholds`` for the
    formulas. An empty retrieved set has precision 0 (scikit-learn's 0/0 convention)."""
    if isinstance(theta, (bool, str)) or np.ndim(theta) != 0:
        raise ValueError(f"theta must be a single number, got {theta!r}")
    theta = float(theta)
    curve = precision_recall_curve_at_thresholds(similarity, relevant, [theta])
    return ThresholdPrecisionRecall(theta, float(curve.precision[0]),
                                    float(curve.recall[0]), int(curve.tp[0]),
                                    int(curve.fp[0]), int(curve.fn[0]))


# --------------------------------------------------------------------------- captioning


def _tokens(sentence, name: str) -> list[str]:
    """A sentence as a token list: a string is split on whitespace."""
    if isinstance(sentence, str):
        return sentence.split()
    if isinstance(sentence, Sequence) and all(isinstance(t, str) for t in sentence):
        return list(sentence)
    raise TypeError(f"{name} must be a string or a list of string tokens, got {sentence!r}")


def _corpus(references, hypotheses) -> tuple[list[list[list[str]]], list[list[str]]]:
    """Tokenized ``(references, hypotheses)``; ``references[i]`` is a list of references for
    hypothesis ``i`` (a single string is taken as one reference)."""
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError("hypotheses must be a list with one caption (string or tokens) each")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError("references must be a list with a list of reference captions each")
    if len(hypotheses) == 0:
        raise ValueError("hypotheses is empty; expected at least one caption")
    if len(references) != len(hypotheses):
        raise ValueError(
            "references and hypotheses must have the same length (one list of references "
            f"per hypothesis), got {len(references)} and {len(hypotheses)}"
        )
    hyps = [_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = []
    for i, rs in enumerate(references):
        if isinstance(rs, str):
            rs = [rs]
        if not isinstance(rs, Sequence) or len(rs) == 0:
            raise ValueError(f"references[{i}] must be a non-empty list of reference captions")
        refs.append([_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(rs)])
    return refs, hyps


def _ngrams(tokens: list[str], n: int) -> Counter:
    """Counts of the n-grams (tuples of ``n`` tokens) in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(references, hypotheses, max_n: int = 4, smooth: bool = False) -> dict[str, float]:
    """Corpus-level BLEU-1 .. BLEU-``max_n`` (Papineni et al., 2002).

    Clipped n-gram precision, pooled over the corpus (each n-gram of a hypothesis counts at
    most as often as it appears in any single one of its references)::

        p_n = Σ_h Σ_g min(c_h(g), max_r c_r(g)) / Σ_h Σ_g c_h(g)

    brevity penalty with ``c`` the total hypothesis length and ``r`` the sum over hypotheses
    of the reference length closest to the hypothesis length (a tie goes to the shorter)::

        BP = 1 if c > r else exp(1 − r/c)

    and ``BLEU-N = BP · exp(Σ_{n=1..N} (1/N) log p_n)`` (0 as soon as one ``p_n`` is 0).
    ``smooth=True`` adds one to the numerator and denominator of ``p_n`` for ``n >= 2``
    (Lin & Och 2004; NLTK's ``method2``), so short corpora do not score 0.

    ``hypotheses[i]`` is a string (split on whitespace) or a token list; ``references[i]`` is a
    *list* of references for it, each a string or a token list. Returns
    ``{"bleu1": ..., ..., f"bleu{max_n}": ...}``.
    """
    max_n = _positive_int(max_n, "max_n")
    refs, hyps = _corpus(references, hypotheses)
    matched = np.zeros(max_n)
    total = np.zeros(max_n)
    hyp_len = ref_len = 0
    for rs, h in zip(refs, hyps, strict=True):
        hyp_len += len(h)
        # closest reference length; min over (distance, length) sends ties to the shorter
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(h, n)
            max_ref = Counter()
            for r in rs:
                max_ref |= _ngrams(r, n)  # elementwise max of counts
            matched[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            total[n - 1] += sum(counts.values())
    if smooth:
        matched[1:] += 1
        total[1:] += 1
    if hyp_len == 0:
        return {f"bleu{n}": 0.0 for n in range(1, max_n + 1)}
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    precisions = _safe_div(matched, total)
    scores = {}
    for n in range(1, max_n + 1):
        p = precisions[:n]
        scores[f"bleu{n}"] = 0.0 if np.any(p == 0) else float(bp * np.exp(np.mean(np.log(p))))
    return scores


def cider_d(references, hypotheses, sigma: float = 6.0, *, per_caption: bool = False):
    """CIDEr-D (Vedantam et al., 2015), as computed by the coco-caption toolkit.

    For each n = 1..4, a caption ``s`` is the TF-IDF vector ``g^n(s)`` over its n-grams ``ω``::

        g^n_ω(s) = tf_ω(s) · (log |I| − log max(1, df(ω)))

    where ``tf`` is the raw count, ``|I|`` the number of images (hypotheses) and ``df(ω)`` the
    number of images whose *references* contain ``ω``. For hypothesis ``c`` with references
    ``s_1 .. s_m``::

        CIDEr-D_n = (10/m) Σ_j  e^{−(l_c − l_j)²/(2σ²)} ·
                    Σ_ω min(g^n_ω(c), g^n_ω(s_j)) g^n_ω(s_j) / (‖g^n(c)‖ ‖g^n(s_j)‖)
        CIDEr-D   = (1/4) Σ_n CIDEr-D_n

    with ``l`` caption lengths in words and a term 0 when a norm is 0. The clipping
    (``min``) stops repeated words from gaming the score, the Gaussian penalty punishes
    length mismatch. Each score is at most 10; an n-gram order that no caption of length
    < n can have contributes 0, so a caption of fewer than 4 words scores below 10 even when
    it equals its reference. The IDF is a corpus statistic: a corpus of a single image gives
    every score 0. Tokens are whitespace-split strings or token lists, as for ``bleu``.

    Returns the corpus score (the mean over hypotheses), or ``(score, per_caption_scores)``
    with ``per_caption=True``.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    refs, hyps = _corpus(references, hypotheses)
    orders = range(1, 5)
    ref_counts = [[{n: _ngrams(r, n) for n in orders} for r in rs] for rs in refs]
    df: Counter = Counter()
    for per_image in ref_counts:
        df.update({g for counts in per_image for n in orders for g in counts[n]})
    log_images = math.log(len(hyps))

    def tfidf(counts: Counter) -> tuple[dict, float]:
        vec = {g: tf * (log_images - math.log(max(1, df[g]))) for g, tf in counts.items()}
        return vec, math.sqrt(sum(v * v for v in vec.values()))

    scores = np.zeros(len(hyps))
    for i, (h, rs) in enumerate(zip(hyps, refs, strict=True)):
        total = 0.0
        for n in orders:
            vec_c, norm_c = tfidf(_ngrams(h, n))
            for r, counts in zip(rs, ref_counts[i], strict=True):
                vec_r, norm_r = tfidf(counts[n])
                if norm_c == 0 or norm_r == 0:
                    continue
                dot = sum(min(v, vec_r.get(g, 0.0)) * vec_r.get(g, 0.0) for g, v in vec_c.items())
                penalty = math.exp(-((len(h) - len(r)) ** 2) / (2 * sigma**2))
                total += penalty * dot / (norm_c * norm_r)
        scores[i] = 10.0 * total / (len(orders) * len(rs))
    corpus = float(scores.mean())
    return (corpus, scores) if per_caption else corpus
