"""Batches: a dataset becomes a stream of batch dicts on the training device.

A ``ModalDataset`` that fits is moved to the device *once* and batches are sliced from it there
(never re-copied); a ``DataLoader`` or any iterable of batch dicts is moved batch by batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset

Batch = dict[str, Tensor]

#: A ModalDataset up to this many bytes is kept resident on an accelerator.
RESIDENT_LIMIT_BYTES = 2 * 1024**3


def _nbytes(data: ModalDataset) -> int:
    return sum(t.numel() * t.element_size() for t in data.tensors.values())


def to_device(batch: Mapping[str, Tensor], dev: torch.device, non_blocking: bool = True) -> Batch:
    """Move every tensor of a batch dict to ``dev`` (non-tensors are passed through)."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"a batch must be a dict of modality tensors, got {type(batch).__name__}")
    return {k: v.to(dev, non_blocking=non_blocking) if isinstance(v, Tensor) else v
            for k, v in batch.items()}


def prepare(data, dev: torch.device):
    """Place a dataset for iteration: a ``ModalDataset`` that fits goes to ``dev`` once."""
    if isinstance(data, ModalDataset):
        if len(data) == 0:
            raise ValueError(f"dataset {data.name!r} is empty")
        if dev.type == "cpu" or _nbytes(data) <= RESIDENT_LIMIT_BYTES:
            return data.to(dev)
    return data


def iterate_batches(data, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None, dev: torch.device | None = None,
                    drop_last: bool = False, indices: Tensor | None = None) -> Iterable[Batch]:
    """Yield batch dicts from a ``ModalDataset`` (sliced in place), a ``DataLoader`` or any
    iterable of batch dicts (moved to ``dev``), or a map-style ``Dataset`` (wrapped in a
    ``DataLoader`` with ``num_workers=0``). ``indices`` (a ``ModalDataset`` only) gives the
    samples to visit, in order, instead of all of them (``shuffle`` is then ignored): one
    rank's shard under DDP."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, ModalDataset):
        n = len(data) if indices is None else len(indices)
        on_device = dev is None or data.device == dev
        order = None
        if indices is not None:
            order = indices.to(data.device)
        elif shuffle:
            order = torch.randperm(n, generator=generator).to(data.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if order is not None:
                idx = order[start:start + batch_size]
                batch = {k: v[idx] for k, v in data.tensors.items()}
            else:
                batch = {k: v[start:start + batch_size] for k, v in data.tensors.items()}
            yield batch if on_device else to_device(batch, dev)
        return
    if indices is not None:
        raise TypeError(f"iterate_batches(indices=...) needs a ModalDataset, got {type(data).__name__}")
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=shuffle,
                                           generator=generator, num_workers=0, drop_last=drop_last)
    for batch in data:
        yield to_device(batch, dev) if dev is not None else batch


def num_batches(data, batch_size: int) -> int | None:
    """Batches per epoch: ceil(N / batch_size) for a dataset, len() for a loader, else None."""
    try:
        n = len(data)
    except TypeError:
        return None
    return math.ceil(n / batch_size) if isinstance(data, torch.utils.data.Dataset) else n


def batch_len(batch: Mapping[str, Tensor]) -> int:
    """The number of samples in a batch dict (the first dimension of its first tensor)."""
    for value in batch.values():
        if isinstance(value, Tensor) and value.dim() > 0:
            return value.shape[0]
    raise ValueError(f"cannot tell the batch size: no tensor in batch with keys {list(batch)}")


def check_modalities(model: nn.Module, data) -> None:
    """If the model declares ``modalities``, the data must provide each of them."""
    wanted = getattr(model, "modalities", None)
    if wanted is None or not isinstance(data, ModalDataset):
        return
    missing = [m for m in wanted if m not in data]
    if missing:
        raise KeyError(f"{type(model).__name__} expects modalities {list(wanted)}, but dataset "
                       f"{data.name!r} has {list(data.keys)} (missing {missing})")
