"""The label-efficiency experiment: how many labels does a downstream task need?

With ``k`` labelled examples per class of a task the pretraining never trained on, compare

* **linear probe** -- freeze the pretrained image tower, fit logistic regression on features
  ``z = f(x)`` (``mmcourse.probe``); for counting, the tower's convolutional feature map summed
  over positions, ``z_c = Σ_{i,j} F_c[i, j]`` (``SumPooled``), which grows with the number of
  objects, is a far better input than the tower's dense output;
* **fine-tuning** -- start from the pretrained tower, add a linear head, train everything;
* **from scratch** -- the same network from a random initialisation,

at ``k = 1, 5, 10, 100``, each over several seeds (which ``k`` examples are drawn, and the
initialisation), reporting the mean test accuracy and a 95 % Student-t interval

    mean ± t_{0.975, n−1} · sd / √n.

``few_shot_indices`` draws the labelled subset; ``run_label_efficiency`` runs the grid and
``summarise`` turns its records into the curve.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset
from mmcourse.models.cnn import UnimodalClassifier
from mmcourse.probe import LinearProbe
from mmcourse.tensors import model_device

METHODS = ("probe", "finetune", "scratch")

__all__ = ["METHODS", "SumPooled", "counting_embeddings", "few_shot_indices", "first_k_per_class",
           "frozen_features", "probe_accuracy", "run_label_efficiency", "summarise", "train_classifier"]


class SumPooled(nn.Module):
    """``z_c = Σ_{i,j} F_c[i, j]``: a ``ConvEncoder``'s feature map ``F`` summed over positions,
    ``(B, channels)`` -- frozen features for a linear probe."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder.grid(x).sum(dim=1)


def few_shot_indices(labels: Tensor, k: int, seed: int = 0) -> Tensor:
    """``k`` indices per class of ``labels (n,)``, drawn without replacement with ``seed``;
    classes in order, shuffled within. A class with fewer than ``k`` examples is an error."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (labels per class) must be an int >= 1, got {k!r}")
    y = torch.as_tensor(labels).long().cpu()
    if y.dim() != 1:
        raise ValueError(f"few_shot_indices expects labels (n,), got shape {tuple(y.shape)}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in torch.unique(y).tolist():
        pool = torch.nonzero(y == c).flatten().numpy()
        if len(pool) < k:
            raise ValueError(f"class {c} has {len(pool)} examples, fewer than k={k}")
        picked.append(rng.choice(pool, size=k, replace=False))
    return torch.from_numpy(np.concatenate(picked)).long()


@torch.no_grad()
def frozen_features(encoder: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """``f(x)`` for every image, ``(n, dim)`` float32 on the CPU, in eval mode, no gradients."""
    dev = model_device(encoder)
    was = encoder.training
    encoder.eval()
    try:
        return torch.cat([encoder(images[i:i + batch_size].to(dev)).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        encoder.train(was)


def train_classifier(encoder: nn.Module, train: ModalDataset, n_classes: int, *, steps: int = 120,
                     lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> UnimodalClassifier:
    """``encoder`` (trained in place: pass a copy) + a linear head, trained with ``fit()`` for about
    ``steps`` optimiser steps whatever the number of labels (few labels: many epochs)."""
    from mmcourse.config import seeded
    from mmcourse.train import fit

    with seeded(seed):
        model = UnimodalClassifier(encoder, "image", n_classes)
    per_epoch = math.ceil(len(train) / batch_size)
    fit(model, train.select(["image", "label"]), epochs=max(1, round(steps / per_epoch)), lr=lr,
        batch_size=batch_size, seed=seed, progress=False)
    return model


def run_label_efficiency(encoder: nn.Module, make_encoder: Callable[[], nn.Module], pool: ModalDataset,
                         test: ModalDataset, *, ks: Sequence[int] = (1, 5, 10, 100),
                         seeds: Sequence[int] = (0, 1, 2), methods: Sequence[str] = METHODS,
                         steps: int = 120, C: float = 1.0, probe_features: nn.Module | None = None,
                         progress: bool = True) -> list[dict]:
    """Test accuracy of each method at each ``k`` and seed: records ``{method, k, seed, accuracy}``.

    ``encoder``: the pretrained tower ``f`` (not modified: fine-tuning trains a copy);
    ``probe_features``: what the probe reads (default ``SumPooled(encoder)``);
    ``make_encoder()``: a freshly initialised tower of the same shape (from scratch); ``pool``:
    labelled training scenes to draw ``k`` per class from; ``test``: where accuracy is measured.
    """
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    from mmcourse.config import seeded
    from mmcourse.train import evaluate

    n_classes = int(pool.tensors["label"].max()) + 1
    test_xy = test.select(["image", "label"])
    y_test = test.tensors["label"]
    probe_features = SumPooled(encoder) if probe_features is None else probe_features
    z_pool = frozen_features(probe_features, pool.tensors["image"]) if "probe" in methods else None
    z_test = frozen_features(probe_features, test.tensors["image"]) if "probe" in methods else None
    records = []
    grid = [(k, s, m) for k in ks for s in seeds for m in methods]
    for k, seed, method in tqdm(grid, desc="label efficiency", disable=not progress):
        idx = few_shot_indices(pool.tensors["label"], k, seed)
        if method == "probe":
            probe = LinearProbe(z_pool.shape[1], n_classes, C=C).fit(z_pool[idx], pool.tensors["label"][idx])
            acc = (probe.predict(z_test) == y_test).float().mean().item()
        else:
            if method == "finetune":
                start = copy.deepcopy(encoder)
            else:
                with seeded(seed):
                    start = make_encoder()
            model = train_classifier(start, pool.subset(idx), n_classes, steps=steps, seed=seed)
            acc = evaluate(model, test_xy, batch_size=512)["accuracy"]
        records.append({"method": method, "k": k, "seed": seed, "accuracy": acc})
    return records


def _t975(df: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}.get(df, 1.96)


def summarise(records: Sequence[dict]) -> list[dict]:
    """Per (method, k): ``mean``, ``low``/``high`` (95 % t-interval over seeds; the mean itself
    for one seed) and ``n``, sorted by method then ``k``."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in records:
        groups.setdefault((r["method"], r["k"]), []).append(r["accuracy"])
    out = []
    for (method, k), accs in sorted(groups.items(), key=lambda kv: (METHODS.index(kv[0][0])
                                                                    if kv[0][0] in METHODS else 9, kv[0][1])):
        mean = statistics.fmean(accs)
        half = _t975(len(accs) - 1) * statistics.stdev(accs) / math.sqrt(len(accs)) if len(accs) > 1 else 0.0
        out.append({"method": method, "k": k, "mean": mean, "low": mean - half, "high": mean + half,
                    "n": len(accs)})
    return out



