"""Exercise 09 (data quality): mean imputation, balanced class weights, the weighted
cross-entropy, modality dropout, and an experiment training with and without modality dropout
and testing with a modality missing."""


from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded


def _impute_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([True, False, True, True])),
                (randn(g, 3, 2), torch.zeros(3, dtype=torch.bool))]                # nothing present
    cases = [(randn(g, n, d) + 2, torch.rand(n, generator=g) > p) for n, d, p in
             [(10, 4, 0.3), (6, 1, 0.5), (20, 8, 0.8)]]
    cases.append((randn(g, 5, 3), torch.ones(5, dtype=torch.bool)))
    cases.append((randn(g, 4, 2), torch.zeros(4, dtype=torch.bool)))        # nothing to average
    return cases


def _weight_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(torch.tensor([0, 0, 0, 1, 2, 2]), 3),
                (torch.tensor([0, 0, 2, 2, 2]), 4)]                                # 1 and 3 absent
    return [(torch.randint(0, 4, (40,), generator=g), 4),
            (torch.tensor([1] * 9 + [0]), 2),
            (torch.tensor([0, 0, 3, 3, 3, 1]), 5),                          # classes 2, 4 absent
            (torch.randint(0, 10, (200,), generator=g), 10)]


def _wce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 1, 1, 2]), torch.tensor([1.0, 2.0, 0.5])),   # Σw = 5.5
                (randn(g, 3, 3) * 300, torch.tensor([2, 0, 1]), torch.tensor([0.5, 1.0, 3.0]))]
    cases = []
    for n, c in [(6, 3), (10, 5), (1, 2), (12, 4)]:
        cases.append((randn(g, n, c) * 2, torch.randint(0, c, (n,), generator=g),
                      torch.rand(c, generator=g) * 3 + 0.1))
    cases.append((randn(g, 5, 3) * 400, torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1.0, 4.0, 0.5])))
    return cases


def _dropout_ref(features, present, p, u):
    """Modality dropout with given uniforms ``u (M, B)``: a present modality is dropped where
    ``u < p``; a sample that would lose every present modality keeps the present one with the
    largest ``u``. Returns ``(features with dropped rows zeroed, present after dropout)``."""
    keep = present & (u >= p)
    lost = present.any(0) & ~keep.any(0)                       # (B,) samples left with nothing
    best = torch.where(present, u, torch.full_like(u, -1.0)).argmax(0)
    rescue = torch.zeros_like(keep)
    rescue[best, torch.arange(u.shape[1])] = True
    keep = keep | (rescue & lost[None, :])
    return features * keep[..., None].to(features.dtype), keep


def _dropout_cases(g: torch.Generator, public: bool) -> Cases:
    def case(m, b, d, p, present_p=0.8):
        present = torch.rand(m, b, generator=g) < present_p
        return (randn(g, m, b, d), present, p, torch.rand(m, b, generator=g))
    if public:
        u = torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.6, 0.8]])
        present = torch.tensor([[True, True, False], [True, True, True]])
        return [case(2, 4, 3, 0.3), (randn(g, 2, 3, 2), present, 0.5, u)]   # sample 0 loses both
    cases = [case(2, 8, 3, 0.5), case(3, 6, 2, 0.7), case(4, 5, 4, 0.2, 0.6), case(2, 10, 1, 0.9)]
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    nothing[0, 1] = True                                         # samples 0 and 2 have nothing
    cases.append((randn(g, 2, 3, 2), nothing, 0.6, torch.rand(2, 3, generator=g)))
    return cases


@single_threaded
def dropout_experiment(seed: int) -> dict:
    """The reference of q5 (the protocol the master states)."""
    from mmcourse.data.quality.missing import remove_modality
    from mmcourse.data.synergy import load_competition
    from mmcourse.models import make_fusion
    from mmcourse.robustness.missing import ModalityDropout
    from mmcourse.train import evaluate, fit

    data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)
    without_x1 = remove_modality(data.test, modality="x1")
    out = {}
    for name, p in (("plain", 0.0), ("dropout", 0.5)):
        model = make_fusion("early", data, dim=32, seed=seed)
        if p:
            model = ModalityDropout(model, p=p)
        fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)
        out[f"{name}_full"] = float(evaluate(model, data.test)["accuracy"])
        out[f"{name}_without_x1"] = float(evaluate(model, without_x1)["accuracy"])
    return out


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


EX09 = Exercise("09_data_quality", "Missing modalities, imbalanced labels, modality dropout", (
    Part("q1", "mean_impute", 4, ref.mean_impute, _impute_cases,
         forbidden=("SimpleImputer",),
         hint="average the present rows column by column; put that mean in the absent rows; "
              "zeros if no row is present (a plain sum / count is 0/0 = NaN there)"),
    Part("q2", "balanced_class_weights", 3, ref.balanced_class_weights, _weight_cases,
         forbidden=("compute_class_weight",),
         hint="w_c = N / (K n_c), K the number of classes that occur, 0 for the others (N / 0 = inf "
              "for an absent class otherwise)"),
    Part("q3", "weighted_cross_entropy", 4, lambda s, y, w: F.cross_entropy(s, y, weight=w), _wce_cases,
         forbidden=("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"),
         hint="Σ_i w_{y_i} CE_i / Σ_i w_{y_i} -- divide by the sum of the weights used, not by N "
              "(they differ unless the weights average to 1); use logsumexp for stability"),
    Part("q4", "modality_dropout", 5, _dropout_ref, _dropout_cases,
         forbidden=("ModalityDropout",),
         hint="drop where present & u < p; a sample left with no modality (but which had one) keeps "
              "its present modality with the largest u; zero the dropped rows; return (features, present)"),
    Part("q5", "dropout_experiment", 6, dropout_experiment, _experiment_cases, atol=0.05, rtol=0.0,
         case_timeout=30.0, allowed=("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"),
         hint="follow the protocol exactly: make_fusion('early', data, dim=32, seed=seed), "
              "ModalityDropout(model, p=0.5) for the second model, fit(..., epochs=10, lr=3e-3, "
              "batch_size=64, seed=seed, progress=False), evaluate on data.test and on "
              "remove_modality(data.test, modality='x1')"),
))
