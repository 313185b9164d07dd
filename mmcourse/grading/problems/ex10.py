"""Exercise 10 (evaluation): macro-F1 (0/0), a modality ablation, input-gradient saliency of an
MLP, and an experiment asking whether saliency and ablation agree on a trained fusion model."""


from __future__ import annotations

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded


def _f1_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        silent = torch.tensor([[4, 0, 1], [0, 0, 0], [2, 0, 3]])          # class 1: never true nor predicted
        return [(torch.tensor([[5, 1], [2, 4]]),), (torch.tensor([[3, 0, 1], [0, 2, 2], [1, 0, 5]]),),
                (silent,)]
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


def _saliency_ref(x, W1, b1, W2, b2, target=None):
    """``|∂ s_c / ∂ x|`` of the MLP ``s = W2 relu(W1 x + b1) + b2`` for every sample (autograd);
    ``c`` = ``target[i]``, or the predicted class where ``target`` is None."""
    x = x.detach().clone().requires_grad_(True)
    scores = torch.relu(x @ W1.T + b1) @ W2.T + b2
    c = scores.argmax(1) if target is None else target
    scores.gather(1, c[:, None]).sum().backward()
    return x.grad.abs()


def _saliency_cases(g: torch.Generator, public: bool) -> Cases:
    def case(b, d, h, c, given=True):
        target = torch.randint(0, c, (b,), generator=g) if given else None
        return (randn(g, b, d), randn(g, h, d), randn(g, h), randn(g, c, h), randn(g, c), target)
    if public:
        return [case(3, 4, 5, 3), case(4, 3, 6, 2, given=False)]
    return [case(1, 2, 3, 2), case(5, 6, 8, 4), case(6, 3, 4, 5, given=False), case(2, 10, 16, 3),
            case(8, 5, 2, 3, given=False)]


@single_threaded
def attribution_experiment(seed: int) -> dict:
    """The reference of q4 (the protocol the master states)."""
    from mmcourse.data.synergy import load_competition
    from mmcourse.interpret import modality_ablation, saliency
    from mmcourse.models import make_fusion
    from mmcourse.train import fit

    data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)
    model = make_fusion("early", data, dim=32, seed=seed)
    fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)
    ablation = modality_ablation(model, data.test)
    batch = {k: v[:200] for k, v in data.test.tensors.items()}
    out = {"accuracy": ablation["all"]}
    for m in ("x1", "x2"):
        out[f"alone_{m}"] = ablation["alone"][m]
        out[f"saliency_{m}"] = float(saliency(model, batch, modality=m).sum(1).mean())
    return out


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


EX10 = Exercise("10_evaluation_and_interpretability", "Macro-F1, ablation, saliency: do they agree?", (
    Part("q1", "macro_f1", 5, ref.macro_f1, _f1_cases,
         forbidden=("f1_score", "precision_recall_f1", "precision_recall_fscore_support",
                    "classification_report"),
         hint="per class: TP on the diagonal, FP = column sum - TP, FN = row sum - TP; "
              "F1_c = 2TP / (2TP + FP + FN), 0 when that is 0/0 (a class never true nor predicted: "
              "precision and recall are 0/0 too, so compute F1 from the counts); average over all C"),
    Part("q2", "modality_ablation", 4, ref.modality_ablation, _ablation_cases,
         forbidden=("modality_ablation",),
         hint="accuracy of argmax(mean over all modalities) minus that without modality m"),
    Part("q3", "saliency", 6, _saliency_ref, _saliency_cases,
         forbidden=("saliency", "Saliency", "captum"),
         hint="∂s_c/∂x = (W2[c] ⊙ 1[W1 x + b1 > 0]) W1 per sample (or autograd on the sum over the "
              "batch of each sample's own target score); target None: each sample's argmax; abs"),
    Part("q4", "attribution_experiment", 6, attribution_experiment, _experiment_cases, atol=0.05,
         rtol=0.05, case_timeout=30.0,
         hint="follow the protocol exactly: mmcourse.interpret.modality_ablation on data.test and "
              "saliency(model, first 200 test samples, modality=m).sum(1).mean()"),
))
