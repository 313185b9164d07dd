"""Exercise 09 (data quality): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randn


def _impute_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([True, False, True, True]))]
    cases = [(randn(g, n, d) + 2, torch.rand(n, generator=g) > p) for n, d, p in
             [(10, 4, 0.3), (6, 1, 0.5), (20, 8, 0.8)]]
    cases.append((randn(g, 5, 3), torch.ones(5, dtype=torch.bool)))
    cases.append((randn(g, 4, 2), torch.zeros(4, dtype=torch.bool)))        # nothing to average
    return cases


def _weight_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(torch.tensor([0, 0, 0, 1, 2, 2]), 3)]
    return [(torch.randint(0, 4, (40,), generator=g), 4),
            (torch.tensor([1] * 9 + [0]), 2),
            (torch.tensor([0, 0, 3, 3, 3, 1]), 5),                          # classes 2, 4 absent
            (torch.randint(0, 10, (200,), generator=g), 10)]


def _wce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 1, 2, 2]), torch.tensor([1.0, 2.0, 0.5]))]
    cases = []
    for n, c in [(6, 3), (10, 5), (1, 2), (12, 4)]:
        cases.append((randn(g, n, c) * 2, torch.randint(0, c, (n,), generator=g),
                      torch.rand(c, generator=g) * 3 + 0.1))
    cases.append((randn(g, 5, 3) * 400, torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1.0, 4.0, 0.5])))
    return cases


EX09 = Exercise("09_data_quality", "A missing modality and an imbalanced label set", (
    Part("q1", "mean_impute", 3, ref.mean_impute, _impute_cases,
         forbidden=("SimpleImputer",),
         hint="average the present rows column by column; put that mean in the absent rows; "
              "zeros if no row is present"),
    Part("q2", "balanced_class_weights", 2, ref.balanced_class_weights, _weight_cases,
         forbidden=("compute_class_weight",),
         hint="w_c = N / (K n_c), K the number of classes that occur, 0 for the others"),
    Part("q3", "weighted_cross_entropy", 2, lambda s, y, w: F.cross_entropy(s, y, weight=w), _wce_cases,
         forbidden=("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"),
         hint="Σ_i w_{y_i} CE_i / Σ_i w_{y_i}; use logsumexp for stability"),
))
