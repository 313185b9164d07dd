"""Bars: noisy images with one short bar, horizontal or vertical -- where weight sharing pays.

Each ``size × size`` image is Gaussian noise plus one bar of 4 bright pixels (``+2``):

    x = σ ε + 2 · 1[bar],    ε ~ N(0, I),    y = 0 (horizontal) or 1 (vertical),

with the bar's first pixel drawn uniformly in rows and columns ``0 .. size - 5`` (so the last
row and column stay background) or, with ``anywhere=False``, with the whole bar in the left third
of the image (first column ``0 .. size // 3 - 4``). Training on the left third and testing
anywhere asks whether a model recognises a pattern at positions it never saw: a convolution
followed by global max pooling does (the same filter at every position, the position then
discarded), an MLP with one weight per pixel does not (exercise 02).
"""

from __future__ import annotations

import torch

BAR = 4          # pixels in a bar
BRIGHT = 2.0     # added to each of them


def make_bars(n: int, seed: int, anywhere: bool = True, size: int = 12, noise: float = 0.6):
    """``n`` noisy ``size × size`` images, each with one bar of 4 bright pixels: horizontal (label
    0) or vertical (label 1). With ``anywhere=False`` every bar lies in the left third of the
    image. Returns ``(images (n, 1, size, size) float32, labels (n,) int64)``; the same ``seed``
    gives the same images."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"make_bars: n must be an int >= 1, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 3 * BAR:
        raise ValueError(f"make_bars: size must be an int >= {3 * BAR} (a bar must fit in the left "
                         f"third), got {size!r}")
    if not float(noise) >= 0:
        raise ValueError(f"make_bars: noise must be >= 0, got {noise!r}")
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.randint(0, 2, (n,), generator=g)
    images = noise * torch.randn(n, 1, size, size, generator=g)
    row = torch.randint(0, size - BAR, (n, 1), generator=g)
    col = torch.randint(0, size - BAR if anywhere else size // 3 - BAR + 1, (n, 1), generator=g)
    step = torch.arange(BAR)
    vertical = labels[:, None] == 1
    rows = torch.where(vertical, row + step, row)          # (n, 4) pixels of each bar
    cols = torch.where(vertical, col, col + step)
    images[torch.arange(n)[:, None], 0, rows, cols] += BRIGHT
    return images, labels
