"""Data-quality explorer (chapter 09): imbalance, missing modalities and noise, and what the
metrics say about them.

The test split goes through three corruptions of ``mmcourse.data.quality``, in this order:

    x  →  gaussian_noise(σ) on one modality  →  imbalance(ratio)  →  drop_modality(p) on one modality

and a trained joint classifier is scored on what is left: accuracy ``(1/N) Σ_i 1[ŷ_i = y_i]``,
macro-F1 ``(1/C) Σ_c F1_c`` and the recall of each class. Under imbalance accuracy follows the
big classes while macro-F1 and the per-class recalls show the small ones.

The model's outputs are precomputed for every noise level, with each modality present and
absent; an interaction only subsamples and looks them up. The result is exactly
``evaluate(model, drop_modality(imbalance(gaussian_noise(data))))`` (the tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmcourse import metrics
from mmcourse.data import quality
from mmcourse.data.base import ModalDataset
from mmcourse.tensors import to_numpy
from mmcourse.train import evaluate
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

GRID = (2, 4)


def corrupt(data: ModalDataset, sigma: float, ratio: float, p_missing: float, *, noise_modality: str,
            missing_modality: str, seed: int = 0) -> ModalDataset:
    """The explorer's pipeline: noise, then imbalance, then a missing modality (all seeded)."""
    noisy = quality.gaussian_noise(data, sigma, modality=noise_modality, seed=seed)
    fewer = quality.imbalance(noisy, ratio, seed=seed)
    return quality.drop_modality(fewer, p_missing, modality=missing_modality, seed=seed)


