"""Latent pairs: (image, text) feature pairs that share a latent cause -- a toy for dual encoders.

A pair is one latent ``z ~ N(0, I_8)`` seen through two fixed linear maps, each with its own
noise:

    x_image = z A + σ ε,    x_text = z B + σ ε',    A ∈ R^{8×16},  B ∈ R^{8×12},

with ``A`` and ``B`` drawn once from fixed seeds (the same for every call) and ``ε, ε'`` standard
normal. Pair ``i`` matches pair ``i`` and no other, so a dual encoder trained with InfoNCE can
be scored by Recall@K in both directions; with ``σ = 1`` the noise is as large as the signal and
even a perfect encoder stays below R@1 = 1 on a few hundred pairs (exercise 07).
"""

from __future__ import annotations

import torch

LATENT, IMAGE, TEXT = 8, 16, 12      # dimensions of z, of the image and of the text features


def _maps() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed maps ``A (8, 16)`` and ``B (8, 12)``."""
    return (torch.randn(LATENT, IMAGE, generator=torch.Generator().manual_seed(1234)),
            torch.randn(LATENT, TEXT, generator=torch.Generator().manual_seed(4321)))


def make_pairs(n: int, seed: int, noise: float = 1.0):
    """``n`` matching (image, text) feature pairs: a shared latent ``z ~ N(0, I_8)`` seen through
    two fixed linear maps (16 image and 12 text features) plus noise. Returns ``(images (n, 16),
    texts (n, 12))``, float32; the same ``seed`` gives the same pairs."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"make_pairs: n must be an int >= 1, got {n!r}")
    if not float(noise) >= 0:
        raise ValueError(f"make_pairs: noise must be >= 0, got {noise!r}")
    g = torch.Generator().manual_seed(int(seed))
    to_image, to_text = _maps()
    z = torch.randn(n, LATENT, generator=g)
    return (z @ to_image + noise * torch.randn(n, IMAGE, generator=g),
            z @ to_text + noise * torch.randn(n, TEXT, generator=g))
