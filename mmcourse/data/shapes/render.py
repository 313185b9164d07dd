"""Rendering Shapes scenes: each object's anti-aliased coverage, blended over a background.

Images are RGB ``(3, S, S)`` in [0, 1] on a dark background. Object ``k`` covers pixel ``p``
by the fraction ``a_k(p) ∈ [0, 1]`` of its ``SUPERSAMPLE × SUPERSAMPLE`` (2×2) sub-pixels that
fall inside the shape, and objects are blended in one after another::

    x(p) ← x(p) + a_k(p) · (c_k − x(p))

with ``c_k`` the object's RGB colour. A rendering ``rng`` adds light nuisance that never makes
an attribute ambiguous: the background level (uniform in [0.03, 0.13], else ``BACKGROUND``),
±0.05 colour jitter, and uniform pixel noise of std 0.02. Coverage is computed only in a window
around each object, so rendering costs ``O(N · K · W²)``, not ``O(N · K · S²)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmcourse.data.shapes.scene import (
    COLOUR_NAMES,
    COLOURS,
    HALF_EXTENT,
    KINDS,
    SIZES,
    _scenes_to_arrays,
)

MIN_IMAGE_SIZE = 24
SUPERSAMPLE = 2
BACKGROUND = 0.08


def _check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size must be an int number of pixels, got {image_size!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be at least {MIN_IMAGE_SIZE} pixels so a small shape spans "
            f"{2 * HALF_EXTENT['small'] * MIN_IMAGE_SIZE:.1f}+ px and three shapes fit, "
            f"got {image_size}"
        )
    return int(image_size)


def _inside(kind: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Whether offsets (in units of the half-extent) fall inside a shape of ``kind``."""
    name = KINDS[kind]
    if name == "circle":
        return dx * dx + dy * dy <= 1.0
    if name == "square":
        return (np.abs(dx) <= 0.85) & (np.abs(dy) <= 0.85)
    if name == "triangle":  # apex up at dy = -0.95, base at dy = +0.9, ~equilateral
        return (dy <= 0.9) & (np.abs(dx) <= 1.07 * (dy + 0.95) / 1.85)
    if name == "cross":
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 0.34) & (ay <= 0.95)) | ((ay <= 0.34) & (ax <= 0.95))
    raise ValueError(f"unknown kind id {kind}")


def _window(size: int) -> int:
    """Side in pixels of the square window that holds any object (a large one plus a margin)."""
    return min(size, int(np.ceil(2 * HALF_EXTENT["large"] * size)) + 3)


def _window_coverage(codes: np.ndarray, pos: np.ndarray, size: int):
    """Anti-aliased coverage of objects ``codes (M,)`` centred at ``pos (M, 2)``, computed only
    in a ``W × W`` window around each: ``(cov (M, W, W) in [0, 1], y0 (M,), x0 (M,))``."""
    ss, w = SUPERSAMPLE, _window(size)
    m = len(codes)
    radius = np.where(codes % len(SIZES) == 0, HALF_EXTENT["small"], HALF_EXTENT["large"])
    corner = np.floor((pos - HALF_EXTENT["large"]) * size).astype(np.int64) - 1
    corner = np.clip(corner, 0, size - w)  # (M, 2) as (x0, y0)
    sub = (np.arange(w * ss, dtype=np.float32) + 0.5) / ss  # sub-pixel centres in the window
    kinds = codes // (len(COLOUR_NAMES) * len(SIZES))
    cov = np.empty((m, w, w), dtype=np.float32)
    for kind in np.unique(kinds):
        rows = np.flatnonzero(kinds == kind)
        r = radius[rows].astype(np.float32)[:, None, None]
        start = (corner[rows] / size - pos[rows]).astype(np.float32)  # window corner - centre
        dx = (start[:, 0, None, None] + sub[None, None, :] / size) / r
        dy = (start[:, 1, None, None] + sub[None, :, None] / size) / r
        inside = _inside(int(kind), dx, dy).view(np.uint8).reshape(len(rows), w, ss, w, ss)
        acc = np.zeros((len(rows), w, w), dtype=np.uint8)
        for a in range(ss):
            for b in range(ss):
                acc += inside[:, :, a, :, b]
        cov[rows] = acc * np.float32(1.0 / (ss * ss))
    return cov, corner[:, 1], corner[:, 0]