def first_k_per_class(labels: Tensor, k: int, n_classes: int) -> Tensor:
    """The indices of the first ``k`` examples of each class ``0..n_classes-1``, class by class
    (a deterministic few-label draw: the order of ``labels`` is already random)."""
    y = torch.as_tensor(labels).long()
    out = []
    for c in range(n_classes):
        rows = torch.nonzero(y == c).flatten()[:k]
        if len(rows) < k:
            raise ValueError(f"class {c} has {len(rows)} examples, fewer than k={k}")
        out.append(rows)
    return torch.cat(out)


def probe_accuracy(pool_emb: Tensor, pool_labels: Tensor, test_emb: Tensor, test_labels: Tensor, k: int,
                   *, C: float = 10.0, steps: int = 300, lr: float = 2.0) -> float:
    """The exercise's experiment: a probe on ``k`` labels per class of frozen embeddings (the
    first ``k`` of each class, ``first_k_per_class``), fitted by ``logistic_regression_gd``;
    its test accuracy."""
    from mmcourse.probe import logistic_regression_gd

    n_classes = int(pool_labels.max()) + 1
    idx = first_k_per_class(pool_labels, k, n_classes)
    W, b = logistic_regression_gd(pool_emb[idx], pool_labels[idx], n_classes, C=C, steps=steps, lr=lr)
    return ((test_emb.float() @ W.T + b).argmax(1) == test_labels).float().mean().item()


@torch.no_grad()
def counting_embeddings(seed: int, n_pool: int = 10, n_test: int = 30, name: str = "shapes_clip"):
    """``(pool_emb, pool_labels, test_emb, test_labels)``: the shipped checkpoint's unit image
    embeddings of two counting sets (``load_counting(n_pool, seed=seed)`` and
    ``load_counting(n_test, seed=seed + 100)``)."""
    from mmcourse import pretrained
    from mmcourse.data.shapes.holdout import load_counting

    model = pretrained.load(name)
    pool, test = load_counting(n_pool, seed=seed), load_counting(n_test, seed=seed + 100, name="test")
    return (model.encode_image(pool.tensors["image"]), pool.tensors["label"],
            model.encode_image(test.tensors["image"]), test.tensors["label"])
