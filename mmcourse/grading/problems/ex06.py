"""Exercise 06 (fusion): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randn


def _late_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 2, 3, 4), torch.ones(2, 3, dtype=torch.bool)),
                (randn(g, 2, 2, 3), torch.tensor([[True, False], [True, True]]))]
    cases = []
    for m, b, c in [(3, 5, 4), (2, 6, 10), (4, 3, 2)]:
        present = torch.rand(m, b, generator=g) > 0.35
        cases.append((randn(g, m, b, c), present))
    absent = torch.ones(2, 4, dtype=torch.bool)
    absent[:, 2] = False                                                      # nothing present
    cases.append((randn(g, 2, 4, 3), absent))
    cases.append((randn(g, 1, 3, 5), torch.ones(1, 3, dtype=torch.bool)))
    return cases


def _early_cases(g: torch.Generator, public: bool) -> Cases:
    dims = [([3, 2], 4, 3)] if public else [([5], 2, 4), ([3, 4], 6, 2), ([2, 1, 6], 3, 5),
                                              ([8, 8], 1, 10)]
    cases = []
    for ds, b, c in dims:
        feats = [randn(g, b, d) for d in ds]
        cases.append((feats, randn(g, c, sum(ds)), randn(g, c)))
    return cases


EX06 = Exercise("06_fusion_strategies", "Late and early fusion heads", (
    Part("q1", "late_fusion", 3, ref.late_fusion, _late_cases, forbidden=("LateFusion",),
         hint="average the logits of the present modalities only; divide by max(count, 1)"),
    Part("q2", "early_fusion", 2, ref.early_fusion, _early_cases,
         forbidden=("linear", "Linear", "EarlyFusion", "bilinear"),
         hint="concatenate the features along dim 1, then z W^T + b"),
))
