"""Retrieval metrics over a similarity matrix ``S`` of shape ``(Q, D)`` (query ``i`` against
database item ``j``): ranks, median rank, Recall@K, mAP, and precision / recall at a threshold.

The ground truth ``relevant`` is one of

* ``None``: query ``i`` matches database item ``i`` only (``S`` must be square);
* a 1-D array of length ``Q``: the index of the one correct item for each query;
* a boolean ``(Q, D)`` matrix: ``relevant[i, j]`` is true when item ``j`` is a correct answer
  to query ``i`` (several correct matches per query).

With ``m_i = max_{j relevant to i} S[i, j]``::

    rank_i = 1 + #{j irrelevant to i : S[i, j] >= m_i}       R@K = (1/Q) Σ_i 1[rank_i <= K]

Ties in similarity are broken *pessimistically* everywhere in the ranking metrics (the ``>=``):
an irrelevant item whose similarity equals that of a relevant item is ranked above it. A model
whose embeddings collapse to a constant therefore scores Recall@1 = 0 (rank D), never a
flattering 1.0. At a threshold ``θ`` each query retrieves ``R(q, θ) = {d : S[q, d] > θ}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mmcourse.metrics._inputs import _labels, _positive_int, _safe_div, _to_numpy


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
