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


def _probe_ref(features, labels, n_classes, C, steps, lr):
    from mmcourse.probe import logistic_regression_gd

    W, b = logistic_regression_gd(features, labels, n_classes, C=C, steps=steps, lr=lr)
    return torch.softmax(features @ W.T + b, dim=1)


def _probe_cases(g: torch.Generator, public: bool) -> Cases:
    def case(n, d, c, C, steps, lr=0.05, sep=1.5):
        y = torch.cat([torch.arange(c), torch.randint(0, c, (n - c,), generator=g)])
        x = randn(g, n, d) + sep * randn(g, c, d)[y]
        return (x, y, c, C, steps, lr)

    if public:
        # C small: the penalty W / (C n) matters; steps = 0: the probabilities are uniform
        return [case(12, 3, 2, 1.0, 50), case(20, 4, 3, 0.01, 100), case(6, 2, 3, 1.0, 0)]
    return [case(30, 5, 3, 1.0, 200), case(40, 6, 4, 0.5, 150), case(25, 3, 2, 10.0, 300, 0.02, 3.0),
            case(50, 8, 5, 0.05, 100)]


def _experiment_ref(pool_emb, pool_labels, test_emb, test_labels, k):
    from mmcourse.label_efficiency import probe_accuracy

    return probe_accuracy(pool_emb, pool_labels, test_emb, test_labels, k)


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    """Unit embeddings of the shipped ``shapes_clip`` on counting scenes (a fresh data seed per
    case: the experiment is rerun on data the student never saw)."""
    from mmcourse.label_efficiency import counting_embeddings

    if public:
        return [(*counting_embeddings(0), 5)]
    # k = 1 and k = 10 differ by tens of points: no constant passes both
    return [(*counting_embeddings(randint(g, 1, 10_000)), k) for k in (1, 3, 10)]


EX11 = Exercise("11_pretraining_and_zero_shot", "Zero-shot prediction, linear probes, label efficiency", (
    Part("q1", "zero_shot_classify", 3, _zero_shot_ref, _zero_shot_cases,
         forbidden=("zero_shot_predict", "zero_shot_scores", "class_embeddings", "ZeroShotClassifier"),
         hint="normalise every prompt embedding, average them per class, normalise the mean again "
              "(w_c), then predict argmax_c cos(u_x, w_c) for every image"),
    Part("q2", "linear_probe", 3, _probe_ref, _probe_cases, atol=1e-4,
         forbidden=("logistic_regression_gd", "fit_logistic_regression", "LinearProbe"),
         hint="W = 0, b = 0; each step: P = softmax(Z W^T + b), G = (P - onehot(y)) / n, "
              "W -= lr (G^T Z + W / (C n)), b -= lr G.sum(0); return softmax(Z W^T + b)"),
    Part("q3", "probe_accuracy", 2, _experiment_ref, _experiment_cases, atol=0.04, rtol=0.0, case_timeout=30,
         forbidden=("probe_accuracy_reference",),
         hint="the first k rows of each class of the pool; your linear_probe's W, b with C = 10, "
              "300 steps, lr = 2.0; accuracy of argmax(test_emb W^T + b) against test_labels"),
))
