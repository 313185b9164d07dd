"""Class imbalance on demand: subsample the classes into a long tail.

With ``C`` classes taken in the order ``order`` (default ``0, 1, ..., C−1``) and ``n_max`` the
smallest class count of the clean split, the class at rank ``r`` keeps, at random,

* ``profile="exponential"``: ``n_r = round(n_max · ratio^(−r/(C−1)))``, a long tail from
  ``n_max`` down to ``n_max / ratio``;
* ``profile="step"``: ``n_max`` for the first half of the classes, ``n_max / ratio`` for the rest;

so ``ratio = n_max / n_min`` (e.g. 10 for a 10:1 long tail). ``class_counts`` gives ``n_c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import _check_data, _generator, _replace

__all__ = ["class_counts", "imbalance"]


def class_counts(labels: Tensor, num_classes: int | None = None) -> Tensor:
    """``(C,)`` number of samples of each class."""
    return torch.bincount(labels.long(), minlength=num_classes or 0)


def imbalance(data: ModalDataset, ratio: float, *, profile: str = "exponential",
              order: Sequence[int] | None = None, target: str = "label", seed: int = 0) -> ModalDataset:
    """Subsample classes to an imbalance ``ratio = n_max / n_min`` (e.g. 10 for a 10:1 long tail).

    The class at rank ``r`` of ``order`` (default: 0, 1, ..., C−1) keeps
    ``n_r = round(n_max · ratio^(−r/(C−1)))`` samples (``profile="exponential"``), or
    ``n_max`` for the first half and ``n_max/ratio`` for the rest (``profile="step"``), where
    ``n_max`` is the smallest class count of the clean split. Samples are drawn at random.
    """
    data = _check_data(data, "imbalance")
    if float(ratio) < 1:
        raise ValueError(f"imbalance: ratio must be >= 1 (n_max / n_min), got {ratio}")
    if profile not in ("exponential", "step"):
        raise ValueError(f"imbalance: profile must be 'exponential' or 'step', got {profile!r}")
    if target not in data:
        raise KeyError(f"imbalance: the split has no {target!r}; it has {list(data.keys)}")
    y = data.tensors[target]
    classes = torch.unique(y).tolist()
    order = list(classes if order is None else order)
    if sorted(order) != sorted(classes):
        raise ValueError(f"imbalance: order must list every class {classes} once, got {order}")
    counts = class_counts(y)
    n_max = int(min(counts[c] for c in classes))
    gen = _generator(seed)
    keep = []
    C = len(order)
    for r, c in enumerate(order):
        if profile == "exponential":
            n = n_max * float(ratio) ** (-r / max(C - 1, 1))
        else:
            n = n_max if r < (C + 1) // 2 else n_max / float(ratio)
        n = max(1, round(n))
        idx = torch.nonzero(y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    keep = torch.cat(keep).sort().values
    return _replace(data, index=keep)
