"""Zero-shot classification: the labels are written as text, no labelled image is ever seen.

A dual encoder trained contrastively maps an image ``x`` and a text ``t`` to unit vectors
``u = g(x)/||g(x)||`` and ``v = h(t)/||h(t)||``. Give each class ``c`` a set of prompts ``P_c``
("a small red circle", "a large red cross", ...) and **ensemble** them: average their unit text
embeddings and put the mean back on the sphere,

    w_c = normalise( (1/|P_c|) Σ_{p ∈ P_c} v_p ),

then score a class by cosine similarity and predict the best one:

    s_c(x) = u · w_c,          ŷ(x) = argmax_c s_c(x),          P(c | x) = softmax_c(τ⁻¹ s_c(x)).

With one prompt per class (``|P_c| = 1``) this is plain prompting. Averaging is one way to
pool a class's prompts; the other is to score a class by its *best* prompt,

    s_c^max(x) = max_{p ∈ P_c} u · v_p,

i.e. classify over the fine-grained prompts ("a small green triangle") and read off the class
(``reduce="max"``). The same rule classifies
with *prototypes* of another modality: ``w_c`` the mean embedding of a few spoken examples of
digit ``c`` (chapter 11's audio-visual zero-shot).

* ``class_embeddings(prompt_emb, prompt_class, n_classes)``: the ensemble ``w_c``;
* ``zero_shot_scores`` / ``zero_shot_predict``: ``s_c(x)`` and ``ŷ(x)``;
* ``fill_templates(templates, attribute)``: Shapes prompts for every class of an attribute;
* ``encode_prompts(model, prompts)``: tokenise and embed prompts with a dual encoder's text tower;
* ``ZeroShotClassifier``: an image tower and fixed ``w_c`` as a classifier under the model
  contract (``ModelOutput.logits = s · u W^T``), so ``evaluate()`` scores it like any model.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.models.output import ModelOutput
from mmcourse.tensors import model_device

#: The attributes a Shapes prompt template may name, and their classes.
ATTRIBUTES = {
    "colour": ("red", "green", "blue", "yellow", "magenta", "cyan"),
    "kind": ("circle", "square", "triangle", "cross"),
    "size": ("small", "large"),
}

__all__ = ["ATTRIBUTES", "ZeroShotClassifier", "class_embeddings", "encode_prompts", "fill_templates",
           "max_prompt_scores", "zero_shot_predict", "zero_shot_scores"]


def _check_2d(x: Tensor, name: str, where: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{where} expects {name} as a float tensor (n, dim), got {got}")
    if len(x) and (x.norm(dim=-1) == 0).any():
        raise ValueError(f"{where}: a row of {name} is a zero vector, which has no direction")


def class_embeddings(prompt_emb: Tensor, prompt_class: Tensor | Sequence[int], n_classes: int) -> Tensor:
    """Prompt ensembling: ``w_c = normalise(mean_{p: class(p)=c} normalise(v_p))``, ``(C, dim)``.

    ``prompt_emb``: ``(P, dim)`` text (or prototype) embeddings, normalised here; ``prompt_class``:
    ``(P,)`` the class ``0..C-1`` of each prompt. Every class needs at least one prompt. Classes
    with more prompts do not get longer vectors: the mean is put back on the unit sphere.
    """
    _check_2d(prompt_emb, "prompt_emb", "class_embeddings")
    cls = torch.as_tensor(prompt_class, dtype=torch.long, device=prompt_emb.device)
    if cls.shape != (len(prompt_emb),):
        raise ValueError(f"class_embeddings expects prompt_class ({len(prompt_emb)},), one class per "
                         f"prompt, got shape {tuple(cls.shape)}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be an int >= 1, got {n_classes!r}")
    if len(cls) and (cls.min() < 0 or cls.max() >= n_classes):
        raise ValueError(f"prompt_class must lie in 0..{n_classes - 1}, got values "
                         f"{int(cls.min())}..{int(cls.max())}")
    counts = torch.bincount(cls, minlength=n_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"class_embeddings: classes {missing} have no prompt; every class needs one")
    unit = F.normalize(prompt_emb.float(), dim=-1)
    total = torch.zeros(n_classes, unit.shape[1], device=unit.device).index_add_(0, cls, unit)
    mean = total / counts[:, None]
    if (mean.norm(dim=-1) < 1e-6).any():
        raise ValueError("class_embeddings: the prompts of a class cancel out (their mean is ~0)")
    return F.normalize(mean, dim=-1)


def zero_shot_scores(image_emb: Tensor, class_emb: Tensor) -> Tensor:
    """``s_c(x) = cos(u_x, w_c)`` for every image and class: ``(N, C)`` in [-1, 1]."""
    _check_2d(image_emb, "image_emb", "zero_shot_scores")
    _check_2d(class_emb, "class_emb", "zero_shot_scores")
    if image_emb.shape[1] != class_emb.shape[1]:
        raise ValueError(f"zero_shot_scores: image embeddings have dim {image_emb.shape[1]} but class "
                         f"embeddings {class_emb.shape[1]}")
    return F.normalize(image_emb.float(), dim=-1) @ F.normalize(class_emb.float(), dim=-1).T


def max_prompt_scores(image_emb: Tensor, prompt_emb: Tensor, prompt_class, n_classes: int) -> Tensor:
    """``s_c^max(x) = max_{p ∈ P_c} cos(u_x, v_p)``: each class scored by its best prompt, ``(N, C)``."""
    cls = torch.as_tensor(prompt_class, dtype=torch.long)
    class_embeddings(prompt_emb, cls, n_classes)  # the same checks (every class has a prompt, ...)
    sims = zero_shot_scores(image_emb, prompt_emb)
    return torch.stack([sims[:, cls == c].amax(dim=1) for c in range(n_classes)], dim=1)


def zero_shot_predict(image_emb: Tensor, prompt_emb: Tensor, prompt_class, n_classes: int,
                      reduce: str = "mean") -> Tensor:
    """``ŷ(x) = argmax_c cos(u_x, w_c)`` with the ensembled ``w_c`` (``reduce="mean"``), or
    ``argmax_c s_c^max(x)`` (``reduce="max"``): ``(N,)`` long."""
    if reduce == "max":
        return max_prompt_scores(image_emb, prompt_emb, prompt_class, n_classes).argmax(1)
    if reduce != "mean":
        raise ValueError(f"reduce must be 'mean' (average the prompt embeddings) or 'max' (best prompt), "
                         f"got {reduce!r}")
    return zero_shot_scores(image_emb, class_embeddings(prompt_emb, prompt_class, n_classes)).argmax(1)


def fill_templates(templates: str | Sequence[str], attribute: str) -> tuple[list[str], list[int]]:
    """Every prompt for every class of a Shapes ``attribute`` (``colour``, ``kind``, ``size``).

    A template names fields in braces, e.g. ``"a {size} {colour} {kind}"``: ``{attribute}`` is
    the class, and every *other* field is filled with each of its values (prompt ensembling over
    the nuisance attributes), so that template gives 2 · 4 = 8 prompts per colour. A template
    without ``{attribute}`` is an error. Returns ``(prompts, class of each prompt)``.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {list(ATTRIBUTES)}, got {attribute!r}")
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError("fill_templates needs at least one template")
    prompts, classes = [], []
    for template in templates:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        unknown = [f for f in fields if f not in ATTRIBUTES]
        if unknown or attribute not in fields:
            raise ValueError(f"template {template!r} must name {{{attribute}}} and only fields among "
                             f"{['{' + a + '}' for a in ATTRIBUTES]}")
        others = sorted(set(fields) - {attribute})
        for c, value in enumerate(ATTRIBUTES[attribute]):
            for combo in itertools.product(*(ATTRIBUTES[o] for o in others)):
                prompts.append(template.format(**{attribute: value, **dict(zip(others, combo))}))
                classes.append(c)
    return prompts, classes


