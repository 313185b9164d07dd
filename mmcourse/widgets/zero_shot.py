"""Zero-shot explorer (chapter 11): a scene, prompts you type, the similarity bars and the decision.

The image ``x`` and every prompt ``t`` are embedded by a pretrained dual encoder onto the unit
sphere; each prompt gets the score ``s(x, t) = u_x · v_t`` and the decision is the best one,

    ŷ(x) = argmax_t u_x · v_t,        P(t | x) = softmax_t(s · u_x · v_t)   (s the model's scale).

Type prompts separated by commas (or pick a preset): a word outside the Shapes vocabulary
becomes ``<unk>``, which the model has never been trained on, and the bars show what that does.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmcourse.models.zero_shot import ATTRIBUTES, encode_prompts, zero_shot_scores
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

PRESETS = {
    "colours": ", ".join(f"a {c}" for c in ATTRIBUTES["colour"]),
    "kinds": ", ".join(f"a {k}" for k in ATTRIBUTES["kind"]),
    "full captions": "a small green triangle, a large green triangle, a small red triangle, "
                     "a small green square",
    "unknown words": "a photo of a green shape, a photo of a red shape, a green triangle",
}


def parse_prompts(text: str) -> list[str]:
    """Comma-separated prompts, stripped; empty pieces dropped."""
    if not isinstance(text, str):
        raise TypeError(f"prompts are a comma-separated str, got {type(text).__name__}")
    return [p.strip() for p in text.split(",") if p.strip()]


def prompt_scores(model, image: torch.Tensor, prompts: list[str]) -> dict:
    """For one image ``(3, S, S)``: each prompt's cosine ``u · v``, its softmax probability at the
    model's scale and the decision (the index of the best prompt); unknown words listed."""
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.data.text import tokenize

    if not prompts:
        raise ValueError("type at least one prompt (comma-separated)")
    vocab = shapes_vocab()
    with torch.no_grad():
        model.eval()
        u = model.encode_image(image[None].float()).float()
        sims = zero_shot_scores(u, encode_prompts(model, prompts, vocab))[0]
        probs = torch.softmax(float(model.scale) * sims, dim=0)
    unknown = sorted({w for p in prompts for w in tokenize(p) if w not in vocab})
    return {"similarities": sims.tolist(), "probabilities": probs.tolist(),
            "decision": int(sims.argmax()), "unknown": unknown}


def zero_shot_explorer(model, split, *, n: int = 200) -> Explorer:
    """Explore zero-shot decisions of a Shapes ``DualEncoder`` on the first ``n`` scenes of
    ``split`` (key ``image``; meta ``caption`` shown as the truth). Controls: the scene, a
    preset and a text box of comma-separated prompts."""
    import ipywidgets as widgets

    n = min(n, len(split))
    images = split.tensors["image"][:n]
    captions = list(split.meta.get("caption", [""] * n))[:n]
    controls = {
        "scene": widgets.IntSlider(0, 0, n - 1, description="scene #", **slider_style()),
        "preset": widgets.Dropdown(options=list(PRESETS), value="colours", description="preset"),
        "prompts": widgets.Text(PRESETS["colours"], description="prompts",
                                continuous_update=False,
                                layout=widgets.Layout(width="60%")),
    }

    def on_preset(change) -> None:
        controls["prompts"].value = PRESETS[change["new"]]

    controls["preset"].observe(on_preset, names="value")

    fig = new_figure(10.0, 3.4)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.6], wspace=0.35, left=0.02, right=0.97,
                          top=0.86, bottom=0.17)
    ax_img, ax_bar = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    img0, cmap = image_for_imshow(images[0])
    art = ax_img.imshow(img0, cmap=cmap)
    title = ax_img.set_title("", fontsize=8)

    def draw(fig, scene: int, preset: str, prompts: str) -> dict:
        art.set_data(image_for_imshow(images[scene])[0])
        title.set_text(captions[scene])
        ax_bar.clear()
        texts = parse_prompts(prompts)
        if not texts:
            ax_bar.set_axis_off()
            return {"prompts": [], "html": "Type at least one prompt, separated by commas."}
        ax_bar.set_axis_on()
        state = prompt_scores(model, images[scene], texts)
        sims = np.asarray(state["similarities"])
        best = state["decision"]
        colours = ["tab:green" if i == best else "tab:gray" for i in range(len(texts))]
        y = np.arange(len(texts))[::-1]
        ax_bar.barh(y, sims, color=colours)
        ax_bar.set_yticks(y, [t if len(t) < 34 else t[:31] + "..." for t in texts], fontsize=8)
        ax_bar.set_xlim(-1, 1)
        ax_bar.axvline(0, color="black", lw=0.8)
        ax_bar.set_xlabel("cosine similarity u · v (image, prompt)")
        ax_bar.set_title(f"decision: '{texts[best]}'  (P = {state['probabilities'][best]:.2f})",
                         fontsize=10)
        unknown = html.escape(", ".join(state["unknown"]))
        note = f" Words the model never saw (read as &lt;unk&gt;): {unknown}." if unknown else ""
        return {**state, "prompts": texts,
                "html": f"scene #{scene}: the true caption is '{html.escape(captions[scene])}'. The decision "
                        f"is the prompt with the highest cosine similarity, "
                        f"'{html.escape(texts[best])}'.{note}"}

    return make_explorer("zero-shot", controls, draw, fig,
                         title="Zero-shot: ŷ(x) = argmax over prompts t of cos(u_x, v_t)")
