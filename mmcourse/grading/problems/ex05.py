"""Exercise 05 (joint): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.grading.problems.base import Cases, Exercise, Part, randn


def _joint_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), 1.0), (randn(g, 2, 10), 2.0)]
    return [(randn(g, 1, 2), 1.0), (randn(g, 6, 10), 1.0), (randn(g, 5, 4) * 3, 0.5),
            (randn(g, 3, 7), 4.0), (randn(g, 4, 5) * 1000, 1.0),   # large scores: stable?
            (torch.full((2, 3), -800.0), 1.0)]


def _ce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 2, 1, 1]))]
    cases = []
    for n, c, scale in [(1, 2, 1), (8, 10, 1), (5, 3, 4), (6, 4, 500), (3, 6, 50)]:
        cases.append((randn(g, n, c) * scale, torch.randint(0, c, (n,), generator=g)))
    return cases


_SOFTMAX = ("softmax", "log_softmax", "Softmax", "LogSoftmax", "cross_entropy", "nll_loss",
            "CrossEntropyLoss", "NLLLoss", "probabilities", "special")
EX05 = Exercise("05_joint_classification", "The joint softmax P(y | x1, x2) and its cross-entropy", (
    Part("q1", "joint_probabilities", 3, lambda s, t: torch.softmax(s / t, dim=-1), _joint_cases,
         forbidden=_SOFTMAX,
         hint="subtract each row's maximum before exp so that large scores do not overflow"),
    Part("q2", "joint_cross_entropy", 2, lambda s, y: F.cross_entropy(s, y), _ce_cases,
         forbidden=_SOFTMAX,
         hint="-log P(y|x) = logsumexp(s) - s_y; average over the batch"),
))
