"""Combining corruptions and splits: chain corruptions, stack splits.

* ``compose(f, g)(data) = g(f(data))``: several corruptions applied left to right, as one;
* ``concat([d_1, ..., d_k])``: the splits stacked sample-wise into one of ``Σ_j N_j`` samples
  (e.g. a clean split plus noisy copies, for augmentation). A presence mask that only some of
  the splits have is True for the others (their samples had the modality); a ``meta`` entry is
  kept only if every split has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import MASK_SUFFIX, mask_of

__all__ = ["compose", "concat"]


def compose(*corruptions: Callable[[ModalDataset], ModalDataset]) -> Callable[[ModalDataset], ModalDataset]:
    """``compose(f, g)(data) = g(f(data))``: apply corruptions left to right."""
    for c in corruptions:
        if not callable(c):
            raise TypeError(f"compose expects callables data -> data, got {type(c).__name__}")

    def apply(data: ModalDataset) -> ModalDataset:
        for c in corruptions:
            data = c(data)
        return data

    return apply


def concat(datasets: Sequence[ModalDataset], name: str | None = None) -> ModalDataset:
    """Stack splits with the same keys into one (e.g. clean + noisy copies for augmentation).

    A presence mask that only some of the splits have is filled with True for the others.
    """
    if not datasets:
        raise ValueError("concat needs at least one ModalDataset")
    data_keys = {k for k in datasets[0].keys if not k.endswith(MASK_SUFFIX)}
    for d in datasets:
        if set(d.keys) - {k for k in d.keys if k.endswith(MASK_SUFFIX)} != data_keys:
            raise ValueError(f"concat: splits have different modalities: {[list(d.keys) for d in datasets]}")
    tensors = {}
    for k in dict.fromkeys(k for d in datasets for k in d.keys):      # first-seen order
        if k.endswith(MASK_SUFFIX):
            tensors[k] = torch.cat([mask_of(d, k[: -len(MASK_SUFFIX)]) for d in datasets])
        else:
            tensors[k] = torch.cat([d.tensors[k] for d in datasets])
    meta_keys = set.intersection(*(set(d.meta) for d in datasets))
    meta = {}
    for k in meta_keys:
        parts = [d.meta[k] for d in datasets]
        meta[k] = torch.cat(parts) if all(isinstance(p, Tensor) for p in parts) else \
            [v for p in parts for v in p]
    shapes = {k: v for d in datasets for k, v in d.shapes.items()}
    return ModalDataset(tensors, name=name or datasets[0].name, meta=meta, shapes=shapes)
