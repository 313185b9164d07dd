"""Decoding explorer (chapter 08): greedy, beam search and sampling side by side.

A captioner gives ``log p(x | I) = Σ_t log p(x_t | x_<t, I)``. The explorer decodes the chosen
image with

* greedy: ``x_t = argmax p(· | x_<t, I)``;
* beam search of width ``K``: the ``K`` best prefixes by ``log p`` at every step;
* sampling: ``x_t ~ softmax(filter(logits / τ))`` with temperature ``τ`` and nucleus ``top-p``
  (a seeded draw per image, so it is reproducible),

and shows the caption with every token's ``log p(x_t | x_<t, I)``, the sum, and the attention
map ``α_t`` over the image regions for the chosen word. Decodings are cached: revisiting a
setting costs only a redraw.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmcourse.data.text import Vocab
from mmcourse.tensors import model_device, to_numpy
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

METHODS = {"greedy": "greedy", "beam search": "beam", "sampling": "sample"}


class DecodingCache:
    """Decodes one image at a time with the captioner and remembers every result."""

    def __init__(self, model, images: torch.Tensor, vocab: Vocab, seed: int = 0,
                 beams: range = range(1, 9)):
        self.model, self.images, self.vocab, self.seed = model, images, vocab, seed
        self.dev = model_device(model)
        self.results: dict[tuple, dict] = {}
        model.eval()
        x = images.to(self.dev)
        greedy = model.greedy(x)                               # every image at once
        for i in range(len(images)):
            self.results[(i, "greedy")] = self._unpack(greedy, i)
        for k in beams:                                        # and every beam width
            out = model.beam_search(x, beam=k)
            for i in range(len(images)):
                self.results[(i, "beam", k)] = self._unpack(out, i)

    def _unpack(self, out, row: int) -> dict:
        ids = out.tokens[row, 1:].tolist()
        n = len(ids)
        if self.vocab.eos_id in ids:
            n = ids.index(self.vocab.eos_id) + 1               # the words and <eos>
        words = [self.vocab.itos[t] for t in ids[:n]]
        return {"words": words, "caption": self.vocab.decode(out.tokens[row].tolist()),
                "token_log_probs": to_numpy(out.token_log_probs[row, :n].float()),
                "log_prob": float(out.log_prob[row]),
                "attention": to_numpy(out.attention[row, :n].float())}

    def get(self, image: int, method: str, beam: int, temperature: float, top_p: float) -> dict:
        key = {"greedy": (image, "greedy"), "beam": (image, "beam", beam),
               "sample": (image, "sample", round(temperature, 4), round(top_p, 4))}[method]
        if key not in self.results:
            x = self.images[image:image + 1].to(self.dev)
            if method == "beam":
                out = self.model.beam_search(x, beam=beam)
            else:
                gen = torch.Generator(device=self.dev).manual_seed(self.seed + image)
                out = self.model.sample(x, temperature=temperature, top_p=top_p, generator=gen)
            self.results[key] = self._unpack(out, 0)
        return self.results[key]


def decoding_explorer(model, images, *, vocab: Vocab | None = None, references=None,
                      max_images: int = 32, seed: int = 0) -> Explorer:
    """Explore the decoding of a trained ``Captioner`` on ``images`` ``(N, 3, S, S)`` (or a Shapes
    split, whose ``meta["caption"]`` become the references). The greedy captions of the first
    ``max_images`` images are decoded here, the others on demand and cached."""
    import ipywidgets as widgets
    from matplotlib.colors import LinearSegmentedColormap

    if hasattr(images, "tensors"):
        references = list(images.meta.get("caption", [])) if references is None else references
        images = images.tensors["image"]
    images = images[:max_images]
    vocab = model._vocab(vocab)
    if references is not None and len(references) < len(images):
        raise ValueError(f"got {len(references)} references for {len(images)} images")
    cache = DecodingCache(model, images, vocab, seed)
    gh, gw = model.encoder.grid_size
    size = images.shape[-1]

    controls = {
        "image": widgets.IntSlider(0, 0, len(images) - 1, description="image", **slider_style()),
        "method": widgets.ToggleButtons(options=list(METHODS.items()), value="greedy",
                                        description="method"),
        "beam": widgets.IntSlider(3, 1, 8, description="beam width K", **slider_style()),
        "temperature": widgets.FloatSlider(1.0, min=0.1, max=2.0, step=0.1, description="temperature τ",
                                           **slider_style()),
        "top_p": widgets.FloatSlider(0.9, min=0.1, max=1.0, step=0.05, description="top-p",
                                     **slider_style()),
        "word": widgets.IntSlider(0, 0, 19, description="word t", **slider_style()),
    }
    fig = new_figure(10.0, 3.4)
    ax_img, ax_lp = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.4]})
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.26, top=0.86, wspace=0.12)
    blank, cmap = image_for_imshow(images[0])
    extent = (-0.5, size - 0.5, size - 0.5, -0.5)
    picture = ax_img.imshow(blank, cmap=cmap, extent=extent)
    # α_t drawn over the image: attended regions stay bright, the rest is dimmed
    dim = LinearSegmentedColormap.from_list("dim", [(0, 0, 0, 0.85), (0, 0, 0, 0.0)])
    overlay = ax_img.imshow(np.zeros((gh, gw)), cmap=dim, vmin=0, vmax=1, extent=extent,
                            interpolation="bilinear")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    img_title = ax_img.set_title("", fontsize=10)

    def draw(fig, image: int, method: str, beam: int, temperature: float, top_p: float, word: int) -> dict:
        res = cache.get(image, method, beam, temperature, top_p)
        greedy = cache.get(image, "greedy", beam, temperature, top_p)
        words, lps = res["words"], res["token_log_probs"]
        t = min(word, len(words) - 1)
        picture.set_data(image_for_imshow(images[image])[0])
        alpha = res["attention"][t].reshape(gh, gw)
        overlay.set_data(alpha)
        overlay.set_clim(0, max(float(alpha.max()), 1e-6))
        img_title.set_text(f"α_{t + 1} for “{words[t]}”")
        ax_lp.clear()
        colours = ["tab:orange" if k == t else "tab:blue" for k in range(len(words))]
        ax_lp.bar(np.arange(len(words)), lps, color=colours)
        ax_lp.set_xticks(np.arange(len(words)), words, rotation=45, ha="right", fontsize=8)
        ax_lp.set_ylim(min(float(lps.min()) * 1.15, -0.5), 0)
        ax_lp.set_ylabel("log p(x_t | x_<t, I)")
        label = {"greedy": "greedy", "beam": f"beam K={beam}",
                 "sample": f"sampling τ={temperature:.1f}, top-p={top_p:.2f}"}[method]
        ax_lp.set_title(f"{label}: log p(x | I) = {res['log_prob']:.2f}", fontsize=10)
        rows = [(label, res), ("greedy", greedy)] if method != "greedy" else [(label, res)]
        lines = [f"image {image}"] + [
            f"<b>{html.escape(name)}</b>: “{html.escape(r['caption'])}” (log p = {r['log_prob']:.2f})"
            for name, r in rows]
        if references is not None:
            lines.append(f"<b>reference</b>: “{html.escape(references[image])}”")
        return {"caption": res["caption"], "words": words, "token_log_probs": lps,
                "log_prob": res["log_prob"], "attention": alpha, "word": t,
                "greedy_log_prob": greedy["log_prob"], "html": "<br>".join(lines)}

    return make_explorer("decoding", controls, draw, fig,
                    title="Decoding: greedy vs beam search vs sampling, with log p and attention per word")
