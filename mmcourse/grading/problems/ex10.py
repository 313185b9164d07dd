"""Exercise 10 (evaluation): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randn


def _f1_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(torch.tensor([[5, 1], [2, 4]]),), (torch.tensor([[3, 0, 1], [0, 2, 2], [1, 0, 5]]),)]
    cases = [(torch.randint(0, 20, (c, c), generator=g),) for c in (2, 4, 7)]
    never = torch.randint(0, 10, (4, 4), generator=g)
    never[:, 1] = 0                                                           # never predicted
    never[1] = 0                                                              # and never true
    cases.append((never,))
    cases.append((torch.diag(torch.tensor([3, 4, 5])),))
    return cases


def _ablation_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 2, 6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))]
    cases = []
    for m, b, c in [(2, 20, 4), (3, 30, 5), (4, 15, 3)]:
        y = torch.randint(0, c, (b,), generator=g)
        logits = randn(g, m, b, c)
        logits[0, torch.arange(b), y] += 2.0                                  # one informative modality
        cases.append((logits, y))
    return cases


EX10 = Exercise("10_evaluation_and_interpretability", "Macro-F1 and a modality-ablation study", (
    Part("q1", "macro_f1", 3, ref.macro_f1, _f1_cases,
         forbidden=("f1_score", "precision_recall_f1", "precision_recall_fscore_support",
                    "classification_report"),
         hint="per class: TP on the diagonal, FP = column sum - TP, FN = row sum - TP; "
              "F1_c = 2TP / (2TP + FP + FN), 0 when that is 0/0; average over all C classes"),
    Part("q2", "modality_ablation", 2, ref.modality_ablation, _ablation_cases,
         forbidden=("modality_ablation",),
         hint="accuracy of argmax(mean over all modalities) minus that without modality m"),
))
