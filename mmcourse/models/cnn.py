"""Convolutional encoders for images and spectrograms.

A convolution layer computes, for every output channel ``o`` and position ``(i, j)``,

    y[o, i, j] = f( Σ_{c, u, v} W[o, c, u, v] · x[c, i+u, j+v] + b[o] ),

i.e. the dense layer ``y = f(Wx + b)`` applied to every k×k patch with shared weights.
``ConvEncoder`` stacks two such layers (LeNet-style: conv → ReLU → max-pool, twice) and a
dense layer, turning a ``(B, C, H, W)`` image or log-mel spectrogram into a ``(B, out_dim)``
feature vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.data.base import check_batch


class ConvEncoder(nn.Module):
    """``(B, in_channels, H, W)`` → ``(B, out_dim)`` with two conv/ReLU/pool blocks and a
    dense layer. ``H`` and ``W`` are fixed at construction so that shape errors are caught with
    a clear message rather than deep inside a matmul."""

    def __init__(self, in_channels: int = 1, input_size: tuple[int, int] = (28, 28),
                 width: int = 32, out_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        h, w = input_size
        if h < 4 or w < 4:
            raise ValueError(f"input_size must be at least (4, 4), got {input_size}")
        self.in_channels, self.input_size, self.out_dim = in_channels, (h, w), out_dim
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.proj = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(2 * width * (h // 4) * (w // 4), out_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.input_size):
            raise ValueError(
                f"ConvEncoder expects (batch, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        return self.proj(self.features(x))


class UnimodalClassifier(nn.Module):
    """Scores ``s(y, x) = w_y · g(x) + b_y`` from one modality ``batch[key]`` of a batch dict.

    ``encoder`` maps the modality to features of size ``encoder.out_dim``.
    """

    def __init__(self, encoder: nn.Module, key: str, num_classes: int = 10):
        super().__init__()
        self.encoder, self.key = encoder, key
        self.modalities = (key,)
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        if isinstance(batch, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__} takes a batch dict with key {self.key!r}, got a tensor; "
                f"call it as model({{{self.key!r}: x}})"
            )
        if self.key not in batch:
            check_batch(batch, {self.key: ()}, type(self).__name__)
        return self.head(self.encoder(batch[self.key]))
