"""Asymmetric modalities on demand: one modality with fewer samples, another range, size or dimension.

With ``x`` a sample of modality ``m``:

* ``fewer_samples``: only ``round(N / factor)`` samples (at random) have ``m`` (a presence mask),
  e.g. ``factor=10`` for a modality with 10× fewer samples than the others;
* ``rescale``: ``x' = a·x + b``, another value range (raw 0..255 pixels beside unit-variance audio);
* ``resize``: bilinear resampling of ``(N, C, H, W)`` images to another ``H' × W'``;
* ``random_projection``: ``x' = R vec(x)`` with a fixed Gaussian ``R ∈ R^(dim × D)``,
  ``R_ij ~ N(0, 1/D)``: another feature dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import _check_data, _check_modality, _generator, _replace, _with_mask

__all__ = ["fewer_samples", "random_projection", "rescale", "resize"]


def fewer_samples(data: ModalDataset, factor: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Only ``round(N / factor)`` samples (chosen at random) have ``modality``: e.g. ``factor=10``
    for a modality with 10× fewer samples than the others. Expressed as a presence mask."""
    data = _check_data(data, "fewer_samples")
    _check_modality(data, modality, "fewer_samples")
    if float(factor) < 1:
        raise ValueError(f"fewer_samples: factor must be >= 1, got {factor}")
    n = len(data)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=_generator(seed))[: max(1, round(n / float(factor)))]] = True
    return _with_mask(data, modality, keep)


def rescale(data: ModalDataset, scale: float, *, modality: str, shift: float = 0.0) -> ModalDataset:
    """``a·x + b``: the modality on another value range (e.g. raw 0..255 pixels beside unit-variance
    audio). ``seed`` is not needed: the corruption is deterministic."""
    data = _check_data(data, "rescale")
    x = _check_modality(data, modality, "rescale", floating=True)
    return _replace(data, {modality: x * float(scale) + float(shift)})


def resize(data: ModalDataset, size: int | tuple[int, int], *, modality: str = "image") -> ModalDataset:
    """Bilinear resampling of images ``(N, C, H, W)`` to ``size`` (another resolution)."""
    data = _check_data(data, "resize")
    x = _check_modality(data, modality, "resize", floating=True)
    if x.dim() != 4:
        raise ValueError(f"resize needs images (N, C, H, W); {modality!r} is {tuple(x.shape)}")
    size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return _replace(data, {modality: out}, shapes={modality: f"{tuple(out.shape[1:])} resized"})


def random_projection(data: ModalDataset, dim: int, *, modality: str, seed: int = 0) -> ModalDataset:
    """``x ↦ R vec(x)`` with a fixed Gaussian ``R ∈ R^(dim × D)``, ``R_ij ~ N(0, 1/D)``: the modality
    becomes a ``(N, dim)`` vector of another dimension (same ``R`` for every split with one seed)."""
    data = _check_data(data, "random_projection")
    x = _check_modality(data, modality, "random_projection", floating=True)
    if int(dim) < 1:
        raise ValueError(f"random_projection: dim must be >= 1, got {dim}")
    flat = x.reshape(len(x), -1)
    R = torch.randn(int(dim), flat.shape[1], generator=_generator(seed), dtype=x.dtype) / flat.shape[1] ** 0.5
    return _replace(data, {modality: flat @ R.T}, shapes={modality: f"({int(dim)},) random projection"})