@torch.no_grad()
def encode_prompts(model: nn.Module, prompts: Sequence[str], vocab=None) -> Tensor:
    """Unit text embeddings ``(P, dim)`` of ``prompts`` from ``model.encode_text``, tokenised as
    the Shapes captions are (``<bos>`` words ``<eos>``). A word outside the vocabulary is mapped
    to ``<unk>`` (the text tower has never seen it)."""
    from mmcourse.data.shapes import shapes_vocab

    vocab = vocab or shapes_vocab()
    tokens, _ = vocab.encode_batch(list(prompts), bos=True, eos=True, allow_unknown=True)
    was = model.training
    model.eval()
    try:
        return model.encode_text(tokens.to(model_device(model))).float().cpu()
    finally:
        model.train(was)


class ZeroShotClassifier(nn.Module):
    """Classify ``batch[key]`` by ``logits = s · cos(u_x, w_c)``: a pretrained tower ``encoder``
    (returning embeddings, e.g. ``DualEncoder.encode_image``) and fixed class embeddings
    ``class_emb (C, dim)`` (a buffer, not trained). ``scale`` is the softmax scale ``s``."""

    def __init__(self, encoder, class_emb: Tensor, key: str = "image", scale: float = 1.0):
        super().__init__()
        _check_2d(class_emb, "class_emb", "ZeroShotClassifier")
        self.encoder, self.key, self.scale = encoder, key, float(scale)
        self.modalities = (key,)
        self.register_buffer("class_emb", F.normalize(class_emb.detach().float(), dim=-1))

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        if not isinstance(batch, Mapping) or self.key not in batch:
            raise KeyError(f"ZeroShotClassifier expects a batch dict with key {self.key!r}")
        scores = zero_shot_scores(self.encoder(batch[self.key]), self.class_emb)
        return ModelOutput(logits=self.scale * scores, extras={"scores": scores})
