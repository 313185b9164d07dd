"""Measuring robustness: accuracy against corruption level, and two areas that summarise it.

``robustness_curve`` evaluates a model on ``corruption(data, level)`` for each level;
MultiBench's two summaries (Liang et al., 2021), with levels rescaled to ``t ∈ [0, 1]``:

* relative robustness ``RR = ∫_0^1 acc(t) dt`` (area under the accuracy curve, trapezoids);
* effective robustness ``ER = ∫_0^1 [acc(t) − (acc_b(t) + acc(0) − acc_b(0))] dt``: the area
  above a baseline's curve (late fusion) shifted to the model's clean accuracy.

The rescaling ``t = (level − level_0) / (level_last − level_0)`` weighs each segment of the curve by
its share of the level range, so **use evenly spaced levels** (e.g. SNRs 20, 15, ..., −10 dB):
with uneven ones such as 30, 5, 0, −5, −10 dB the near-clean 30 → 5 segment would carry 62 % of
the area. ``RobustnessCurve.segment_weights()`` shows each segment's share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from mmcourse.data.base import ModalDataset
from mmcourse.train import evaluate


def _area(levels: np.ndarray, values: np.ndarray) -> float:
    """Trapezoidal area under ``values`` against levels rescaled to ``t ∈ [0, 1]``."""
    if len(levels) < 2:
        return float(values[0])
    t = (levels - levels[0]) / (levels[-1] - levels[0])
    return float(np.sum((t[1:] - t[:-1]) * (values[1:] + values[:-1]) / 2))


@dataclass
class RobustnessCurve:
    """Accuracy at each corruption level (``levels[0]`` should be the clean level)."""

    levels: list
    accuracy: list[float]
    name: str = "model"
    extra: dict = field(default_factory=dict)

    @property
    def clean(self) -> float:
        return self.accuracy[0]

    def segment_weights(self) -> list[float]:
        """Each segment's share of the area's ``t`` axis (all equal for evenly spaced levels)."""
        levels = np.asarray(self.levels, float)
        if len(levels) < 2:
            return []
        return (np.diff(levels) / (levels[-1] - levels[0])).tolist()

    def relative_robustness(self) -> float:
        """``RR = ∫_0^1 acc(t) dt``: area under accuracy vs level (levels rescaled to [0, 1])."""
        return _area(np.asarray(self.levels, float), np.asarray(self.accuracy, float))

    def effective_robustness(self, baseline: RobustnessCurve) -> float:
        """``ER = ∫ [acc(t) − acc_b(t) − (acc(0) − acc_b(0))] dt``: accuracy kept beyond a baseline
        (late fusion) whose curve is shifted to the same clean accuracy. > 0: more robust."""
        if list(baseline.levels) != list(self.levels):
            raise ValueError(f"effective_robustness needs curves on the same levels, got {self.levels} "
                             f"and {baseline.levels}")
        shifted = np.asarray(baseline.accuracy, float) + (self.clean - baseline.clean)
        return _area(np.asarray(self.levels, float), np.asarray(self.accuracy, float) - shifted)


def robustness_curve(model: nn.Module, data: ModalDataset, corruption: Callable[..., ModalDataset],
                     levels: Sequence, *, name: str | None = None, batch_size: int = 512,
                     loss_fn=None) -> RobustnessCurve:
    """Test accuracy of ``model`` on ``corruption(data, level)`` for every level.

    ``corruption`` is any ``(data, level) -> data`` function, e.g.
    ``functools.partial(quality.gaussian_noise, modality="image")``.
    """
    if len(levels) < 1:
        raise ValueError("robustness_curve needs at least one level")
    if not callable(corruption):
        raise TypeError(f"corruption must be a function (data, level) -> data, "
                        f"got {type(corruption).__name__}")
    accuracy = []
    for level in levels:
        scores = evaluate(model, corruption(data, level), batch_size=batch_size, loss_fn=loss_fn)
        if "accuracy" not in scores:
            raise ValueError("robustness_curve needs a classifier: evaluate() gave no accuracy")
        accuracy.append(scores["accuracy"])
    return RobustnessCurve(list(levels), accuracy, name or type(model).__name__)


def plot_robustness(curves: Sequence[RobustnessCurve], *, baseline: RobustnessCurve | None = None,
                    xlabel: str = "corruption level", ax=None, title: str | None = None, chance=None):
    """Accuracy against corruption level for each curve, RR (and ER against ``baseline``) in the legend."""
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_robustness needs at least one curve")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.4))
    for curve in curves:
        label = f"{curve.name}  RR={curve.relative_robustness():.3f}"
        if baseline is not None and curve is not baseline:
            label += f"  ER={curve.effective_robustness(baseline):+.3f}"
        from mmcourse.plots import MODEL_COLOURS

        ax.plot(curve.levels, curve.accuracy, marker="o", ms=4, label=label,
                ls="--" if curve is baseline else "-", color=MODEL_COLOURS.get(curve.name))
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # off the data
    ax.set_title(title or "robustness curves")
    ax.figure.tight_layout()
    return ax.figure
