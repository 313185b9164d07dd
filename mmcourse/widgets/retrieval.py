"""Retrieval explorer (chapter 07): a query, a threshold θ, and what comes back.

With unit embeddings from a dual encoder, a query ``q`` retrieves every database item whose
cosine similarity exceeds the threshold:

    R(q, D) = {d ∈ D : sim(q, d) > θ}.

Pooled over all queries, with ``Rel(q)`` the items with the same caption as ``q``'s scene,
``precision = Σ_q |R ∩ Rel| / Σ_q |R|`` and ``recall = Σ_q |R ∩ Rel| / Σ_q |Rel|``: raising θ
trades recall for precision, and the point slides along the precision/recall curve.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from mmcourse import metrics
from mmcourse.models.retrieval import embed_dataset, retrieve
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

DIRECTIONS = {"caption → images": "t2i", "image → captions": "i2t"}
THUMBS = 8


def best_f1_threshold(curve) -> float:
    """The θ of a ``precision_recall_curve_at_thresholds`` result with the best pooled
    ``F1 = 2PR / (P + R)`` (the first one on ties)."""
    p, r = np.asarray(curve.precision), np.asarray(curve.recall)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return float(np.asarray(curve.theta)[int(np.argmax(f1))])


def retrieval_explorer(model, split, *, n: int = 200, thetas: int = 201,
                       theta: float | None = None) -> Explorer:
    """Explore ``R(q, D)`` for a trained ``DualEncoder`` on the first ``n`` scenes of a Shapes
    ``split`` (keys ``image``, ``tokens``, ``label``; meta ``caption``). Every embedding, the
    similarity matrices and the pooled P/R curves are computed here, once.

    Controls: the direction (a caption searching images, or an image searching captions), the
    query, and θ (starting at ``theta``, by default the caption → image θ with the best pooled
    F1). The figure shows the query, the (up to 8) most similar retrieved items, green
    when relevant and red when not, and both the pooled and this query's P/R point on the curve.
    """
    import ipywidgets as widgets

    sub = split.subset(slice(0, n))
    image_emb, text_emb = embed_dataset(model, sub)
    labels = sub.tensors["label"].numpy()
    relevant = labels[:, None] == labels[None, :]
    images = sub.tensors["image"]
    captions = list(sub.meta["caption"])
    grid = np.linspace(-1.0, 1.0, thetas)
    sims = {"t2i": (text_emb @ image_emb.T).numpy(), "i2t": (image_emb @ text_emb.T).numpy()}
    curves = {k: metrics.precision_recall_curve_at_thresholds(s, relevant, grid) for k, s in sims.items()}
    embeddings = {"t2i": (text_emb, image_emb), "i2t": (image_emb, text_emb)}

    controls = {
        "direction": widgets.ToggleButtons(options=list(DIRECTIONS.items()), value="t2i",
                                           description="query"),
        "query": widgets.IntSlider(0, 0, len(sub) - 1, description="query #", **slider_style()),
        "theta": widgets.FloatSlider(best_f1_threshold(curves["t2i"]) if theta is None else theta,
                                     min=-1.0, max=1.0, step=0.01, description="θ",
                                     readout_format=".2f", **slider_style()),
    }
    fig = new_figure(11.0, 3.8)
    gs = fig.add_gridspec(2, 8, width_ratios=[1.4, 1, 1, 1, 1, 0.25, 2.3, 0.05], wspace=0.15,
                          hspace=0.45, left=0.01, right=0.99, top=0.86, bottom=0.13)
    ax_q = fig.add_subplot(gs[:, 0])
    thumbs = [fig.add_subplot(gs[r, 1 + c]) for r in range(2) for c in range(4)]
    ax_pr = fig.add_subplot(gs[:, 6])
    ax_pr.set_xlim(0, 1.02)
    ax_pr.set_ylim(0, 1.02)
    ax_pr.set_xlabel("recall")
    ax_pr.set_ylabel("precision")
    (curve_line,) = ax_pr.plot([], [], color="tab:blue", lw=1.5, label="pooled curve")
    (pooled_dot,) = ax_pr.plot([], [], "o", color="black", ms=8, label="pooled at θ")
    (query_dot,) = ax_pr.plot([], [], "*", color="tab:red", ms=12, label="this query at θ")
    ax_pr.legend(loc="lower left", fontsize=8)
    pr_title = ax_pr.set_title("", fontsize=10)

    # each panel gets its image and its text artist once; an update swaps data and visibility
    blank, _ = image_for_imshow(images[0])
    panels = []
    for ax in (ax_q, *thumbs):
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        art = ax.imshow(np.zeros_like(blank), cmap=None if blank.ndim == 3 else "gray")
        txt = ax.text(0.5, 0.5, "", ha="center", va="center", fontsize=9 if ax is ax_q else 7,
                      transform=ax.transAxes)
        panels.append((ax, art, txt, ax.set_title("", fontsize=8)))

    def show_item(panel, index: int | None, kind: str, sim: float | None = None,
                  good: bool | None = None) -> None:
        ax, art, txt, title = panel
        ax.set_visible(index is not None)
        if index is None:
            return
        art.set_visible(kind == "image")
        txt.set_visible(kind == "text")
        if kind == "image":
            art.set_data(image_for_imshow(images[index])[0])
        else:
            txt.set_text(textwrap.fill(captions[index], 16))
        colour = "black" if sim is None else ("tab:green" if good else "tab:red")
        title.set_text("query" if sim is None else f"{sim:.2f}")
        title.set_color(colour)
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(1 if sim is None else 2.5)

    def draw(fig, direction: str, query: int, theta: float) -> dict:
        q_emb, db_emb = embeddings[direction]
        found = retrieve(q_emb[query], db_emb, float(theta))
        idx = found.indices.tolist()
        hits = [bool(relevant[query, j]) for j in idx]
        q_kind, db_kind = ("text", "image") if direction == "t2i" else ("image", "text")
        show_item(panels[0], query, q_kind)
        for k, panel in enumerate(panels[1:]):
            if k < len(idx):
                show_item(panel, idx[k], db_kind, float(found.similarities[k]), hits[k])
            else:
                show_item(panel, None, db_kind)
        curve = curves[direction]
        curve_line.set_data(curve.recall, curve.precision)
        pooled = metrics.precision_recall_at_threshold(sims[direction], relevant, float(theta))
        mine = metrics.precision_recall_at_threshold(sims[direction][query:query + 1],
                                                     relevant[query:query + 1], float(theta))
        pooled_dot.set_data([pooled.recall], [pooled.precision])
        query_dot.set_data([mine.recall], [mine.precision])
        pr_title.set_text(f"θ = {theta:.2f}: P = {pooled.precision:.2f}, R = {pooled.recall:.2f} (pooled)")
        n_rel = int(relevant[query].sum())
        return {"retrieved": idx, "relevant_retrieved": int(sum(hits)), "pooled": pooled, "query_pr": mine,
                "html": f"query #{query}: |R(q, D)| = {len(idx)} of {len(sub)} items above θ = {theta:.2f}; "
                        f"{sum(hits)} of the {n_rel} relevant ones (same caption) are among them. "
                        f"This query: P = {mine.precision:.2f}, R = {mine.recall:.2f}. "
                        f"Showing the top {min(len(idx), THUMBS)}."}

    return make_explorer("retrieval", controls, draw, fig,
                    title="Retrieval: R(q, D) = {d : sim(q, d) > θ} and the precision/recall trade-off")

