"""Classification metrics: accuracy, the confusion matrix, and precision / recall / F1.

With true labels ``y_i`` and predictions ``ŷ_i`` (or ``ŷ_i = argmax_c`` of scores ``(N, C)``)::

    acc = (1/N) Σ_i 1[ŷ_i = y_i]
    M[t, p] = #{i : y_i = t, ŷ_i = p}
    P_c = TP_c / (TP_c + FP_c),   R_c = TP_c / (TP_c + FN_c),   F1_c = 2 P_c R_c / (P_c + R_c)

with the one-vs-rest counts ``TP_c = M[c, c]``, ``FP_c = Σ_t M[t, c] − TP_c``,
``FN_c = Σ_p M[c, p] − TP_c``, averaged over classes (macro, weighted) or pooled (micro).
Tested against scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcourse.metrics._inputs import _labels, _safe_div, _to_numpy

_AVERAGES = ("macro", "micro", "weighted", None)
_NORMALIZE = (None, "true", "pred", "all")


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
