"""Feature encoders ``g_m``: one per modality, chosen from the shape of its data.

    (B, C, H, W) float images or spectrograms  →  ConvEncoder      (two conv/ReLU/pool + dense)
    (B, L) int64 token ids                     →  BagOfWords       g(x) = mean_t E[x_t], then dense
    (B, F) float vectors                       →  VectorEncoder    g(x) = ReLU(Wx + b)

Every unimodal baseline and every fusion strategy builds its encoders here, so comparisons are
on equal terms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.models.bow import BagOfWords
from mmcourse.models.cnn import ConvEncoder
from mmcourse.tensors import check_float


class VectorEncoder(nn.Module):
    """``(B, F)`` float features → ``(B, out_dim)``: ``g(x) = ReLU(Wx + b)``."""

    def __init__(self, in_features: int, out_dim: int = 64):
        super().__init__()
        self.in_features, self.out_dim = in_features, out_dim
        self.net = nn.Sequential(nn.Linear(in_features, out_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"VectorEncoder expects (batch, {self.in_features}), got {tuple(x.shape)}")
        check_float(x, "VectorEncoder", like=self.net[0].weight)
        return self.net(x)


def encoder_for(example: Tensor, dim: int = 64, *, vocab_size: int | None = None, width: int = 16,
                dropout: float = 0.25) -> nn.Module:
    """A feature encoder ``g_m`` for a modality whose batch looks like ``example``:

    ``(B, C, H, W)`` float → ``ConvEncoder``; ``(B, L)`` int64 token ids → ``BagOfWords``
    (needs ``vocab_size``); ``(B, F)`` float → ``VectorEncoder``. Output ``(B, dim)``.
    """
    if example.dim() == 4 and example.is_floating_point():
        _, c, h, w = example.shape
        return ConvEncoder(c, (h, w), width=width, out_dim=dim, dropout=dropout)
    if example.dim() == 2 and example.dtype == torch.long:
        if vocab_size is None:
            raise ValueError("a token-id modality needs vocab_size to build its encoder")
        return BagOfWords(vocab_size, dim=32, out_dim=dim)
    if example.dim() == 2 and example.is_floating_point():
        return VectorEncoder(example.shape[1], dim)
    raise ValueError(
        f"no encoder for a modality of shape {tuple(example.shape)} {example.dtype}; expected "
        "(B, C, H, W) float images, (B, L) int64 tokens or (B, F) float vectors"
    )
