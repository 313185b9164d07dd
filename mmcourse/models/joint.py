"""The joint classifier: every fusion model's interface.

A joint classifier reads a batch dict of modality tensors ``{"image": x1, "audio": x2, ...}`` and
returns a ``ModelOutput`` whose ``logits`` are the scores ``s(y, x1, x2, ...)`` of every class
``y`` ``(B, C)``, from which

    P(y | x1, x2) = softmax_y s(y, x1, x2) = exp s(y, x1, x2) / Σ_y' exp s(y', x1, x2).

A modality may be absent: its value is ``None`` (absent for the whole batch), or a boolean
``batch[m + "_mask"]`` ``(B,)`` marks where it is present; ``present`` turns either into 1/0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmcourse.tensors import model_device

Batch = Mapping[str, Tensor | None]


class JointClassifier(nn.Module):
    """Base of every fusion: ``forward(batch)`` returns a ``ModelOutput`` whose ``logits`` are the
    scores ``s(y, x1, x2, ...)``.

    ``modalities``: the batch keys the model reads; ``num_classes``: C.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int):
        super().__init__()
        if not modalities:
            raise ValueError("a fusion model needs at least one modality")
        self.modalities, self.num_classes = tuple(modalities), num_classes

    # -- P(y | x1, x2) ---------------------------------------------------------------------
    def scores(self, batch: Batch) -> Tensor:
        """``s(y, x1, x2, ...)``: ``(B, C)`` unnormalised scores (``self(batch).logits``)."""
        return self(batch).logits

    @torch.no_grad()
    def probabilities(self, batch: Batch, temperature: float = 1.0) -> Tensor:
        """``P(y | x1, x2, ...) = softmax(s / T)``, ``(B, C)``; ``T`` is a calibration temperature."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return torch.softmax(self.scores(batch).float() / temperature, dim=-1)

    # -- batches with absent modalities -----------------------------------------------------
    def _check(self, batch: Batch) -> int:
        """Validate the batch; return its size."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"{type(self).__name__} takes a batch dict with keys {list(self.modalities)}, "
                f"got {type(batch).__name__}"
            )
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise KeyError(
                f"{type(self).__name__} expects modalities {list(self.modalities)}; the batch has "
                f"{list(batch)} (missing {missing}; pass None for a modality that is absent)"
            )
        sizes = {m: len(batch[m]) for m in self.modalities if batch[m] is not None}
        if not sizes:
            for value in batch.values():
                if isinstance(value, Tensor) and value.dim() > 0:
                    return len(value)
            raise ValueError(
                f"every modality of {list(self.modalities)} is None and the batch has no other "
                "tensor to tell its size"
            )
        if len(set(sizes.values())) > 1:
            raise ValueError(f"modalities have different batch sizes: {sizes}")
        return next(iter(sizes.values()))

    def present(self, batch: Batch, m: str, size: int, device) -> Tensor:
        """``(B,)`` float 1/0: where modality ``m`` is present in the batch."""
        if batch[m] is None:
            return torch.zeros(size, device=device)
        mask = batch.get(f"{m}_mask")
        if mask is None:
            return torch.ones(size, device=device)
        if mask.shape != (size,):
            raise ValueError(f"{m}_mask should have shape ({size},), got {tuple(mask.shape)}")
        return mask.to(device=device, dtype=torch.float32)

    def _device(self):
        return model_device(self)


def classifier_head(in_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.25) -> nn.Sequential:
    """``h(z) = W_2 ReLU(W_1 dropout(z) + b_1) + b_2``: the head every fusion puts on its features."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
