"""The Part I capstone: choose a fusion method from measurements and make it robust to a
corrupted modality, on the modality-competition data (two modalities, ten classes)."""


from __future__ import annotations

import torch

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, single_threaded

STRATEGIES = ("early", "late", "gated")


def _data(seed: int):
    from mmcourse.data.quality.missing import remove_modality
    from mmcourse.data.quality.noise import gaussian_noise
    from mmcourse.data.synergy import load_competition

    data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)
    return (data, gaussian_noise(data.test, 3.0, modality="x1", seed=seed),
            remove_modality(data.test, modality="x1"))


@single_threaded
def fusion_study(seed: int) -> dict:
    """The reference of c1 (the protocol the master states)."""
    from mmcourse.models import count_parameters, make_fusion
    from mmcourse.train import evaluate, fit

    data, corrupted, _ = _data(seed)
    out = {}
    for strategy in STRATEGIES:
        model = make_fusion(strategy, data, dim=32, seed=seed)
        fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)
        out[strategy] = {"clean": float(evaluate(model, data.test)["accuracy"]),
                         "corrupted": float(evaluate(model, corrupted)["accuracy"]),
                         "parameters": count_parameters(model)}
    return out


@single_threaded
def robust_fusion(seed: int, strategy: str) -> dict:
    """The reference of c2 (the protocol the master states)."""
    from mmcourse.models import make_fusion
    from mmcourse.robustness.missing import ModalityDropout
    from mmcourse.train import evaluate, fit

    data, corrupted, missing = _data(seed)
    model = ModalityDropout(make_fusion(strategy, data, dim=32, seed=seed), p=0.3)
    fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)
    return {"clean": float(evaluate(model, data.test)["accuracy"]),
            "corrupted": float(evaluate(model, corrupted)["accuracy"]),
            "missing_x1": float(evaluate(model, missing)["accuracy"])}


def _study_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


def _robust_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(0, "gated")]
    return [(randint(g, 1, 2**30), strategy) for strategy in STRATEGIES]


CAPSTONE = Exercise("capstone", "Capstone: choose a fusion, survive a corrupted modality", (
    Part("c1", "fusion_study", 8, fusion_study, _study_cases, atol=0.05, rtol=0.0, case_timeout=60.0,
         hint="for each of early, late, gated: make_fusion(strategy, data, dim=32, seed=seed), fit(..., "
              "epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False); clean and corrupted test "
              "accuracy and count_parameters(model)"),
    Part("c2", "robust_fusion", 7, robust_fusion, _robust_cases, atol=0.05, rtol=0.0, case_timeout=60.0,
         hint="ModalityDropout(make_fusion(strategy, data, dim=32, seed=seed), p=0.3), the same fit; "
              "accuracy on the clean, corrupted and x1-missing test splits"),
))
