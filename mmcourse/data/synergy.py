"""Two toy datasets for how modalities interact: synergy (XOR) and competition.

**XOR-Synergy** (``load_xor``): the label lives only in the *interaction* of two modalities.

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

**Modality competition** (``load_competition``): one modality is quick to fit, the other slow but
reliable; naive joint training lets the quick one win and the slow one stay under-trained.
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


def load_competition(n_train: int = 500, n_val: int = 500, n_test: int = 2000, *, num_classes: int = 10,
                     dim1: int = 256, dim2: int = 64, reliability1: float = 0.7, snr2: float = 0.35,
                     seed: int = 0) -> Splits:
    """Modality competition: a quick-to-fit but unreliable modality beside a slow but reliable one.

    With class prototypes ``p1_c ∈ R^dim1`` and ``p2_c ∈ R^dim2`` (standard normal entries):

        x1 = p1_{c'} + ε1,   c' = y with probability ``reliability1``, else a uniformly random class,
        x2 = snr2 · p2_y + ε2,                                          ε ~ N(0, I).

    ``x1`` is high-dimensional and well separated: a network fits it (even memorises it) within a
    few steps, yet it shows the true class only ~``reliability1`` of the time. ``x2`` is always
    about the true class but faint, so it is learned slowly. The two are conditionally independent
    given ``y``, so together they beat either alone -- *if* joint training lets ``x2`` learn: this
    is the demonstration for ``mmcourse.robustness.OGMGE``.
    """
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if any(n < 1 for n in sizes.values()):
        raise ValueError(f"load_competition: split sizes must be >= 1, got {sizes}")
    if not 0.0 <= float(reliability1) <= 1.0:
        raise ValueError(f"load_competition: reliability1 must be in [0, 1], got {reliability1}")
    if int(num_classes) < 2:
        raise ValueError(f"load_competition: num_classes must be >= 2, got {num_classes}")
    gen = torch.Generator().manual_seed(int(seed))
    C = int(num_classes)
    p1 = torch.randn(C, int(dim1), generator=gen)
    p2 = torch.randn(C, int(dim2), generator=gen)
    splits = []
    for name, n in sizes.items():
        y = torch.randint(C, (n,), generator=gen)
        shown = torch.where(torch.rand(n, generator=gen) < float(reliability1), y,
                            torch.randint(C, (n,), generator=gen))
        x1 = p1[shown] + torch.randn(n, int(dim1), generator=gen)
        x2 = float(snr2) * p2[y] + torch.randn(n, int(dim2), generator=gen)
        splits.append(ModalDataset({"x1": x1, "x2": x2, "label": y}, name=name,
                                   meta={"x1_class": shown},
                                   shapes={"x1": "(dim1,) fast, unreliable", "x2": "(dim2,) slow, reliable",
                                           "label": "() class"}))
    info = {"title": "Modality competition (x1 quick but unreliable, x2 slow but reliable)",
            "seed": int(seed), "num_classes": C, "reliability1": float(reliability1), "snr2": float(snr2)}
    return Splits(*splits, info=info)