def quality_explorer(model, data: ModalDataset, *, noise_modality: str = "image",
                     noise_levels: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
                     n: int = 500, seed: int = 0) -> Explorer:
    """Explore a trained joint classifier ``model`` on the first ``n`` samples of ``data`` under
    class imbalance (``n_max / n_min``), a missing modality (the fraction of samples without it)
    and Gaussian noise of std ``σ`` on ``noise_modality`` (σ from ``noise_levels``)."""
    import ipywidgets as widgets

    modalities = list(model.modalities)
    if noise_modality not in modalities:
        raise ValueError(f"noise_modality {noise_modality!r} is not one of the model's {modalities}")
    data = data.subset(slice(0, n)).select([*modalities, "label"])
    n = len(data)
    data = ModalDataset({**data.tensors, "index": torch.arange(n)}, name=data.name, meta=data.meta)
    labels = to_numpy(data.tensors["label"])
    num_classes = int(labels.max()) + 1
    levels = [float(v) for v in noise_levels]
    # logits[(level, absent modality or None)]: (N, C), every sample, computed once
    logits: dict[tuple, np.ndarray] = {}
    noisy = {}
    for k, sigma in enumerate(levels):
        noisy[k] = quality.gaussian_noise(data, sigma, modality=noise_modality, seed=seed)
        logits[(k, None)] = to_numpy(evaluate(model, noisy[k], return_outputs=True)["logits"])
        for m in modalities:
            gone = quality.remove_modality(noisy[k], modality=m)
            logits[(k, m)] = to_numpy(evaluate(model, gone, return_outputs=True)["logits"])

    controls = {
        "ratio": widgets.FloatLogSlider(1.0, base=10, min=0, max=1.7, step=0.05,
                                        description="imbalance n_max/n_min", readout_format=".1f",
                                        **slider_style()),
        "p_missing": widgets.FloatSlider(0.0, min=0.0, max=1.0, step=0.05, description="missing rate",
                                         **slider_style()),
        "missing": widgets.Dropdown(options=modalities, value=modalities[-1], description="missing",
                                    layout=widgets.Layout(width="190px")),
        "noise": widgets.SelectionSlider(options=[(f"{v:g}", k) for k, v in enumerate(levels)], value=0,
                                         description=f"{noise_modality} noise σ", **slider_style()),
    }
    fig = new_figure(11.0, 3.8)
    gs = fig.add_gridspec(GRID[0], 2 + GRID[1] + 1, width_ratios=[2, 2.4, 0.2] + [1] * GRID[1],
                          left=0.04, right=0.99, top=0.84, bottom=0.08, wspace=0.3, hspace=0.45)
    ax_counts, ax_recall = fig.add_subplot(gs[:, 0]), fig.add_subplot(gs[:, 1])
    cells = [fig.add_subplot(gs[r, 3 + c]) for r in range(GRID[0]) for c in range(GRID[1])]
    classes = np.arange(num_classes)
    count_bars = ax_counts.bar(classes, np.zeros(num_classes), color="tab:gray")
    ax_counts.set_xticks(classes)
    ax_counts.set_ylim(0, np.bincount(labels).max() * 1.1)
    ax_counts.set_title("samples per class", fontsize=10)
    recall_bars = ax_recall.bar(classes, np.zeros(num_classes), color="tab:blue")
    acc_line = ax_recall.axhline(0, color="black", ls="--", lw=1.2, label="accuracy")
    f1_line = ax_recall.axhline(0, color="tab:red", ls=":", lw=1.5, label="macro-F1")
    ax_recall.set_ylim(0, 1.02)
    ax_recall.set_xticks(classes)
    ax_recall.legend(fontsize=8, loc="lower right")
    recall_title = ax_recall.set_title("", fontsize=10)
    shown = noise_modality
    x0, cmap = image_for_imshow(data.tensors[shown][0])
    arts = []
    for ax in cells:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
        arts.append((ax, ax.imshow(x0, cmap=cmap, aspect="auto"),
                     ax.text(0.5, 0.5, "missing", color="white", ha="center", va="center", fontsize=8,
                             transform=ax.transAxes)))

    def draw(fig, ratio: float, p_missing: float, missing: str, noise: int) -> dict:
        fewer = quality.imbalance(noisy[noise], ratio, seed=seed)
        final = quality.drop_modality(fewer, p_missing, modality=missing, seed=seed)
        idx = to_numpy(final.tensors["index"])
        present = to_numpy(quality.mask_of(final, missing))
        scores = np.where(present[:, None], logits[(noise, None)][idx], logits[(noise, missing)][idx])
        y, y_hat = labels[idx], scores.argmax(1)
        acc = metrics.accuracy(y, y_hat)
        macro = metrics.precision_recall_f1(y, y_hat, num_classes=num_classes, average="macro")
        per_class = metrics.precision_recall_f1(y, y_hat, num_classes=num_classes, average=None)
        counts = np.bincount(y, minlength=num_classes)
        for bar, v in zip(count_bars, counts):
            bar.set_height(v)
        for bar, v in zip(recall_bars, per_class.recall):
            bar.set_height(v)
        acc_line.set_ydata([acc, acc])
        f1_line.set_ydata([macro.f1, macro.f1])
        recall_title.set_text(f"recall per class\naccuracy {acc:.2f}, macro-F1 {macro.f1:.2f}")
        for k, (ax, art, txt) in enumerate(arts):
            if k >= len(final):
                ax.set_visible(False)
                continue
            ax.set_visible(True)
            shown_present = shown != missing or present[k]
            art.set_data(image_for_imshow(final.tensors[shown][k])[0])
            art.autoscale()
            art.set_visible(shown_present)
            txt.set_visible(not shown_present)
            gone = "" if present[k] or missing == shown else f"\nno {missing}"
            ax.set_title(f"y={y[k]} ŷ={y_hat[k]}{gone}", fontsize=8,
                         color="tab:green" if y[k] == y_hat[k] else "tab:red")
        return {"accuracy": acc, "macro_f1": macro.f1, "recall": per_class.recall, "counts": counts,
                "n": len(final), "present": present,
                "html": f"imbalance {ratio:.1f}: n = {len(final)} test samples ({counts.max()}:"
                        f"{counts.min()} largest:smallest class), {missing} missing in "
                        f"{int((~present).sum())}, {noise_modality} noise σ = {levels[noise]:g}: "
                        f"accuracy <b>{acc:.3f}</b>, macro-F1 <b>{macro.f1:.3f}</b>"}

    return make_explorer("quality", controls, draw, fig,
                    title="Data quality: imbalance, missing modalities, noise → samples and metrics")
