"""Noise on demand: perturb the values of one modality, or the labels, at a chosen level.

With ``x`` a sample of modality ``m``, ``y`` its label and ``ε ~ N(0, I)``:

* images (any float modality): ``gaussian_noise`` ``x' = x + σε``; ``salt_and_pepper`` sets a
  random ``fraction`` of the values to the split's min or max (half each); ``occlusion`` sets a
  random ``k×k`` square of each image to the split's min;
* audio (any signal): ``noise_at_snr`` ``x' = x + √P_ε · ε`` with ``P_x = Var(x)`` the sample's
  power and ``P_ε = P_x / 10^(SNR/10)``, so ``10 log10(P_x / P_ε) = SNR`` dB;
* text (token ids): ``token_dropout`` deletes each word with probability ``p``;
  ``token_substitution`` replaces it by a uniformly random word;
* labels: ``label_noise`` moves ``y`` to a different class, uniformly, with probability ``p``
  (``y' = (y + o) mod C``, ``o ~ U{1, ..., C−1}``); ``meta["clean_label"]`` keeps ``y``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality._split import _check_data, _check_modality, _check_prob, _generator, _replace

__all__ = ["gaussian_noise", "label_noise", "noise_at_snr", "occlusion", "salt_and_pepper", "token_dropout",
           "token_substitution"]


def gaussian_noise(data: ModalDataset, std: float, *, modality: str = "image", seed: int = 0) -> ModalDataset:
    """``x + σ ε`` with ``ε ~ N(0, I)``, ``σ = std`` (in the modality's own units)."""
    data = _check_data(data, "gaussian_noise")
    x = _check_modality(data, modality, "gaussian_noise", floating=True)
    if float(std) < 0:
        raise ValueError(f"gaussian_noise: std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=_generator(seed), dtype=x.dtype)
    return _replace(data, {modality: x + float(std) * noise})


def salt_and_pepper(data: ModalDataset, fraction: float, *, modality: str = "image",
                    seed: int = 0) -> ModalDataset:
    """Set a random ``fraction`` of the values to the split's minimum or maximum (half each)."""
    data = _check_data(data, "salt_and_pepper")
    x = _check_modality(data, modality, "salt_and_pepper", floating=True)
    fraction = _check_prob(fraction, "fraction", "salt_and_pepper")
    gen = _generator(seed)
    hit = torch.rand(x.shape, generator=gen) < fraction
    salt = torch.rand(x.shape, generator=gen) < 0.5
    low, high = x.min(), x.max()
    out = torch.where(hit & salt, high, torch.where(hit & ~salt, low, x))
    return _replace(data, {modality: out})


def occlusion(data: ModalDataset, size: int, *, modality: str = "image", seed: int = 0) -> ModalDataset:
    """Blank a ``size × size`` square at a random place in each image (set to the split's min)."""
    data = _check_data(data, "occlusion")
    x = _check_modality(data, modality, "occlusion", floating=True)
    if x.dim() != 4:
        raise ValueError(f"occlusion needs images (N, C, H, W); {modality!r} is {tuple(x.shape)}")
    size = int(size)
    H, W = x.shape[-2:]
    if not 0 <= size <= min(H, W):
        raise ValueError(f"occlusion: size must be in [0, {min(H, W)}], got {size}")
    if size == 0:
        return _replace(data, {modality: x.clone()})
    gen = _generator(seed)
    top = torch.randint(H - size + 1, (len(x),), generator=gen)
    left = torch.randint(W - size + 1, (len(x),), generator=gen)
    rows, cols = torch.arange(H), torch.arange(W)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + size)       # (N, H)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + size)     # (N, W)
    square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                     # (N, 1, H, W)
    return _replace(data, {modality: torch.where(square, x.min(), x)})


def noise_at_snr(data: ModalDataset, snr_db: float, *, modality: str = "audio",
                 seed: int = 0) -> ModalDataset:
    """Additive Gaussian noise at a signal-to-noise ratio of ``snr_db`` decibels, per sample:

    ``P_x = Var(x)`` over the sample's values, ``P_ε = P_x / 10^(SNR/10)``, ``x' = x + √P_ε · ε``.
    0 dB means noise as strong as the signal; lower is noisier.
    """
    data = _check_data(data, "noise_at_snr")
    x = _check_modality(data, modality, "noise_at_snr", floating=True)
    snr_db = float(snr_db)
    if snr_db != snr_db or snr_db == float("inf"):
        raise ValueError(f"noise_at_snr: snr_db must be a finite number, got {snr_db}")
    dims = tuple(range(1, x.dim()))
    power = x.var(dim=dims, keepdim=True, unbiased=False) if dims else x.var().expand_as(x)
    noise = torch.randn(x.shape, generator=_generator(seed), dtype=x.dtype)
    return _replace(data, {modality: x + (power / 10 ** (snr_db / 10)).sqrt() * noise})


def _real_tokens(ids: Tensor, first_word: int) -> Tensor:
    return ids >= first_word


def token_dropout(data: ModalDataset, p: float, *, modality: str = "text", seed: int = 0,
                  first_word: int = 4) -> ModalDataset:
    """Delete each word token with probability ``p``; the survivors move left, padding (id 0)
    fills the end. Ids below ``first_word`` (the special tokens) are never touched."""
    data = _check_data(data, "token_dropout")
    ids = _check_modality(data, modality, "token_dropout", floating=False)
    p = _check_prob(p, "p", "token_dropout")
    if ids.dim() != 2:
        raise ValueError(f"token_dropout needs (N, L) token ids; {modality!r} is {tuple(ids.shape)}")
    keep = ~(_real_tokens(ids, first_word) & (torch.rand(ids.shape, generator=_generator(seed)) < p))
    keep &= ids != 0
    # stable left-compaction: sort positions so kept tokens come first, in their order
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    out = torch.where(keep, ids, torch.zeros_like(ids)).gather(1, order)
    return _replace(data, {modality: out})


def token_substitution(data: ModalDataset, p: float, *, vocab_size: int, modality: str = "text",
                       seed: int = 0, first_word: int = 4) -> ModalDataset:
    """Replace each word token with probability ``p`` by a uniformly random word id in
    ``[first_word, vocab_size)`` (specials and padding are never touched)."""
    data = _check_data(data, "token_substitution")
    ids = _check_modality(data, modality, "token_substitution", floating=False)
    p = _check_prob(p, "p", "token_substitution")
    if int(vocab_size) <= first_word:
        raise ValueError(f"token_substitution: vocab_size must exceed {first_word}, got {vocab_size}")
    gen = _generator(seed)
    hit = _real_tokens(ids, first_word) & (torch.rand(ids.shape, generator=gen) < p)
    random_words = torch.randint(first_word, int(vocab_size), ids.shape, generator=gen)
    return _replace(data, {modality: torch.where(hit, random_words, ids)})


def label_noise(data: ModalDataset, p: float, *, num_classes: int | None = None, target: str = "label",
                seed: int = 0) -> ModalDataset:
    """With probability ``p`` replace ``y`` by a *different* class drawn uniformly (symmetric label
    noise). ``meta["clean_label"]`` keeps the true labels."""
    data = _check_data(data, "label_noise")
    p = _check_prob(p, "p", "label_noise")
    if target not in data:
        raise KeyError(f"label_noise: the split has no {target!r}; it has {list(data.keys)}")
    y = data.tensors[target]
    C = int(num_classes or int(y.max()) + 1)
    if C < 2:
        raise ValueError(f"label_noise needs at least 2 classes, got {C}")
    gen = _generator(seed)
    flip = torch.rand(len(y), generator=gen) < p
    offset = torch.randint(1, C, y.shape, generator=gen)         # 1..C-1: never the same class
    noisy = torch.where(flip, (y + offset) % C, y)
    return _replace(data, {target: noisy}, meta={"clean_label": y.clone()})