def _coverage(codes: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """Full-frame coverage ``(M, S, S)`` in [0, 1] of the objects ``codes (M,)`` at ``pos``."""
    cov, y0, x0 = _window_coverage(codes, pos, size)
    w = cov.shape[1]
    out = np.zeros((len(codes), size, size), dtype=np.float32)
    for i in range(len(codes)):
        out[i, y0[i]:y0[i] + w, x0[i]:x0[i] + w] = cov[i]
    return out


def _render_arrays(count, codes, pos, size: int, rng: np.random.Generator | None,
                   chunk: int = 1024) -> np.ndarray:
    """Images ``(N, 3, S, S)``: background, then each object blended in inside its window."""
    n, k = codes.shape
    w = _window(size)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    palette = np.asarray(list(COLOURS.values()), dtype=np.float32)
    offsets = np.arange(w)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        m = sl.stop - sl.start
        if rng is None:
            bg = np.full((m, 1, 1, 1), BACKGROUND, dtype=np.float32)
            jitter = np.zeros((m, k, 3), dtype=np.float32)
        else:
            bg = rng.uniform(0.03, 0.13, size=(m, 1, 1, 1)).astype(np.float32)
            jitter = rng.uniform(-0.05, 0.05, size=(m, k, 3)).astype(np.float32)
        img = images[sl]  # a view: render in place
        img[...] = bg
        for j in range(k):
            rows = np.flatnonzero(codes[sl, j] >= 0)
            if rows.size == 0:
                continue
            c = codes[sl, j][rows]
            cov, y0, x0 = _window_coverage(c, pos[sl, j][rows], size)
            colour = palette[c // len(SIZES) % len(COLOUR_NAMES)] + jitter[rows, j]
            index = (rows[:, None, None, None], np.arange(3)[None, :, None, None],
                     (y0[:, None] + offsets)[:, None, :, None],
                     (x0[:, None] + offsets)[:, None, None, :])
            patch = img[index]
            img[index] = patch + cov[:, None] * (colour[:, :, None, None] - patch)
        if rng is not None:
            noise = rng.random(size=img.shape, dtype=np.float32)  # uniform: 6x faster
            noise -= np.float32(0.5)
            noise *= np.float32(0.07)  # std 0.07 / sqrt(12) = 0.02
            img += noise
        np.clip(img, 0.0, 1.0, out=img)
    return images


def render_scenes(scenes: Sequence[Sequence[Mapping]], image_size: int = 32,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Render many scenes at once: float32 ``(N, 3, S, S)`` in [0, 1].

    Without ``rng`` the rendering is clean (fixed background, exact colours, no noise); with one,
    light nuisance is added (see the module docstring).
    """
    size = _check_image_size(image_size)
    return _render_arrays(*_scenes_to_arrays(scenes), size, rng)


def render_scene(scene: Sequence[Mapping], image_size: int = 32,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one scene: float32 ``(3, S, S)`` in [0, 1] (see ``render_scenes``)."""
    return render_scenes([scene], image_size, rng)[0]


def object_masks(scene: Sequence[Mapping], image_size: int = 32) -> np.ndarray:
    """Each object's pixel coverage, float32 ``(n_objects, S, S)`` in [0, 1], in scene order
    (for checking colours, or comparing with attention maps)."""
    size = _check_image_size(image_size)
    count, codes, pos = _scenes_to_arrays([scene])
    return _coverage(codes[0, : count[0]], pos[0, : count[0]], size)
