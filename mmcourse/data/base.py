"""The container every course dataset uses: a split is a dict of equal-length tensors.

A sample is ``{modality: tensor}`` -- e.g. ``{"image": (1, 28, 28), "audio": (1, 32, 32),
"text": (L,), "label": ()}`` -- and a batch is the same dict with a leading batch dimension.
Keeping whole splits as tensors lets ``fit()`` move a split to the GPU once and slice batches
from it, instead of collating Python objects every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


class ModalDataset(torch.utils.data.Dataset):
    """One split of a multimodal dataset.

    ``tensors`` maps a modality name to a tensor whose first dimension indexes samples; all must
    have the same length. ``meta`` holds per-sample Python values that are not tensors (caption
    strings, voice names), each a list of the same length. ``shapes`` documents the per-sample
    shape of each modality (with symbolic names where useful) for ``describe()``.
    """

    def __init__(
        self,
        tensors: Mapping[str, Tensor],
        *,
        name: str = "split",
        meta: Mapping[str, Sequence] | None = None,
        shapes: Mapping[str, str] | None = None,
    ):
        if not tensors:
            raise ValueError("a ModalDataset needs at least one tensor, got an empty mapping")
        lengths = {}
        for key, value in tensors.items():
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"modality {key!r} must be a torch.Tensor, got {type(value).__name__}"
                )
            if value.dim() == 0:
                raise ValueError(f"modality {key!r} must have a sample dimension, got a scalar")
            lengths[key] = len(value)
        meta = dict(meta or {})
        lengths.update({f"meta:{k}": len(v) for k, v in meta.items()})
        if len(set(lengths.values())) != 1:
            raise ValueError(f"all modalities must have the same number of samples, got {lengths}")
        self.tensors = dict(tensors)
        self.meta = meta
        self.name = name
        self.shapes = dict(shapes or {})

    # -- the Dataset protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index) -> dict[str, Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}

    # -- conveniences ---------------------------------------------------------------------
    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.tensors)

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.tensors.items())
        return f"ModalDataset({self.name!r}, n={len(self)}, {parts})"

    def to(self, device, non_blocking: bool = False) -> ModalDataset:
        """The same split with every tensor on ``device`` (no copy if already there)."""
        moved = {k: v.to(device, non_blocking=non_blocking) for k, v in self.tensors.items()}
        return ModalDataset(moved, name=self.name, meta=self.meta, shapes=self.shapes)

    def select(self, keys: Sequence[str]) -> ModalDataset:
        """Only the given modalities (e.g. ``["image", "label"]`` for a unimodal model)."""
        missing = [k for k in keys if k not in self.tensors]
        if missing:
            raise KeyError(
                f"{self.name}: unknown modality {missing}; this dataset has {list(self.tensors)}"
            )
        return ModalDataset(
            {k: self.tensors[k] for k in keys},
            name=self.name,
            meta=self.meta,
            shapes={k: v for k, v in self.shapes.items() if k in keys},
        )

    def subset(self, index) -> ModalDataset:
        """The samples at ``index`` (an index tensor, list or slice), meta included."""
        if isinstance(index, slice):
            positions = range(len(self))[index]
            tensor_index = index
        else:
            tensor_index = torch.as_tensor(index, dtype=torch.long)
            positions = tensor_index.tolist()
        meta = {k: v[tensor_index] if isinstance(v, Tensor) else [v[i] for i in positions]
                for k, v in self.meta.items()}
        return ModalDataset(
            {k: v[tensor_index] for k, v in self.tensors.items()},
            name=self.name,
            meta=meta,
            shapes=self.shapes,
        )

    def describe(self) -> str:
        """A short text summary: size and, per modality, shape, dtype and value range."""
        lines = [f"{self.name}: {len(self)} samples"]
        for key, value in self.tensors.items():
            doc = self.shapes.get(key, "")
            if value.is_floating_point():
                stats = f"range [{value.min().item():.3g}, {value.max().item():.3g}]"
            elif value.dim() == 1:
                stats = f"{int(value.unique().numel())} distinct values"
            else:
                stats = f"max {int(value.max().item())}"
            doc = f"  {doc}" if doc else ""
            shape = tuple(value.shape[1:])
            lines.append(f"  {key:<8} {str(shape):<14} {str(value.dtype):<14} {stats}{doc}")
        return "\n".join(lines)


@dataclass
class Splits:
    """train / val / test splits of one dataset, plus dataset-level information."""

    train: ModalDataset
    val: ModalDataset
    test: ModalDataset
    info: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train, self.val, self.test))

    def describe(self) -> str:
        header = self.info.get("title", "dataset")
        extra = [f"  {k}: {v}" for k, v in self.info.items() if k != "title"]
        return "\n".join([header, *extra, *(s.describe() for s in self)])


def check_batch(batch: Mapping[str, Tensor], expected: Mapping[str, tuple], where: str) -> None:
    """Raise a clear error unless ``batch`` has each expected modality with the expected shape.

    ``expected`` maps a modality to its per-sample shape; ``None`` in a shape matches any size
    (e.g. ``{"text": (None,)}`` for variable-length token ids).
    """
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"{where} expects a batch dict of modality tensors with keys {list(expected)}, "
            f"got {type(batch).__name__}"
        )
    for key, shape in expected.items():
        if key not in batch:
            raise KeyError(
                f"{where} expects modality {key!r}; the batch has {list(batch)} "
                f"(expected keys: {list(expected)})"
            )
        value = batch[key]
        got = tuple(value.shape[1:])
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            want = tuple("*" if e is None else e for e in shape)
            raise ValueError(
                f"{where}: modality {key!r} should have shape (batch, {', '.join(map(str, want))})"
                f", got {tuple(value.shape)}"
            )
