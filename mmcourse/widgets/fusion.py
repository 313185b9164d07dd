"""Fusion explorer (chapters 06 and 09): which strategy survives a corrupted modality?

For every fusion strategy (a trained ``JointClassifier``), every corruption and every level of
it, the explorer measures the test accuracy

    acc(strategy, c, level) = (1/N) Σ_i 1[argmax_y P(y | corrupt_c(x_i, level)) = y_i]

once, when it is built (the corruptions are those of ``mmcourse.data.quality``: Gaussian pixel
noise, speech at a given SNR, a modality missing for a fraction of the samples). Moving the
controls then only redraws: the robustness curves ``acc`` against the level, one per strategy,
with MultiBench's relative robustness ``RR = ∫ acc(t) dt`` and, against late fusion, effective
robustness ``ER`` (``mmcourse.robustness.RobustnessCurve``), the chosen point, and a few corrupted
test samples with the chosen model's predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from mmcourse.data import quality
from mmcourse.data.base import ModalDataset
from mmcourse.robustness import RobustnessCurve
from mmcourse.tensors import to_numpy
from mmcourse.train import evaluate
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

#: name → (corruption(data, level), levels, modality it hits); a level's first value is "clean"
Corruptions = Mapping[str, tuple[Callable[[ModalDataset, float], ModalDataset], Sequence[float], str]]
SAMPLES = 6


def default_corruptions(modalities: Sequence[str], seed: int = 0) -> dict:
    """The corruptions of ``mmcourse.data.quality`` that apply to the given modalities."""
    out = {}
    if "image" in modalities:
        out["image: Gaussian noise σ"] = (partial(quality.gaussian_noise, modality="image", seed=seed),
                                          [0.0, 0.5, 1.0, 1.5, 2.0, 3.0], "image")
        out["image: missing (fraction)"] = (partial(quality.drop_modality, modality="image", seed=seed),
                                            [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "image")
    if "audio" in modalities:
        out["audio: noise at SNR (dB)"] = (partial(quality.noise_at_snr, modality="audio", seed=seed),
                                           [15.0, 10.0, 5.0, 0.0, -5.0, -10.0], "audio")
        out["audio: missing (fraction)"] = (partial(quality.drop_modality, modality="audio", seed=seed),
                                            [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "audio")
    return out


def robustness_table(models: Mapping[str, object], data: ModalDataset, corruptions: Corruptions,
                     batch_size: int = 512) -> dict:
    """``{corruption: {"levels", "accuracy": {strategy: (L,)}, "predicted": {strategy: (L, N)},
    "curves": {strategy: RobustnessCurve}, "data": [corrupted split per level]}}``: every model
    evaluated at every level, once (the predictions are kept for the sample grid)."""
    table = {}
    for name, (corrupt, levels, _) in corruptions.items():
        splits = [corrupt(data, level) for level in levels]
        acc, pred = {}, {}
        for strategy, model in models.items():
            outs = [evaluate(model, s, batch_size=batch_size, return_outputs=True) for s in splits]
            acc[strategy] = np.array([o["accuracy"] for o in outs])
            pred[strategy] = np.stack([to_numpy(o["logits"]).argmax(1) for o in outs])
        curves = {s: RobustnessCurve(list(levels), a.tolist(), s) for s, a in acc.items()}
        table[name] = {"levels": list(levels), "accuracy": acc, "predicted": pred, "data": splits,
                       "curves": curves}
    return table


def fusion_explorer(models: Mapping[str, object], data: ModalDataset, *,
                    corruptions: Corruptions | None = None, n: int = 300, seed: int = 0) -> Explorer:
    """Accuracy of each trained fusion model in ``models`` (``{"early": model, "late": ...}``)
    on the first ``n`` samples of ``data`` under each corruption and level; ``corruptions``
    defaults to ``default_corruptions`` for the modalities all models read."""
    import ipywidgets as widgets

    if not models:
        raise ValueError("fusion_explorer needs at least one trained model: {'early': model, ...}")
    modalities = sorted(set.intersection(*(set(m.modalities) for m in models.values())))
    keep = [*modalities, "label"]
    missing = [k for k in keep if k not in data]
    if missing:
        raise KeyError(f"the data has no {missing}; the models read {modalities}")
    data = data.subset(slice(0, n)).select(keep)
    corruptions = dict(corruptions or default_corruptions(modalities, seed))
    if not corruptions:
        raise ValueError(f"no default corruption applies to the modalities {modalities}; pass corruptions=")
    table = robustness_table(models, data, corruptions)
    labels = to_numpy(data.tensors["label"])
    shown = [m for m in ("image", "audio") if m in modalities] or modalities[:1]
    n_levels = max(len(c[1]) for c in corruptions.values())

    controls = {
        "strategy": widgets.Dropdown(options=list(models), value=next(iter(models)), description="strategy",
                                     layout=widgets.Layout(width="230px")),
        "corruption": widgets.Dropdown(options=list(corruptions), value=next(iter(corruptions)),
                                       description="corruption", layout=widgets.Layout(width="330px")),
        "level": widgets.IntSlider(0, 0, n_levels - 1, description="level step", **slider_style()),
    }
    fig = new_figure(11.0, 3.8)
    gs = fig.add_gridspec(len(shown), SAMPLES + 2, width_ratios=[3.2, 0.35] + [1] * SAMPLES,
                          left=0.06, right=0.99, top=0.86, bottom=0.14, wspace=0.1, hspace=0.35)
    ax_curve = fig.add_subplot(gs[:, 0])
    cells = [[fig.add_subplot(gs[r, 2 + c]) for c in range(SAMPLES)] for r in range(len(shown))]
    pictures = []
    for r, m in enumerate(shown):
        x0 = data.tensors[m][0]
        for c, ax in enumerate(cells[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            img, cmap = image_for_imshow(x0) if x0.dim() >= 2 else (np.zeros((2, 2)), "gray")
            art = ax.imshow(img, cmap="magma" if m == "audio" else cmap, aspect="auto",
                            origin="lower" if m == "audio" else "upper")
            txt = ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=8, color="white",
                          transform=ax.transAxes)
            pictures.append((r, c, m, ax, art, txt))
        cells[r][0].set_ylabel(m, fontsize=9)

    def draw(fig, strategy: str, corruption: str, level: int) -> dict:
        rec = table[corruption]
        levels = rec["levels"]
        level = min(level, len(levels) - 1)
        ax_curve.clear()
        xs = np.arange(len(levels))
        baseline = rec["curves"].get("late")
        for name, acc in rec["accuracy"].items():
            bold = name == strategy
            curve = rec["curves"][name]
            label = f"{name} RR={curve.relative_robustness():.2f}"
            if baseline is not None and name != "late":
                label += f" ER={curve.effective_robustness(baseline):+.3f}"
            ax_curve.plot(xs, acc, "o-" if bold else ".-", lw=2.5 if bold else 1.0, label=label,
                          alpha=1.0 if bold else 0.6, zorder=3 if bold else 2)
        acc = rec["accuracy"][strategy][level]
        ax_curve.plot([level], [acc], "o", ms=12, mfc="none", mec="black", mew=2, zorder=4)
        ax_curve.set_xticks(xs, [f"{v:g}" for v in levels])
        ax_curve.set_ylim(0, 1.02)
        ax_curve.set_xlabel(corruption)
        ax_curve.set_ylabel("test accuracy")
        ax_curve.legend(fontsize=8, loc="lower left")
        ax_curve.set_title(f"{strategy}: accuracy {acc:.3f} at level {levels[level]:g}", fontsize=10)
        split = rec["data"][level]
        pred = rec["predicted"][strategy][level]
        for r, c, m, ax, art, txt in pictures:
            present = bool(quality.mask_of(split, m)[c])
            x = split.tensors[m][c]
            art.set_data(image_for_imshow(x)[0] if m != "audio" else to_numpy(x[0]))
            art.autoscale()
            art.set_visible(present)
            txt.set_visible(not present)
            ax.set_facecolor("black")
            if r == 0:
                ok = pred[c] == labels[c]
                ax.set_title(f"y={labels[c]} ŷ={pred[c]}", fontsize=8,
                             color="tab:green" if ok else "tab:red")
        clean = rec["accuracy"][strategy][0]
        return {"accuracy": float(acc), "curve": rec["accuracy"][strategy], "level": levels[level],
                "relative_robustness": rec["curves"][strategy].relative_robustness(),
                "predicted": pred[:SAMPLES],
                "html": f"<b>{strategy}</b> under <i>{corruption}</i> = {levels[level]:g}: accuracy "
                        f"{acc:.3f} (clean {clean:.3f}, n = {len(labels)}); best here: "
                        + ", ".join(f"{k} {v[level]:.3f}" for k, v in sorted(
                            rec["accuracy"].items(), key=lambda kv: -kv[1][level]))}

    return make_explorer("fusion", controls, draw, fig,
                    title="Fusion under corruption: accuracy and robustness curves per strategy")
