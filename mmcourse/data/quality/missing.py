"""Missing modalities on demand: mark a modality absent, never overwrite its values.

Modality ``m`` is absent from sample ``i`` where the boolean presence mask ``m_mask[i]`` (added
to the split, ANDed with any mask it already has) is False; the values stay as they were, so
"absent" is never confused with "all zeros".

* ``drop_modality``: ``m_mask[i] = (u_i ≥ p)``, ``u_i ~ U(0, 1)``: each sample loses ``m`` with
  probability ``p``;
* ``remove_modality``: ``m_mask = 0`` everywhere (a sensor that died at test time);
* ``set_missing``: ``m_mask[i] = ¬where[i]`` (e.g. the pairs a detector flagged);
* ``unpair``: ``round(paired_fraction · N)`` samples keep every modality, each other sample keeps
  exactly one, chosen uniformly (``meta["paired"]`` marks the paired ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import (
    MASK_SUFFIX,
    _check_data,
    _check_modality,
    _check_prob,
    _generator,
    _replace,
    _with_mask,
)

__all__ = ["drop_modality", "remove_modality", "set_missing", "unpair"]


def drop_modality(data: ModalDataset, p: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Mark ``modality`` absent in each sample independently with probability ``p``.

    Adds ``modality + "_mask"`` (bool, True = present; combined with any existing mask by AND);
    the values themselves are left untouched.
    """
    data = _check_data(data, "drop_modality")
    _check_modality(data, modality, "drop_modality")
    p = _check_prob(p, "p", "drop_modality")
    keep = torch.rand(len(data), generator=_generator(seed)) >= p
    return _with_mask(data, modality, keep)


def remove_modality(data: ModalDataset, *, modality: str) -> ModalDataset:
    """``modality`` absent from every sample (its mask all False), e.g. a sensor lost at test time."""
    data = _check_data(data, "remove_modality")
    _check_modality(data, modality, "remove_modality")
    return _with_mask(data, modality, torch.zeros(len(data), dtype=torch.bool))


def set_missing(data: ModalDataset, where: Tensor, *, modality: str) -> ModalDataset:
    """Mark ``modality`` absent at the samples where ``where`` (bool ``(N,)``) is True, e.g. the
    pairs a detector flagged as mispaired."""
    data = _check_data(data, "set_missing")
    _check_modality(data, modality, "set_missing")
    where = torch.as_tensor(where, dtype=torch.bool)
    if where.shape != (len(data),):
        raise ValueError(f"set_missing: where must have shape ({len(data)},), got {tuple(where.shape)}")
    return _with_mask(data, modality, ~where)


def unpair(data: ModalDataset, paired_fraction: float, *, modalities: Sequence[str] | None = None,
           seed: int = 0) -> ModalDataset:
    """Keep ``paired_fraction`` of the samples with every modality; each other sample keeps
    exactly one of ``modalities`` (chosen uniformly), as when most data come unpaired."""
    data = _check_data(data, "unpair")
    paired_fraction = _check_prob(paired_fraction, "paired_fraction", "unpair")
    if modalities is None:
        modalities = [k for k in data.keys if k != "label" and not k.endswith(MASK_SUFFIX)]
    modalities = list(modalities)
    if len(modalities) < 2:
        raise ValueError(f"unpair needs at least two modalities, got {modalities}")
    for m in modalities:
        _check_modality(data, m, "unpair")
    gen = _generator(seed)
    n = len(data)
    paired = torch.zeros(n, dtype=torch.bool)
    paired[torch.randperm(n, generator=gen)[: round(paired_fraction * n)]] = True
    only = torch.randint(len(modalities), (n,), generator=gen)
    for i, m in enumerate(modalities):
        data = _with_mask(data, m, paired | (only == i))
    return _replace(data, meta={"paired": paired})
