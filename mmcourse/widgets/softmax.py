"""Softmax explorer (chapter 05): how scores and temperature make ``P(y | x1, x2)``.

A joint classifier scores every class, ``s(y, x1, x2)``, and turns the scores into

    P(y | x1, x2) = exp(s(y, x1, x2) / τ) / Σ_y' exp(s(y', x1, x2) / τ).

The temperature ``τ`` does not change the ranking of the classes, only how peaked the
distribution is (``τ → 0``: one-hot on the best class; ``τ → ∞``: uniform). Shifting one class's
score by ``Δ`` multiplies its unnormalised probability by ``exp(Δ / τ)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmcourse.tensors import to_numpy
from mmcourse.widgets.base import make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer


def softmax_with_temperature(scores, temperature: float = 1.0, shift: Sequence[float] | None = None
                             ) -> np.ndarray:
    """``softmax((s + Δ) / τ)`` over the last axis; ``shift`` is ``Δ`` (default 0)."""
    s = np.asarray(scores, dtype=np.float64)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if shift is not None:
        s = s + np.asarray(shift, dtype=np.float64)
    z = s / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy_bits(p: np.ndarray) -> float:
    """``H(P) = -Σ_y P(y) log2 P(y)`` in bits (0 for one-hot, log2 C for uniform)."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def _scores_from(scores, data, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """``(N, C)`` scores and optional labels from an array or from a model and a split."""
    if hasattr(scores, "parameters"):  # a model: run it over the data once
        if data is None:
            raise ValueError("softmax_explorer(model, data): pass the data split to score")
        from mmcourse.train import evaluate

        out = evaluate(scores, data, batch_size=batch_size, return_outputs=True)
        return to_numpy(out["logits"]), to_numpy(out["targets"])
    s = to_numpy(scores).astype(np.float64)
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (C,) or (N, C) with C >= 2 classes, got shape {s.shape}")
    return s, None


def softmax_explorer(scores, data=None, *, labels=None, class_names: Sequence[str] | None = None,
                     max_examples: int = 200) -> Explorer:
    """Bars of the scores ``s(y, x1, x2)`` and of ``P(y | x1, x2) = softmax(s / τ)``.

    ``scores``: one score vector ``(C,)``, a matrix ``(N, C)`` (one row per example), or a trained
    classifier, in which case ``data`` (a split) is scored once here. ``labels`` (``(N,)``,
    taken from ``data`` with a model) marks the true class. Controls: the example, the
    temperature ``τ``, and a shift ``Δ`` added to one chosen class's score.
    """
    import ipywidgets as widgets

    s, y = _scores_from(scores, data)
    if labels is not None:
        y = to_numpy(labels).astype(np.int64)
        if len(y) != len(s):
            raise ValueError(f"labels has {len(y)} entries for {len(s)} score rows")
    s, y = s[:max_examples], (None if y is None else y[:max_examples])
    n, c = s.shape
    names = list(class_names) if class_names is not None else [str(k) for k in range(c)]
    if len(names) != c:
        raise ValueError(f"class_names has {len(names)} names for {c} classes")

    controls = {
        "example": widgets.IntSlider(0, 0, max(n - 1, 0), description="example",
                                     disabled=n == 1, **slider_style()),
        "temperature": widgets.FloatLogSlider(1.0, base=10, min=-1.3, max=1.3, step=0.05,
                                              description="temperature τ", readout_format=".2f",
                                              **slider_style()),
        "shift_class": widgets.Dropdown(options=[(f"class {nm}", k) for k, nm in enumerate(names)],
                                        value=0, description="shift",
                                        layout=widgets.Layout(width="170px")),
        "shift": widgets.FloatSlider(0.0, min=-5.0, max=5.0, step=0.25, description="Δ score",
                                     **slider_style()),
    }
    fig = new_figure(9.0, 3.0)
    ax_s, ax_p = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.88, wspace=0.22)
    x = np.arange(c)
    # the artists are made once; an interaction only changes their heights, colours and texts
    bars_s = ax_s.bar(x, np.zeros(c))
    bars_p = ax_p.bar(x, np.zeros(c))
    ax_s.axhline(0, color="black", lw=0.6)
    for ax in (ax_s, ax_p):
        ax.set_xticks(x, names)
    ax_p.set_ylim(0, 1)
    low, high = float(s.min()) - 5.5, float(s.max()) + 5.5     # room for Δ = ±5
    ax_s.set_ylim(min(low, -0.5), high)
    title_s = ax_s.set_title("", fontsize=10)
    title_p = ax_p.set_title("", fontsize=10)
    note = ax_p.text(0.98, 0.95, "", ha="right", va="top", transform=ax_p.transAxes, fontsize=9)

    def draw(fig, example: int, temperature: float, shift_class: int, shift: float) -> dict:
        delta = np.zeros(c)
        delta[shift_class] = shift
        row = s[example] + delta
        p = softmax_with_temperature(row, temperature)
        truth = None if y is None else int(y[example])
        for k in range(c):
            colour = "tab:green" if k == truth else "tab:blue"
            for bars, value in ((bars_s, row[k]), (bars_p, p[k])):
                bars[k].set_height(value)
                bars[k].set_color(colour)
        title_s.set_text("scores s(y, x1, x2)" + (f"   Δ = {shift:+.2f} on class {names[shift_class]}"
                                                 if shift else ""))
        title_p.set_text(f"P(y | x1, x2) = softmax(s / τ),  τ = {temperature:.2f}")
        h = entropy_bits(p)
        note.set_text(f"max P = {p.max():.3f}\nH = {h:.2f} bits")
        best = int(p.argmax())
        right = best < c / 2                                  # keep the note clear of the tallest bar
        note.set_position((0.98 if right else 0.02, 0.95))
        note.set_horizontalalignment("right" if right else "left")
        told = "" if truth is None else f"; the true class is <b>{names[truth]}</b> (green)"
        return {"probabilities": p, "scores": row, "entropy_bits": h, "predicted": best,
                "html": f"example {example}: predicted class <b>{names[best]}</b> with "
                        f"P = {p[best]:.3f}{told}"}

    return make_explorer("softmax", controls, draw, fig,
                         title="Softmax: scores and temperature → P(y | x1, x2)")
