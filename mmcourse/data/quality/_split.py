"""What every corruption shares: a split in, a new split out, seeded, never in place.

A corruption is ``corruption(data, level, *, modality=..., seed=0) -> ModalDataset``. It checks
its input (a non-empty ``ModalDataset``, a modality that exists and has the right dtype, a
probability in ``[0, 1]``), draws its randomness from its own generator seeded with ``seed``
(never the global RNG), and builds the result with ``_replace``: the tensors that change are new,
the others are shared with the clean split, which is never modified.

Absence is a presence mask, never a value: modality ``m`` of sample ``i`` is present where
``data[m + MASK_SUFFIX][i]`` is True, and ``mask_of(data, m)`` is all True when the split has no
mask for ``m``. Marking more samples absent ANDs a new mask with the old one,
``mask' = mask_of(data, m) ∧ keep``, so absent stays absent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset

Corruption = Callable[..., ModalDataset]

__all__ = ["MASK_SUFFIX", "Corruption", "mask_of"]

MASK_SUFFIX = "_mask"


def _check_data(data, where: str) -> ModalDataset:
    if not isinstance(data, ModalDataset):
        raise TypeError(f"{where} expects a ModalDataset split (e.g. splits.test), got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{where}: the split {data.name!r} is empty")
    return data


def _check_modality(data: ModalDataset, modality: str, where: str, *, floating: bool | None = None) -> Tensor:
    if modality not in data or modality == "label" or modality.endswith(MASK_SUFFIX):
        mods = [k for k in data.keys if k != "label" and not k.endswith(MASK_SUFFIX)]
        raise KeyError(f"{where}: no modality {modality!r} in split {data.name!r}; it has {mods}")
    x = data.tensors[modality]
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{where} needs a float modality; {modality!r} is {x.dtype}")
    if floating is False and x.is_floating_point():
        raise TypeError(f"{where} needs token ids (int64); {modality!r} is {x.dtype}")
    return x


def _check_prob(p, name: str, where: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: {name} must be a probability in [0, 1], got {p}")
    return p


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _replace(data: ModalDataset, tensors: dict | None = None, meta: dict | None = None,
             index: Tensor | None = None, shapes: dict | None = None) -> ModalDataset:
    """A new split: ``data`` with some tensors / meta entries replaced (or a subset at ``index``)."""
    base = data.subset(index) if index is not None else data
    return ModalDataset({**base.tensors, **(tensors or {})}, name=data.name,
                        meta={**base.meta, **(meta or {})}, shapes={**data.shapes, **(shapes or {})})


def mask_of(data: ModalDataset, modality: str) -> Tensor:
    """``(N,)`` bool: where ``modality`` is present (all True if the split has no mask for it)."""
    mask = data.tensors.get(modality + MASK_SUFFIX)
    return torch.ones(len(data), dtype=torch.bool) if mask is None else mask.to(torch.bool)


def _with_mask(data: ModalDataset, modality: str, keep: Tensor) -> ModalDataset:
    """Add (AND with any existing) the presence mask ``keep`` for ``modality``."""
    mask = mask_of(data, modality) & keep.to(torch.bool)
    return _replace(data, {modality + MASK_SUFFIX: mask},
                    shapes={modality + MASK_SUFFIX: f"() bool, True where {modality} is present"})
