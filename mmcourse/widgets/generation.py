"""Text-to-image explorer (chapter 14): a caption, a temperature and a guidance scale → samples
and the judge's verdict on each.

The generator samples image tokens ``c_t ~ softmax(ℓ_w / τ)``, ``ℓ_w = ℓ_u + w (ℓ_c − ℓ_u)``
(classifier-free guidance ``w``, temperature ``τ``), the tokenizer paints them, and the attribute
judge reads each picture back: does it show the caption's colours and kinds (and sizes, and the
relation)? A caption can be chosen from a list or typed (Shapes grammar, e.g. "a small red
circle left of a large blue square"). Samples are cached per setting.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmcourse.data.text import Vocab
from mmcourse.tensors import model_device
from mmcourse.widgets.base import image_for_imshow, make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer


def generation_explorer(generator, tokenizer, judge, vocab: Vocab, captions: Sequence[str], *,
                        samples: int = 6, seed: int = 0, plausibility: float = 0.0) -> Explorer:
    """Explore ``TextToImage`` sampling: pick one of ``captions`` or type one, move the
    temperature ``τ`` and the guidance ``w``; see ``samples`` images and the judge's verdicts.
    ``plausibility``: guidance's plausibility threshold ``α`` (fixed; 0: plain guidance)."""
    import ipywidgets as widgets

    from mmcourse.judges import judge_report
    from mmcourse.models.captioning import encode_captions

    if not captions:
        raise ValueError("generation_explorer needs at least one caption to offer")
    dev = model_device(generator)
    generator.eval()
    cache: dict[tuple, tuple[torch.Tensor, dict]] = {}

    def run(caption: str, temperature: float, guidance: float, draw_seed: int):
        key = (caption, round(temperature, 3), round(guidance, 3), draw_seed)
        if key not in cache:
            ids = encode_captions(caption, vocab)
            if ids.shape[1] > generator.text_len:
                raise ValueError(f"caption too long: {ids.shape[1]} tokens, the generator reads "
                                 f"{generator.text_len}")
            ids = torch.nn.functional.pad(ids, (0, generator.text_len - ids.shape[1])).to(dev)
            gen = torch.Generator(device=dev).manual_seed(draw_seed)
            codes = generator.generate(ids.expand(samples, -1), guidance=guidance,
                                       temperature=temperature, generator=gen, plausibility=plausibility)
            with torch.no_grad():
                images = tokenizer.decode(codes).cpu()
            cache[key] = (images, judge_report(judge, images, [caption] * samples))
        return cache[key]

    controls = {
        "caption": widgets.Dropdown(options=list(captions), value=captions[0], description="caption"),
        "typed": widgets.Text(value="", placeholder="or type a caption", description="typed",
                              continuous_update=False),
        "temperature": widgets.FloatSlider(1.0, min=0.0, max=2.0, step=0.1, description="temperature τ",
                                           **slider_style()),
        "guidance": widgets.FloatSlider(3.0, min=0.0, max=6.0, step=0.5, description="guidance w",
                                        **slider_style()),
        "seed": widgets.IntSlider(seed, 0, 20, description="seed", **slider_style()),
    }
    fig = new_figure(1.6 * samples, 2.0)
    axes = fig.subplots(1, samples)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.78, wspace=0.06)

    def draw(fig, caption: str, typed: str, temperature: float, guidance: float, seed: int) -> dict:
        text = typed.strip() or caption
        try:
            images, report = run(text, temperature, guidance, seed)
        except ValueError as err:
            for ax in axes:
                ax.clear()
                ax.axis("off")
            return {"caption": text, "error": str(err), "html": f"<b>not a caption I can draw</b>: "
                    f"{html.escape(str(err))}"}
        for ax, img, v in zip(axes, images, report["verdicts"]):
            ax.clear()
            ax.imshow(image_for_imshow(img)[0])
            ax.set_xticks([])
            ax.set_yticks([])
            ok = v["colour_kind"] and v["relation"] is not False
            ax.set_title("✓ matches" if ok else "✗ " + ("relation" if v["colour_kind"] else "objects"),
                         fontsize=9, color="tab:green" if ok else "tab:red")
        lines = [f"<b>{html.escape(text)}</b> — τ = {temperature:.1f}, w = {guidance:.1f}"
                 + (f", plausibility α = {plausibility:g}" if plausibility else ""),
                 f"judge: colour and kind right in {report['colour_kind']:.0%} of the samples, sizes "
                 f"{report['size']:.0%}" + ("" if np.isnan(report["relation"])
                                            else f", relation {report['relation']:.0%}"),
                 "the judge reads: " + "; ".join(f"“{html.escape(v['read'])}”" for v in report["verdicts"])]
        return {"caption": text, "colour_kind": report["colour_kind"], "size": report["size"],
                "relation": report["relation"], "read": [v["read"] for v in report["verdicts"]],
                "html": "<br>".join(lines)}

    return make_explorer("generation", controls, draw, fig,
                         title="Text to image: caption, temperature τ and guidance w → samples, judged")
