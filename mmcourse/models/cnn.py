"""Convolutional encoders for images and spectrograms, built up from the dense layer.

A **dense layer** maps a vector ``x`` to

    y = f(Wx + b),          W: (out, in), b: (out,), f a non-linearity (ReLU here).

A **convolution** is the same dense layer applied to every k×k patch with shared weights: for
output channel ``o`` and position ``(i, j)``

    y[o, i, j] = f( Σ_{c, u, v} W[o, c, u, v] · x[c, i·s+u, j·s+v] + b[o] ).

Written as one matrix product: ``unfold`` cuts the (padded) input into its ``L`` patches, each
flattened to a column of length ``C·k·k``, giving ``X_col: (B, C·k·k, L)``; then
``Y = W_flat @ X_col + b`` with ``W_flat: (out, C·k·k)``, and ``Y`` is folded back to
``(B, out, H_out, W_out)``. ``conv2d_unfold`` does exactly this and equals ``F.conv2d``.

``ConvEncoder`` stacks two convolution layers (LeNet-style: conv → ReLU → max-pool, twice) and
a dense layer, turning a ``(B, C, H, W)`` image or log-mel spectrogram into a ``(B, out_dim)``
feature vector; ``ConvEncoder.grid`` keeps the spatial map as a sequence of ``H/4 · W/4``
region vectors for attention (captioning, cross-attention fusion).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import check_batch
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import check_float


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Dense(nn.Module):
    """``y = f(Wx + b)`` from scratch; the same parameters as ``nn.Linear`` (plus ``f``).

    ``activation`` is ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``None`` (identity).
    """

    ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, None: None}

    def __init__(self, in_features: int, out_features: int, activation: str | None = "relu"):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(self.ACTIVATIONS)}, got {activation!r}")
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Dense expects (..., {self.in_features}) inputs, got {tuple(x.shape)}"
            )
        check_float(x, "Dense", like=self.weight)
        y = x @ self.weight.T + self.bias  # Wx + b for every row x of the batch
        f = self.ACTIVATIONS[self.activation]
        return y if f is None else f(y)


def conv2d_unfold(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                  padding=0) -> Tensor:
    """2-D convolution as unfold + matmul; equals ``F.conv2d(x, weight, bias, stride, padding)``.

    ``x``: (B, C, H, W), ``weight``: (O, C, kh, kw), ``bias``: (O,) or None.
    """
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d_unfold expects x (B, C, H, W) and weight (O, C, kh, kw) with the same C, "
            f"got x {tuple(x.shape)} and weight {tuple(weight.shape)}"
        )
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    out_ch, _, kh, kw = weight.shape
    h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
    w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
    check_float(x, "conv2d_unfold (x)", like=weight)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit input {tuple(x.shape[2:])} with padding {padding}")
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (B, C·kh·kw, L)
    y = weight.reshape(out_ch, -1) @ cols                              # (B, O, L)
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(x.shape[0], out_ch, h_out, w_out)


class UnfoldConv2d(nn.Module):
    """``nn.Conv2d`` rebuilt on ``conv2d_unfold``: same parameters, same initialisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True):
        super().__init__()
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        self.stride, self.padding = _pair(stride), _pair(padding)

    def forward(self, x: Tensor) -> Tensor:
        return conv2d_unfold(x, self.weight, self.bias, self.stride, self.padding)


class ConvEncoder(nn.Module):
    """``(B, in_channels, H, W)`` → ``(B, out_dim)`` with two conv/ReLU/pool blocks and a
    dense layer (``out_dim=None``: no dense layer, only ``grid``). ``H`` and ``W`` are fixed at
    construction so that shape errors are caught with a clear message rather than deep inside a
    matmul."""

    def __init__(self, in_channels: int = 1, input_size: tuple[int, int] = (28, 28),
                 width: int = 32, out_dim: int | None = 128, dropout: float = 0.0):
        super().__init__()
        h, w = input_size
        if h < 4 or w < 4:
            raise ValueError(f"input_size must be at least (4, 4), got {input_size}")
        self.in_channels, self.input_size, self.out_dim = in_channels, (h, w), out_dim
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        # out_dim=None: a grid-only encoder (``grid()`` for attention), with no dense layer
        self.proj = None if out_dim is None else nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(2 * width * (h // 4) * (w // 4), out_dim), nn.ReLU(),
        )

    @property
    def grid_dim(self) -> int:
        """Channels of the feature map, i.e. the size of each region vector of ``grid``."""
        return self.features[3].out_channels

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(H/4, W/4)``: the spatial size of the feature map."""
        return self.input_size[0] // 4, self.input_size[1] // 4

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.input_size):
            raise ValueError(
                f"ConvEncoder expects (batch, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        check_float(x, "ConvEncoder", like=self.features[0].weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.proj is None:
            raise ValueError("this ConvEncoder was built with out_dim=None: use .grid(x) for its regions")
        return self.proj(self.features(x))

    def grid(self, x: Tensor) -> Tensor:
        """The feature map as a sequence of regions: ``(B, H/4 · W/4, grid_dim)``, row-major."""
        self._check(x)
        return self.features(x).flatten(2).transpose(1, 2)


def image_encoder(in_channels: int = 1, image_size: int = 28, out_dim: int = 64, width: int = 16,
                  dropout: float = 0.25) -> ConvEncoder:
    """A LeNet-like encoder for ``(B, in_channels, image_size, image_size)`` images."""
    return ConvEncoder(in_channels, (image_size, image_size), width=width, out_dim=out_dim,
                       dropout=dropout)


def spectrogram_encoder(n_mels: int = 32, n_frames: int = 32, out_dim: int = 64, width: int = 16,
                        dropout: float = 0.25) -> ConvEncoder:
    """The same LeNet-like encoder for a ``(B, 1, n_mels, n_frames)`` log-mel spectrogram: the
    kernels slide over frequency *and* time, so a formant that shifts a few frames still fires."""
    return ConvEncoder(1, (n_mels, n_frames), width=width, out_dim=out_dim, dropout=dropout)


class UnimodalClassifier(nn.Module):
    """Scores ``s(y, x) = w_y · g(x) + b_y`` from one modality ``batch[key]`` of a batch dict.

    ``encoder`` maps the modality to features of size ``encoder.out_dim``.
    """

    def __init__(self, encoder: nn.Module, key: str, num_classes: int = 10):
        super().__init__()
        self.encoder, self.key = encoder, key
        self.modalities = (key,)
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        if isinstance(batch, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__} takes a batch dict with key {self.key!r}, got a tensor; "
                f"call it as model({{{self.key!r}: x}})"
            )
        if self.key not in batch:
            check_batch(batch, {self.key: ()}, type(self).__name__)
        return ModelOutput(logits=self.head(self.encoder(batch[self.key])))
