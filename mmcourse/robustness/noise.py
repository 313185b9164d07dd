"""Remedies for noisy and differently scaled modalities: train on noise, put modalities on one scale.

* ``augment`` trains on the clean split plus a corrupted copy, its samples split among the
  corruption levels, so the model has seen every level;
* ``fit_normaliser`` / ``normalise`` put every modality on zero mean and unit variance with
  training statistics, ``x' = (x − μ_m) / σ_m``, so no modality dominates by its scale alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality import concat, mask_of


def augment(data: ModalDataset, corruption: Callable[..., ModalDataset], levels: Sequence,
            *, seed: int = 0) -> ModalDataset:
    """Noise-augmented training data: the clean split plus one corrupted copy, whose samples are
    divided at random into ``len(levels)`` parts, part ``j`` corrupted at ``levels[j]``."""
    if not levels:
        raise ValueError("augment needs at least one corruption level")
    gen = torch.Generator().manual_seed(int(seed))
    parts = torch.randperm(len(data), generator=gen).chunk(len(levels))
    noisy = [corruption(data.subset(idx), level) for idx, level in zip(parts, levels)]
    return concat([data, *noisy])


def fit_normaliser(train: ModalDataset, modalities: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``{m: (μ_m, σ_m)}``: each modality's mean and standard deviation over the training split."""
    stats = {}
    for m in modalities:
        x = train.tensors[m]
        if not x.is_floating_point():
            raise TypeError(f"fit_normaliser: {m!r} is {x.dtype}; only float modalities can be normalised")
        x = x[mask_of(train, m)].double()
        stats[m] = (float(x.mean()), float(x.std()) + 1e-8)
    return stats


def normalise(data: ModalDataset, stats: Mapping[str, tuple[float, float]]) -> ModalDataset:
    """``x' = (x − μ_m) / σ_m`` for each modality in ``stats`` (from ``fit_normaliser``)."""
    tensors = dict(data.tensors)
    for m, (mu, sigma) in stats.items():
        tensors[m] = (data.tensors[m] - mu) / sigma
    return ModalDataset(tensors, name=data.name, meta=data.meta, shapes=data.shapes)
