"""Misalignment on demand: modalities that no longer belong to the same sample, or moment.

* ``shuffle_pairs``: a random ``fraction`` of the samples get another chosen sample's ``m``,
  ``x'_{c_j} = x_{c_{j−1}}`` over the chosen ``c_1 .. c_k`` (a cyclic shift, so each really
  changes partner); ``meta["mispaired"]`` marks them, the labels stay with the other modalities;
* ``time_shift``: ``x'[..., t] = x[..., t − s]``, the audio moved by ``s`` frames along its last
  axis, the frames shifted in from outside filled with the clip's minimum (silence);
  ``meta["time_shift"]`` records each sample's ``s``.
"""

from __future__ import annotations

import torch

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import (
    MASK_SUFFIX,
    _check_data,
    _check_modality,
    _check_prob,
    _generator,
    _replace,
)

__all__ = ["shuffle_pairs", "time_shift"]


def shuffle_pairs(data: ModalDataset, fraction: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Re-pair ``fraction`` of the samples: their ``modality`` is replaced by another chosen
    sample's (a cyclic shift over a random subset, so every chosen sample really changes partner).
    ``meta["mispaired"]`` (bool) marks them; labels stay with the *other* modalities."""
    data = _check_data(data, "shuffle_pairs")
    x = _check_modality(data, modality, "shuffle_pairs")
    fraction = _check_prob(fraction, "fraction", "shuffle_pairs")
    n = len(data)
    chosen = torch.randperm(n, generator=_generator(seed))[: round(fraction * n)]
    source = torch.arange(n)
    if len(chosen) >= 2:
        source[chosen] = chosen.roll(1)
    mispaired = source != torch.arange(n)
    changes = {modality: x[source]}
    mask_key = modality + MASK_SUFFIX
    if mask_key in data:
        changes[mask_key] = data.tensors[mask_key][source]
    return _replace(data, changes, meta={"mispaired": mispaired})


def time_shift(data: ModalDataset, shift: int, *, modality: str = "audio", random: bool = False,
               seed: int = 0) -> ModalDataset:
    """Shift the last (time) axis by ``shift`` frames: ``x'[..., t] = x[..., t − s]``, frames
    shifted in from outside filled with the clip's minimum (silence). With ``random=True`` each
    sample gets its own ``s`` uniform in ``[−shift, shift]``."""
    data = _check_data(data, "time_shift")
    x = _check_modality(data, modality, "time_shift", floating=True)
    T = x.shape[-1]
    shift = int(shift)
    if abs(shift) >= T:
        raise ValueError(f"time_shift: |shift| must be < {T} frames, got {shift}")
    n = len(x)
    if random:
        s = torch.randint(-abs(shift), abs(shift) + 1, (n,), generator=_generator(seed))
    else:
        s = torch.full((n,), shift)
    t = torch.arange(T)
    src = t[None] - s[:, None]                                             # (N, T)
    valid = (src >= 0) & (src < T)
    view = (n,) + (1,) * (x.dim() - 2) + (T,)
    index = src.clamp(0, T - 1).view(view).expand_as(x)
    floor = x.reshape(n, -1).min(1).values.view((n,) + (1,) * (x.dim() - 1))
    out = torch.where(valid.view(view), x.gather(-1, index), floor)
    return _replace(data, {modality: out}, meta={"time_shift": s})
