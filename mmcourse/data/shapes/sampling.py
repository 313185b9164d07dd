"""Sampling Shapes scenes: random objects at random, non-overlapping, unambiguous places.

A scene of ``n`` objects (``n`` uniform in ``min_shapes..max_shapes``) takes ``n`` distinct
object codes and centres uniform in ``[m, 1 − m]²`` with ``m = HALF_EXTENT["large"] + 0.03``.
A layout is kept only if, with objects in canonical order (ascending ``x + y``), every pair
``(i, j)`` is far enough apart and every described (consecutive) pair is clearly on one axis::

    major_ij = max(|dx|, |dy|) >= 2 · HALF_EXTENT["large"] + GAP
    major_ij >= AXIS_RATIO · minor_ij          for j = i + 1

so objects never overlap (each reserves a large-size box, so a size change cannot create an
overlap either) and "above" / "left of" is unambiguous to the eye. Rejected layouts are
re-drawn (rejection sampling, seeded, vectorised over the batch).
"""

from __future__ import annotations

import numpy as np

from mmcourse.data.shapes.scene import (
    COLOUR_NAMES,
    HALF_EXTENT,
    N_CODES,
    SIZES,
    _arrays_to_scenes,
    _check_int,
    _check_max_shapes,
)

#: minimum distance between two objects' (large-size) boxes, as a fraction of the image side
GAP = 0.04
#: a described pair must have |major axis offset| >= AXIS_RATIO * |minor axis offset|
AXIS_RATIO = 2.0
_MARGIN = HALF_EXTENT["large"] + 0.03  # centres stay this far from the border


# -- sampling ---------------------------------------------------------------------------------
def _valid_layouts(pos: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate layouts ``pos`` (M, K, 2) are valid, and each one's canonical order."""
    m, k = pos.shape[:2]
    slot = np.arange(k)[None, :]
    used = slot < count[:, None]
    key = np.where(used, pos[..., 0] + pos[..., 1], np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    pos = np.take_along_axis(pos, order[..., None], axis=1)
    ok = np.ones(m, dtype=bool)
    min_sep = 2 * HALF_EXTENT["large"] + GAP
    for i in range(k):
        for j in range(i + 1, k):
            both = (j < count)
            d = np.abs(pos[:, j] - pos[:, i])
            major, minor = d.max(axis=1), d.min(axis=1)
            good = major >= min_sep
            if j == i + 1:  # a described pair: clearly on one axis
                good &= major >= AXIS_RATIO * minor
            ok &= ~both | good
    return ok, order


def _sample_arrays(n: int, rng: np.random.Generator, max_shapes: int, *, min_shapes: int = 1,
                   distinct_colours: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count (n,)``, object ``codes (n, K)`` (-1 = none) and ``pos (n, K, 2)``, canonical order."""
    k = max_shapes
    count = rng.integers(min_shapes, max_shapes + 1, size=n)
    codes = np.argsort(rng.random((n, N_CODES)), axis=1)[:, :k]
    if distinct_colours and k > 1:
        while True:
            colour = codes // len(SIZES) % len(COLOUR_NAMES)
            bad = np.zeros(n, dtype=bool)
            for i in range(k):
                for j in range(i + 1, k):
                    bad |= (j < count) & (colour[:, i] == colour[:, j])
            if not bad.any():
                break
            codes[bad] = np.argsort(rng.random((int(bad.sum()), N_CODES)), axis=1)[:, :k]
    codes = np.where(np.arange(k)[None, :] < count[:, None], codes, -1)
    pos = np.zeros((n, k, 2))
    todo = np.arange(n)
    while todo.size:
        cand = rng.uniform(_MARGIN, 1 - _MARGIN, size=(todo.size, k, 2))
        ok, order = _valid_layouts(cand, count[todo])
        cand = np.take_along_axis(cand, order[..., None], axis=1)
        pos[todo[ok]] = cand[ok]
        todo = todo[~ok]
    pos[codes < 0] = 0.0
    return count, codes, pos


def sample_scenes(n: int, rng: np.random.Generator, max_shapes: int = 2, *,
                  min_shapes: int = 1, distinct_colours: bool = False) -> list[list[dict]]:
    """``n`` random scenes of ``min_shapes..max_shapes`` objects (uniform count), objects listed
    in canonical order. ``distinct_colours`` makes every object's colour different."""
    n = _check_int("n", n, 0)
    max_shapes = _check_max_shapes(max_shapes)
    min_shapes = _check_int("min_shapes", min_shapes, 1, max_shapes)
    return _arrays_to_scenes(*_sample_arrays(n, rng, max_shapes, min_shapes=min_shapes,
                                             distinct_colours=distinct_colours))


def sample_scene(rng: np.random.Generator, max_shapes: int = 2) -> list[dict]:
    """One random scene of 1..``max_shapes`` objects (see ``sample_scenes``)."""
    return sample_scenes(1, rng, max_shapes)[0]
