"""Alignment explorer (chapter 12): an utterance, its CTC posteriors, the decoded string and the
forced alignment against the true boundaries.

For the chosen utterance ``x`` of a spoken-digit-strings split and a trained CTC recogniser
``y_t(k) = p(k | x, t)``, it shows

* the log-mel spectrogram, with the true digit boundaries (dashed, white) and the boundaries a
  forced alignment recovers (solid, coloured; ``mmcourse.alignment.forced``);
* the posteriors ``y_t(k)`` of every digit and of the blank ``∅`` over the frames -- CTC's
  "spikes";
* the string decoded greedily or by prefix beam search of width ``K``, its edit distance to the
  reference, and each digit's boundary errors in frames.

The posteriors of all shown utterances are computed once when the explorer is built.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmcourse.alignment.decoding import greedy_decode, prefix_beam_search
from mmcourse.alignment.forced import forced_align, word_boundaries
from mmcourse.data.digit_strings import BLANK, FRAME_MS, digits_to_text
from mmcourse.metrics.edits import edit_distance
from mmcourse.tensors import model_device
from mmcourse.widgets.base import make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer

__all__ = ["alignment_explorer", "alignment_view"]


def _posteriors(model, split, count: int) -> list[torch.Tensor]:
    model.eval()
    dev = model_device(model)
    with torch.no_grad():
        out = model({"audio": split.tensors["audio"][:count].to(dev),
                     "audio_lengths": split.tensors["audio_lengths"][:count].to(dev)})
    lengths = split.tensors["audio_lengths"][:count].tolist()
    return [out.logits[i, :n].float().cpu() for i, n in enumerate(lengths)]


def alignment_view(log_probs: torch.Tensor, target, method: str = "greedy", beam: int = 4,
                   blank: int = BLANK, blank_penalty: float = 0.0) -> dict:
    """What the explorer shows for one utterance, as plain numbers: the decoded string, its edit
    distance to ``target``, the forced alignment's spans and word boundaries ``(S, 2)``."""
    if method not in ("greedy", "beam"):
        raise ValueError(f"method must be 'greedy' or 'beam', got {method!r}")
    target = [int(d) for d in target]
    decoded = (greedy_decode(log_probs, blank=blank) if method == "greedy"
               else prefix_beam_search(log_probs, beam_width=beam, blank=blank))
    a = forced_align(log_probs, target, blank=blank, blank_penalty=blank_penalty)
    bounds = word_boundaries(log_probs, a.spans, blank=blank)
    return {"decoded": decoded, "reference": target, "edits": edit_distance(target, decoded),
            "spans": a.spans.numpy(), "boundaries": bounds.numpy(), "path_log_prob": a.score}


def alignment_explorer(model, split, *, max_utterances: int = 40, blank_penalty: float = 0.0) -> Explorer:
    """Explore a trained ``CTCRecognizer`` on the first ``max_utterances`` of a digit-strings split
    (``load_digit_strings``): pick an utterance and a decoder; see posteriors and alignments."""
    import ipywidgets as widgets

    if not hasattr(split, "meta") or "boundaries" not in split.meta or "audio_lengths" not in split:
        raise ValueError("alignment_explorer needs a split of load_digit_strings() (with "
                         "'audio', 'audio_lengths', 'digits' and meta['boundaries'])")
    count = min(max_utterances, len(split))
    posteriors = _posteriors(model, split, count)
    controls = {
        "utterance": widgets.IntSlider(0, 0, count - 1, description="utterance", **slider_style()),
        "method": widgets.ToggleButtons(options=[("greedy", "greedy"), ("prefix beam", "beam")],
                                        value="greedy", description="decoder"),
        "beam": widgets.IntSlider(4, 1, 16, description="beam width K", **slider_style()),
    }
    fig = new_figure(10.0, 4.6)
    ax_spec, ax_post = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    fig.subplots_adjust(left=0.08, right=0.86, bottom=0.11, top=0.92, hspace=0.12)
    colours = [f"C{k}" for k in range(10)]

    def draw(fig, utterance: int, method: str, beam: int) -> dict:
        lp = posteriors[utterance]
        n = int(split.tensors["digit_lengths"][utterance])
        target = split.tensors["digits"][utterance, :n].tolist()
        true = np.asarray(split.meta["boundaries"][utterance])
        view = alignment_view(lp, target, method, beam, blank_penalty=blank_penalty)
        frames = len(lp)
        ax_spec.clear()
        ax_post.clear()
        spec = split.tensors["audio"][utterance, :, :frames].numpy()
        ax_spec.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                       extent=(-0.5, frames - 0.5, -0.5, spec.shape[0] - 0.5))
        for i, ((s0, e0), (s1, e1)) in enumerate(zip(true, view["boundaries"])):
            c = colours[target[i]]
            ax_spec.axvspan(s0 - 0.5, e0 - 0.5, ymin=0.0, ymax=0.06, color="white", alpha=0.8)
            ax_spec.axvline(s1 - 0.5, color=c, lw=2)
            ax_spec.axvline(e1 - 0.5, color=c, lw=2, ls=":")
            ax_spec.text((s1 + e1) / 2 - 0.5, spec.shape[0] - 3, str(target[i]), color=c,
                         ha="center", fontsize=12, fontweight="bold")
        ax_spec.set_ylabel("mel band")
        ax_spec.set_title("log-mel; white bar: true digit, lines: forced-alignment start (solid) "
                          "and end (dotted)", fontsize=9)
        probs = lp.exp().numpy()
        ax_post.plot(probs[:, BLANK], color="0.6", lw=1.2, label="blank ∅")
        for k in range(10):
            ax_post.plot(probs[:, k], color=colours[k], lw=1.4, label=str(k))
        ax_post.set_ylim(0, 1.02)
        ax_post.set_xlim(-0.5, frames - 0.5)
        ax_post.set_xlabel(f"frame ({FRAME_MS:.0f} ms each)")
        ax_post.set_ylabel("posterior y_t(k)")
        ax_post.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="symbol",
                       title_fontsize=8)
        errors = np.abs(view["boundaries"] - true)
        decoded = digits_to_text(view["decoded"]) or "(nothing)"
        name = "greedy" if method == "greedy" else f"prefix beam K={beam}"
        text = (f"<b>reference</b>: {digits_to_text(target)} &nbsp; <b>{html.escape(name)}</b>: "
                f"{decoded} &nbsp; edits: {view['edits']}<br>boundary errors (frames) per digit, "
                f"start/end: " + ", ".join(f"{s}/{e}" for s, e in errors.tolist()))
        return {**view, "true": true, "errors": errors, "html": text}

    return make_explorer("alignment", controls, draw, fig,
                         title="Alignment: CTC posteriors, decoding and forced alignment")
