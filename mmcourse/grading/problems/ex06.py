"""Exercise 06 (fusion): late fusion with missing modalities, tensor fusion, and an experiment
comparing early, late and tensor fusion on XOR-Synergy (a label neither modality carries alone)."""


from __future__ import annotations

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded


def _late_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        nothing = torch.tensor([[True, False, True], [False, False, True]])   # sample 1: nothing present
        return [(randn(g, 2, 3, 4), torch.ones(2, 3, dtype=torch.bool)),
                (randn(g, 2, 2, 3), torch.tensor([[True, False], [True, True]])),
                (randn(g, 2, 3, 2), nothing)]
    cases = []
    for m, b, c in [(3, 5, 4), (2, 6, 10), (4, 3, 2)]:
        present = torch.rand(m, b, generator=g) > 0.35
        cases.append((randn(g, m, b, c), present))
    absent = torch.ones(2, 4, dtype=torch.bool)
    absent[:, 2] = False                                                      # nothing present
    cases.append((randn(g, 2, 4, 3), absent))
    cases.append((randn(g, 1, 3, 5), torch.ones(1, 3, dtype=torch.bool)))
    return cases


def _tensor_fusion_ref(features):
    """``vec([f_1; 1] ⊗ [f_2; 1] ⊗ ... ⊗ [f_M; 1])`` per sample, modality 1 the outermost index."""
    out = None
    for f in features:
        z = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], dim=1)
        out = z if out is None else (out[:, :, None] * z[:, None, :]).flatten(1)
    return out


def _tensor_cases(g: torch.Generator, public: bool) -> Cases:
    dims = [([2, 3], 2), ([1, 2, 2], 3)] if public else [([3], 2), ([4, 2], 5), ([2, 3, 2], 2),
                                                         ([5, 5], 1), ([1, 1, 1, 2], 3)]
    return [([randn(g, b, d) for d in ds],) for ds, b in dims]


@single_threaded
def fusion_experiment(seed: int) -> dict:
    """The reference of q3 (the protocol the master states)."""
    from mmcourse.data import load_xor
    from mmcourse.models import make_fusion
    from mmcourse.train import evaluate, fit

    data = load_xor(n_train=512, n_val=200, n_test=1000, seed=seed)
    out = {}
    for strategy in ("early", "late", "tensor"):
        model = make_fusion(strategy, data, dim=16, seed=seed)
        fit(model, data.train, epochs=8, lr=1e-2, batch_size=64, seed=seed, progress=False)
        out[strategy] = float(evaluate(model, data.test)["accuracy"])
    return out


def _fusion_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


EX06 = Exercise("06_fusion_strategies", "Late fusion, tensor fusion, and when fusion must be early", (
    Part("q1", "late_fusion", 5, ref.late_fusion, _late_cases, forbidden=("LateFusion",),
         hint="average the logits of the present modalities only: Σ_m p_m s_m / max(Σ_m p_m, 1) -- a "
              "sample with nothing present gets zeros, not 0/0 = NaN"),
    Part("q2", "tensor_fusion", 5, _tensor_fusion_ref, _tensor_cases, forbidden=("TensorFusion",),
         hint="append a 1 to every modality's features, then take the outer product modality by "
              "modality, flattening as you go: (B, a) x (B, b) -> (B, a·b), modality 1 outermost"),
    Part("q3", "fusion_experiment", 8, fusion_experiment, _fusion_cases, atol=0.05, rtol=0.0,
         case_timeout=30.0,
         hint="make_fusion(strategy, data, dim=16, seed=seed), fit(..., epochs=8, lr=1e-2, "
              "batch_size=64, seed=seed, progress=False), evaluate(model, data.test)['accuracy']"),
))
