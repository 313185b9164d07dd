"""More training data from the same samples: randomly shifted copies.

A small translation does not change what a digit is, nor which word a spoken clip says, so a
shifted copy is a new training sample with the same label. For a sample ``x`` with spatial
axes ``(H, W)`` (the last two), copy ``c`` is the circular shift

    x_c[.., i, j] = x[.., (i − δ_i) mod H, (j − δ_j) mod W],   δ_i ~ U{−s_H..s_H}, δ_j ~ U{−s_W..s_W},

drawn independently per sample and per copy. MNIST digits have empty borders, so a shift of a
few pixels wraps only background noise; on a log-mel spectrogram ``[mel, time]`` only the time
axis is shifted (``s_H = 0``): a word said a few frames earlier is the same word, while a shift
in frequency would change the voice. Tensors not named in ``shifts`` (text, labels) are copied
unchanged. The ``full`` profile trains on ``profile().av_copies`` copies of AV-Digits.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset

#: AV-Digits: images move by up to 2 px each way, spectrograms by up to 3 frames in time.
AV_DIGITS_SHIFTS = {"image": (2, 2), "audio": (0, 3)}


def random_shift(x: Tensor, max_shift: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Each sample of ``x`` ``(N, .., H, W)`` circularly shifted by its own random ``(δ_i, δ_j)``
    with ``|δ_i| <= max_shift[0]``, ``|δ_j| <= max_shift[1]``."""
    if x.dim() < 3:
        raise ValueError(f"random_shift expects (N, .., H, W) samples, got {tuple(x.shape)}")
    s_h, s_w = max_shift
    if min(s_h, s_w) < 0 or s_h >= x.shape[-2] or s_w >= x.shape[-1]:
        raise ValueError(f"max_shift must be in [0, size) per axis, got {max_shift} for "
                         f"{tuple(x.shape[-2:])}")
    d_i = torch.randint(-s_h, s_h + 1, (len(x),), generator=generator)
    d_j = torch.randint(-s_w, s_w + 1, (len(x),), generator=generator)
    out = torch.empty_like(x)
    for di in range(-s_h, s_h + 1):             # at most (2 s_H + 1)(2 s_W + 1) distinct shifts
        for dj in range(-s_w, s_w + 1):
            pick = (d_i == di) & (d_j == dj)
            out[pick] = torch.roll(x[pick], shifts=(di, dj), dims=(-2, -1))
    return out


def shifted_copies(split: ModalDataset, copies: int, *, seed: int = 0,
                   shifts: Mapping[str, tuple[int, int]] | None = None) -> ModalDataset:
    """``split`` followed by ``copies − 1`` randomly shifted copies of it (``copies = 1``:
    ``split`` itself). ``shifts`` maps a modality to its ``(s_H, s_W)`` (default
    ``AV_DIGITS_SHIFTS``, for the modalities present); meta lists are repeated alongside."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive int, got {copies!r}")
    if not isinstance(split, ModalDataset):
        raise TypeError(f"shifted_copies expects a ModalDataset, got {type(split).__name__}")
    if shifts is None:
        shifts = {k: v for k, v in AV_DIGITS_SHIFTS.items() if k in split}
    missing = [k for k in shifts if k not in split]
    if missing:
        raise KeyError(f"shifted_copies: no modality {missing} to shift; the split has {list(split.keys)}")
    if copies == 1:
        return split
    generator = torch.Generator().manual_seed(seed)
    parts = {k: [v] for k, v in split.tensors.items()}
    for _ in range(copies - 1):
        for key, value in split.tensors.items():
            parts[key].append(random_shift(value, shifts[key], generator) if key in shifts else value)
    meta = {k: torch.cat([v] * copies) if isinstance(v, Tensor) else list(v) * copies
            for k, v in split.meta.items()}
    return ModalDataset({k: torch.cat(v) for k, v in parts.items()}, name=f"{split.name}x{copies}",
                        meta=meta, shapes=split.shapes)
