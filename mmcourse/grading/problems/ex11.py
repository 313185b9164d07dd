"""Exercise 11 (pretraining and zero-shot): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn


def _zero_shot_ref(image_emb, prompt_emb, prompt_class, n_classes):
    from mmcourse.models.zero_shot import zero_shot_predict

    return zero_shot_predict(image_emb, prompt_emb, prompt_class, n_classes)


def _zero_shot_cases(g: torch.Generator, public: bool) -> Cases:
    def case(n, p, d, c, spread=1.0):
        cls = torch.cat([torch.arange(c), torch.randint(0, c, (p - c,), generator=g)])
        prompts = randn(g, p, d) * torch.exp(spread * randn(g, p, 1))    # very different norms
        centres = torch.stack([prompts[cls == k].mean(0) for k in range(c)])
        images = centres[torch.randint(0, c, (n,), generator=g)] + 0.8 * randn(g, n, d)
        return (images * 3.0, prompts, cls, c)

    if public:
        # class 0 has one long prompt, class 1 three short ones: the mean must be of *unit*
        # vectors and put back on the sphere (a sum favours the class with more prompts)
        prompts = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.3, 0.9], [0.8, 0.6]])
        images = torch.tensor([[1.0, 0.3], [0.2, 1.0], [0.6, 0.55], [5.0, 4.0]])
        return [(images, prompts, torch.tensor([0, 1, 1, 1]), 2), case(6, 5, 4, 3)]
    return [case(20, 8, 6, 3), case(30, 12, 8, 4, 2.0), case(15, 5, 5, 5), case(40, 20, 16, 6),
            case(25, randint(g, 7, 12), 4, 2)]


def _probe_ref(features, labels, n_classes, C):
    from mmcourse.probe import fit_logistic_regression

    W, b = fit_logistic_regression(features, labels, n_classes, C=C)
    return torch.softmax(features @ W.T + b, dim=1)


def _probe_cases(g: torch.Generator, public: bool) -> Cases:
    def case(n, d, c, C, sep=1.5):
        y = torch.cat([torch.arange(c), torch.randint(0, c, (n - c,), generator=g)])
        x = randn(g, n, d) + sep * randn(g, c, d)[y]
        return (x, y, c, C)

    if public:
        return [case(12, 3, 2, 1.0), case(20, 4, 3, 0.1)]
    return [case(30, 5, 3, 1.0), case(40, 6, 4, 0.5), case(25, 3, 2, 10.0, 3.0), case(50, 8, 5, 0.05)]


def _experiment_ref(k, seed):
    from mmcourse.label_efficiency import probe_experiment

    return probe_experiment(k, seed)


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(5, 0)]
    # k = 1 and k = 20 differ by tens of points: no constant passes both
    return [(1, randint(g, 1, 10_000)), (5, randint(g, 1, 10_000)), (20, randint(g, 1, 10_000))]


EX11 = Exercise("11_pretraining_and_zero_shot", "Zero-shot prediction, linear probes, label efficiency", (
    Part("q1", "zero_shot_classify", 3, _zero_shot_ref, _zero_shot_cases,
         forbidden=("zero_shot_predict", "zero_shot_scores", "class_embeddings", "ZeroShotClassifier"),
         hint="normalise every prompt embedding, average them per class, normalise the mean again "
              "(w_c), then predict argmax_c cos(u_x, w_c) for every image"),
    Part("q2", "linear_probe", 3, _probe_ref, _probe_cases, atol=2e-3, rtol=0.0,
         forbidden=("LogisticRegression", "fit_logistic_regression", "LinearProbe", "sklearn"),
         hint="minimise mean CE(W z + b, y) + ||W||^2 / (2 C n) (the intercept is not penalised) to "
              "convergence, e.g. with torch.optim.LBFGS(line_search_fn='strong_wolfe'); return the "
              "softmax probabilities of the training rows"),
    Part("q3", "probe_accuracy", 2, _experiment_ref, _experiment_cases, atol=0.05, rtol=0.0,
         forbidden=("probe_experiment",),
         hint="load('shapes_clip').image_encoder as frozen features; pool = load_counting(20, seed=seed), "
              "test = load_counting(40, seed=seed + 100); few_shot_indices(pool labels, k, seed); "
              "LinearProbe(dim, 3, C=0.1); the test accuracy as a float"),
))
