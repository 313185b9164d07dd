"""XOR-Synergy: a two-modality dataset whose label lives only in the *interaction*.

Each sample draws two independent fair bits ``a, b ∈ {0, 1}``; modality ``x1`` carries ``a`` and
``x2`` carries ``b``, and the label is their exclusive or:

    x1 = (2a − 1) μ1 + σ ε1,    x2 = (2b − 1) μ2 + σ ε2,    y = a ⊕ b,

with ``μ_m`` a random direction of norm 1 in ``R^dim`` and ``ε_m ~ N(0, I)``. Because ``a`` and
``b`` are independent fair coins, ``P(y | x1) = P(y | x2) = 1/2``: each modality alone is at
chance, and so is any model that adds up per-modality evidence, ``s(y) = f1(x1)_y + f2(x2)_y``
(late fusion). Only a model that multiplies or jointly transforms the two (early fusion's MLP
on ``[g1; g2]``, tensor fusion's ``g1 ⊗ g2``) can reach the Bayes accuracy

    acc* = q² + (1 − q)²,    q = Φ(1/σ)  (the accuracy of reading one bit),

which ``info["bayes_accuracy"]`` reports. The interaction information is the whole bit:
``I(x1; x2; y) = I(x1, x2; y) − I(x1; y) − I(x2; y) > 0`` -- pure synergy.
"""

from __future__ import annotations

import math

import torch

from mmcourse.data.base import ModalDataset, Splits

SHAPES = {
    "x1": "(dim,) float, carries bit a",
    "x2": "(dim,) float, carries bit b",
    "label": "() a XOR b",
}


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def load_xor(n_train: int = 2000, n_val: int = 500, n_test: int = 1000, *, dim: int = 8,
             noise: float = 0.3, seed: int = 0) -> Splits:
    """XOR-Synergy train / val / test splits of ``ModalDataset(x1 (N, dim), x2 (N, dim), label (N,))``.

    ``noise`` is ``σ``: the larger it is, the less reliably each modality shows its bit. The
    ``meta`` of each split holds the bits ``a`` and ``b``.
    """
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if any(n < 1 for n in sizes.values()):
        raise ValueError(f"load_xor: split sizes must be >= 1, got {sizes}")
    if int(dim) < 1:
        raise ValueError(f"load_xor: dim must be >= 1, got {dim}")
    if not float(noise) > 0:
        raise ValueError(f"load_xor: noise must be > 0, got {noise}")
    gen = torch.Generator().manual_seed(int(seed))
    mu = torch.randn(2, int(dim), generator=gen)
    mu = mu / mu.norm(dim=1, keepdim=True)
    splits = []
    for name, n in sizes.items():
        bits = torch.randint(0, 2, (n, 2), generator=gen)
        sign = (2 * bits - 1).float()
        x1 = sign[:, :1] * mu[0] + float(noise) * torch.randn(n, int(dim), generator=gen)
        x2 = sign[:, 1:] * mu[1] + float(noise) * torch.randn(n, int(dim), generator=gen)
        y = bits[:, 0] ^ bits[:, 1]
        splits.append(ModalDataset({"x1": x1, "x2": x2, "label": y}, name=name,
                                   meta={"a": bits[:, 0], "b": bits[:, 1]}, shapes=SHAPES))
    q = _phi(1.0 / float(noise))
    info = {
        "title": "XOR-Synergy (label = bit in x1 XOR bit in x2)",
        "seed": int(seed),
        "dim": int(dim),
        "noise": float(noise),
        "unimodal_bayes_accuracy": 0.5,
        "bayes_accuracy": round(q * q + (1 - q) * (1 - q), 4),
    }
    return Splits(*splits, info=info)
