"""Dynamic time warping (DTW): the cheapest monotonic alignment of two sequences.

Two sequences ``x_1..x_N`` and ``y_1..y_M`` of feature vectors (spectrogram frames) saying the
same thing at different speeds. The **cost matrix** ``C[i, j] = d(x_i, y_j)`` (Euclidean by
default). A warping path runs from ``(1, 1)`` to ``(N, M)`` in steps ``(1, 0)``, ``(0, 1)`` or
``(1, 1)``; DTW finds the one of least total cost by the **recursion**

    D[1, 1] = C[1, 1]
    D[i, j] = C[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1])          (∞ outside the grid)

and the **path** is back-traced from ``(N, M)``, each time to the argmin predecessor. The DTW
distance is ``D[N, M]`` -- the ``symmetric1`` step pattern of ``dtw-python``, which the tests use
as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DTWResult", "dtw", "pairwise_cost"]


@dataclass
class DTWResult:
    """``distance = D[N-1, M-1]``; ``cost`` ``C (N, M)``; ``accumulated`` ``D (N, M)``;
    ``path``: ``(L, 2)`` int array of ``(i, j)`` pairs from ``(0, 0)`` to ``(N-1, M-1)``."""

    distance: float
    cost: np.ndarray
    accumulated: np.ndarray
    path: np.ndarray


def pairwise_cost(x, y, metric: str = "euclidean") -> np.ndarray:
    """``C[i, j] = d(x_i, y_j)`` for ``x (N, F)``, ``y (M, F)`` (1-D inputs are ``F = 1``).

    ``metric``: ``"euclidean"`` ``||x_i - y_j||``, ``"sqeuclidean"`` or ``"cosine"``
    ``1 - cos(x_i, y_j)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, F) and (M, F) with the same F, got {x.shape} and {y.shape}")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("x and y must each have at least one frame")
    if metric in ("euclidean", "sqeuclidean"):
        sq = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T
        sq = np.maximum(sq, 0.0)
        return sq if metric == "sqeuclidean" else np.sqrt(sq)
    if metric == "cosine":
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return 1.0 - xn @ yn.T
    raise ValueError(f"metric must be 'euclidean', 'sqeuclidean' or 'cosine', got {metric!r}")


def dtw(x, y, metric: str = "euclidean") -> DTWResult:
    """DTW of ``x (N, F)`` and ``y (M, F)``: the recursion above, then the back-traced path.

    Ties in the back-trace prefer the diagonal, then ``(i-1, j)``, then ``(i, j-1)``.
    """
    cost = pairwise_cost(x, y, metric)
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)                  # padded: row/column 0 is "outside"
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda ij: acc[ij])
        path.append((i - 1, j - 1))
    return DTWResult(distance=float(acc[n, m]), cost=cost, accumulated=acc[1:, 1:],
                     path=np.array(path[::-1], dtype=np.int64))
