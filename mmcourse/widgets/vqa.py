"""VQA explorer (chapter 13): choose an image and a question, see the answer distribution
``P(a | v, q) = softmax_a s(a, v, q)`` and where the question looks among the image patches.

The question is a combo box: pick one of the data set's questions or type your own (a word
outside the vocabulary becomes ``<unk>`` and is listed). The attention shown is the model's
``extras["cls_attention"]`` (the ``[CLS]`` token over the patches) or, for one chosen word,
its row of ``extras["attention"]`` (question word → patches), upsampled over the image.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmcourse.data.text import Vocab, tokenize
from mmcourse.tensors import model_device, to_numpy
from mmcourse.widgets.base import make_explorer, new_figure, slider_style

if TYPE_CHECKING:
    from mmcourse.widgets.base import Explorer


def encode_question(question: str, vocab: Vocab, length: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """``(ids (1, length), words, unknown words)`` of a typed question ("?" dropped, lower-cased,
    unknown words → ``<unk>``, cut to ``length`` words)."""
    words = tokenize(question.replace("?", " "))[:length]
    ids = torch.zeros(1, length, dtype=torch.long)
    ids[0, :len(words)] = torch.tensor([vocab.stoi.get(w, vocab.unk_id) for w in words], dtype=torch.long)
    return ids, words, [w for w in words if w not in vocab.stoi]


@torch.no_grad()
def answer_question(model: nn.Module, image: torch.Tensor, question: str, info: dict) -> dict:
    """Run ``model`` on one ``image (3, S, S)`` and a typed ``question``: ``{"probabilities" (A,),
    "answer", "words", "unknown", "attention" (L_words, N) or None, "cls_attention" (N,) or None,
    "grid" (gh, gw) or None}``."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("answer_question needs a non-empty question string")
    ids, words, unknown = encode_question(question, info["vocab"], info["max_len"])
    dev = model_device(model)
    was_training = model.training
    model.eval()
    try:
        out = model({"image": image[None].to(dev), "text": ids.to(dev)})
    finally:
        model.train(was_training)
    probs = torch.softmax(out.logits.float(), dim=-1)[0].cpu()
    att = out.extras.get("attention")
    cls = out.extras.get("cls_attention")
    grid = getattr(getattr(model, "patches", None), "grid", None)
    return {"probabilities": to_numpy(probs), "answer": info["answers"][int(probs.argmax())],
            "words": words, "unknown": unknown,
            "attention": None if att is None else to_numpy(att[0, :len(words)].float()),
            "cls_attention": None if cls is None else to_numpy(cls[0].float()), "grid": grid}


def vqa_explorer(model: nn.Module, split, info: dict, *, max_images: int = 40) -> Explorer:
    """Explore a trained VQA model on ``split`` (an easy-VQA or Shapes-QA ``ModalDataset`` with
    meta ``question``): choose one of its first ``max_images`` images and a question (or type
    one), and see ``P(a | v, q)`` and the attention over the patches for ``[CLS]`` or one word.
    Moving to another image replaces a data-set question of the old image by the new image's
    first question; a typed question stays."""
    import ipywidgets as widgets

    ids = split.tensors.get("image_id")
    if ids is None:                                 # Shapes-QA: consecutive questions share a scene
        ids = torch.arange(len(split)) // len(info["question_types"])
    first_rows: dict[int, int] = {}
    questions_of: dict[int, list[str]] = {}
    for row, (i, q) in enumerate(zip(ids.tolist(), split.meta["question"])):
        if i not in first_rows and len(first_rows) >= max_images:
            continue
        first_rows.setdefault(i, row)
        questions_of.setdefault(i, []).append(q)
    image_ids = list(first_rows)
    all_questions = sorted({q for qs in questions_of.values() for q in qs})
    controls = {
        "image": widgets.IntSlider(0, 0, len(image_ids) - 1, description="image", **slider_style()),
        "question": widgets.Combobox(value=questions_of[image_ids[0]][0], options=all_questions,
                                     ensure_option=False, continuous_update=False,
                                     description="question", placeholder="type a question",
                                     layout=widgets.Layout(width="420px")),
        "word": widgets.Dropdown(options=["[CLS]", *(f"word {j + 1}" for j in range(info["max_len"]))],
                                 value="[CLS]", description="attention of",
                                 layout=widgets.Layout(width="240px")),
    }
    fig = new_figure(9.0, 3.4)
    ax_img, ax_p = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.6]})
    fig.subplots_adjust(left=0.03, right=0.98, bottom=0.28, top=0.88, wspace=0.25)
    answers = info["answers"]

    def draw(fig, image: int, question: str, word: str) -> dict:
        row = first_rows[image_ids[image]]
        pixels = split.tensors["image"][row]
        question = question.strip() or questions_of[image_ids[image]][0]
        res = answer_question(model, pixels, question, info)
        shown = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels
        ax_img.clear()
        ax_img.imshow(to_numpy(shown).transpose(1, 2, 0))
        heat, who = res["cls_attention"], "[CLS]"
        if word != "[CLS]" and res["attention"] is not None:
            j = int(word.split()[1]) - 1
            if j < len(res["words"]):
                heat, who = res["attention"][j], res["words"][j]
        if heat is not None and res["grid"] is not None:
            size = shown.shape[-1]
            ax_img.imshow(heat.reshape(res["grid"]), cmap="magma", alpha=0.55,
                          extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        ax_img.set_title(f"attention of {who}" if heat is not None else "image", fontsize=10)
        ax_p.clear()
        p = res["probabilities"]
        colours = ["tab:orange" if a == res["answer"] else "tab:blue" for a in answers]
        ax_p.bar(range(len(answers)), p, color=colours)
        ax_p.set_xticks(range(len(answers)), answers, rotation=60, fontsize=8)
        ax_p.set_ylim(0, 1)
        ax_p.set_ylabel("P(a | v, q)")
        ax_p.set_title(f"answer: {res['answer']} ({p.max():.2f})", fontsize=10)
        truth = ""
        rows = [r for r in range(row, min(row + 64, len(split))) if int(ids[r]) == image_ids[image]]
        for r in rows:
            if split.meta["question"][r].strip() == question:
                truth = f"; the data set's answer: <b>{html.escape(split.meta['answer'][r])}</b>"
        unknown = (f"; not in the vocabulary (read as &lt;unk&gt;): {html.escape(', '.join(res['unknown']))}"
                   if res["unknown"] else "")
        res["html"] = (f"image {image_ids[image]}: <i>{html.escape(question)}</i> → "
                       f"<b>{html.escape(res['answer'])}</b>{truth}{unknown}")
        return res

    explorer = make_explorer("vqa", controls, draw, fig,
                             title="VQA: P(a | image, question) and the attention over the patches")

    def follow_image(change) -> None:
        # a data-set question belongs to its image: on another image, ask that image's first one
        # (a typed question, or one the new image also has, stays)
        question = explorer.controls["question"].value.strip()
        own = questions_of[image_ids[change["new"]]]
        if question in all_questions and question not in own:
            explorer.controls["question"].value = own[0]

    explorer.controls["image"].observe(follow_image, names="value")
    return explorer
