"""Attention explorer (chapter 04): the weights of every layer and head, and where they come from.

For query ``i`` and key ``j`` of one head, scaled dot-product attention computes

    e_ij = q_i · k_j / sqrt(d_k),      α_ij = exp(e_ij) / Σ_j' exp(e_ij'),

(masked keys get ``α_ij = 0``). The explorer runs the model once, records ``e`` and ``α`` of
every ``MultiHeadAttention`` inside it (through forward hooks: the model is not changed), and
then shows, for the chosen example, layer, head and query: the attention map ``α``, the dot
products ``e_i·`` of the query with every key, and the resulting weights ``α_i·``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mmcourse.models.attention import MultiHeadAttention
from mmcourse.tensors import to_numpy
from mmcourse.widgets.base import make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer


def _first_n(inputs, n: int):
    """The first ``n`` examples of a tensor or of every tensor in a batch dict."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:n]
    if isinstance(inputs, Mapping):
        return {k: (v[:n] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in inputs.items()}
    raise TypeError(f"inputs must be a tensor or a batch dict of tensors, got {type(inputs).__name__}")


@torch.no_grad()
def record_attention(model: nn.Module, inputs) -> dict[str, dict[str, np.ndarray]]:
    """Run ``model(inputs)`` once (eval mode) and return, for every ``MultiHeadAttention`` inside
    it, keyed by its module name: ``{"scores": e (B, heads, L_q, L_k), "weights": α (same),
    "allowed": (same) bool}`` as NumPy arrays. ``scores`` are ``q·k / sqrt(d_k)`` before masking;
    ``weights`` are exactly what the module used."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} contains no MultiHeadAttention to explore")
    records: dict[str, dict[str, np.ndarray]] = {}

    def hook(name):
        def capture(module, args, kwargs, output):
            x = args[0]
            context = args[1] if len(args) > 1 else kwargs.get("context")
            context = x if context is None else context
            q = module._split(module.q_proj(x))
            k = module._split(module.k_proj(context))
            scores = q @ k.transpose(-2, -1) / math.sqrt(module.head_dim)
            weights = output[1]
            records[name] = {"scores": to_numpy(scores.float()),
                             "weights": to_numpy(weights.float())}
        return capture

    handles = [m.register_forward_hook(hook(name), with_kwargs=True) for name, m in layers]
    was_training = model.training
    model.eval()
    try:
        model(inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for rec in records.values():
        # a key is masked out where its weight is exactly 0 although softmax(e) is positive
        soft = np.exp(rec["scores"] - rec["scores"].max(-1, keepdims=True))
        rec["allowed"] = ~((rec["weights"] == 0) & (soft > 0))
    return records


def attention_explorer(model: nn.Module, inputs, *, labels: Sequence[Sequence[str]] | None = None,
                       max_examples: int = 16) -> Explorer:
    """Attention maps of ``model`` on ``inputs`` (a tensor or a batch dict; the first
    ``max_examples`` are used), for a chosen example, layer, head and query position.

    ``labels[b]``: the tokens of example ``b`` (e.g. the words of a caption), used as tick labels
    of self-attention maps, which are cropped to ``len(labels[b])`` positions (padding hidden).
    """
    import ipywidgets as widgets
    from matplotlib.patches import Rectangle

    inputs = _first_n(inputs, max_examples)
    records = record_attention(model, inputs)
    names = list(records)
    first = records[names[0]]["weights"]
    n_examples, heads = first.shape[0], first.shape[1]
    max_q = max(r["weights"].shape[2] for r in records.values())
    if labels is not None and len(labels) < n_examples:
        raise ValueError(f"labels has {len(labels)} entries for {n_examples} examples")

    controls = {
        "example": widgets.IntSlider(0, 0, n_examples - 1, description="example", **slider_style()),
        "layer": widgets.Dropdown(options=names, value=names[0], description="layer",
                                  layout=widgets.Layout(width="280px")),
        "head": widgets.IntSlider(0, 0, heads - 1, description="head", **slider_style()),
        # the last query position (clamped to each sequence) attends over the whole sequence
        "query": widgets.IntSlider(max_q - 1, 0, max_q - 1, description="query i", **slider_style()),
    }
    fig = new_figure(11.0, 3.6)
    ax_map, ax_dot, ax_w = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.3, 1.3]})
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.86, wspace=0.3)
    # artists made once for the longest sequence; an update changes data, extents and visibility
    max_k = max(r["weights"].shape[3] for r in records.values())
    heatmap = ax_map.imshow(np.zeros((1, 1)), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    row_box = ax_map.add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="red", lw=1.5))
    ax_map.set_ylabel("query i")
    ax_map.set_xlabel("key j")
    fig.colorbar(heatmap, ax=ax_map, fraction=0.05, pad=0.03).set_label("weight α_ij", fontsize=8)
    map_title = ax_map.set_title("", fontsize=10)
    bars = {}
    for ax in (ax_dot, ax_w):
        bars[ax] = ax.bar(np.arange(max_k), np.zeros(max_k))
        ax.axhline(0, color="black", lw=0.6)
    ax_w.set_ylim(0, 1)

    def draw(fig, example: int, layer: str, head: int, query: int) -> dict:
        rec = records[layer]
        head = min(head, rec["weights"].shape[1] - 1)
        w = rec["weights"][example, head]
        e = rec["scores"][example, head]
        allowed = rec["allowed"][example, head]
        l_q, l_k = w.shape
        words = list(labels[example]) if labels is not None else None
        if words is not None and l_q == l_k:          # self-attention over a labelled sequence
            l_q = l_k = min(l_k, len(words))
            w, e, allowed = w[:l_q, :l_k], e[:l_q, :l_k], allowed[:l_q, :l_k]
        q_labels = words[:l_q] if words is not None and l_q == l_k else [str(i) for i in range(l_q)]
        k_labels = words[:l_k] if words is not None and l_q == l_k else [str(j) for j in range(l_k)]
        query = min(query, l_q - 1)

        heatmap.set_data(w)
        heatmap.set_extent((-0.5, l_k - 0.5, l_q - 0.5, -0.5))
        row_box.set_bounds(-0.5, query - 0.5, l_k, 1)
        step_q, step_k = max(1, l_q // 12), max(1, l_k // 12)
        ax_map.set_yticks(range(0, l_q, step_q), q_labels[::step_q], fontsize=7)
        ax_map.set_xticks(range(0, l_k, step_k), k_labels[::step_k], fontsize=7, rotation=90)
        map_title.set_text(f"α = softmax(e), head {head}")
        for ax, values, title in ((ax_dot, e[query], f"e_ij = q_i·k_j / √d_k  (query {query})"),
                                  (ax_w, w[query], f"α_ij (row {query} of the map)")):
            for j, bar in enumerate(bars[ax]):
                bar.set_visible(j < l_k)
                if j < l_k:
                    bar.set_height(values[j])
                    bar.set_color("tab:blue" if allowed[query, j] else "lightgray")
            ax.set_xlim(-0.5, l_k - 0.5)
            ax.set_xticks(range(0, l_k, step_k), k_labels[::step_k], fontsize=7, rotation=90)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("key j" + ("  (grey: masked)" if not allowed[query].all() else ""))
        low, high = min(float(e[query].min()), 0.0), max(float(e[query].max()), 0.0)
        pad = 0.1 * (high - low) or 0.1
        ax_dot.set_ylim(low - pad, high + pad)
        top = int(np.argmax(w[query]))
        q_name, k_name = html.escape(q_labels[query]), html.escape(k_labels[top])
        return {"weights": w, "scores": e, "row": w[query], "dots": e[query], "query": query,
                "shape": (l_q, l_k),
                "html": f"example {example}, {layer}, head {head}: query <b>{q_name}</b> attends most "
                        f"to key <b>{k_name}</b> (α = {w[query, top]:.2f}); the row sums to "
                        f"{w[query].sum():.3f}"}

    return make_explorer("attention", controls, draw, fig,
                    title="Attention: α = softmax(q·k / √d_k) per example, layer, head and query")
