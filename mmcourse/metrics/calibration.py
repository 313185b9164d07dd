"""Calibration: does a classifier's confidence match how often it is right?

Samples are grouped by their confidence ``conf_i = max_c p_ic`` into ``M`` equal-width bins
``B_b = {i : conf_i ∈ (b/M, (b+1)/M]}``; in each bin the accuracy and the mean confidence are
compared, and the expected calibration error weighs the gaps by the bins' sizes::

    ECE = Σ_b (|B_b|/N) |acc(B_b) − conf(B_b)|

0 is perfectly calibrated. A reliability diagram plots ``acc(B_b)`` against ``conf(B_b)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcourse.metrics._inputs import _labels, _positive_int, _to_numpy


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
