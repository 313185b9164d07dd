"""Measuring zero-shot classification (chapter 11): seen vs unseen combinations, prompts, prototypes.

The classifier itself is ``mmcourse.models.zero_shot`` (``ŷ(x) = argmax_c u_x · w_c`` with the
ensembled class embeddings ``w_c``); this module scores it on data.

* ``attribute_accuracy(model, objects, attribute, templates)``: zero-shot accuracy of a Shapes
  dual encoder at naming the colour (or kind) of one-object scenes, separately on combinations
  seen in pretraining and on held-out ones (``objects`` from
  ``mmcourse.data.shapes.holdout.load_single_objects``);
* ``template_table(model, objects, templates)``: the same for several prompt sets, to compare
  one template against an ensemble;
* ``prototype_accuracy(model, images, labels, clips, clip_labels)``: audio-visual zero-shot --
  classify images by the nearest spoken-digit prototype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mmcourse.models.zero_shot import (
    ATTRIBUTES,
    class_embeddings,
    encode_prompts,
    fill_templates,
    zero_shot_predict,
    zero_shot_scores,
)

#: Prompt sets compared in the chapter: a partial caption, one full caption, and every full
#: caption (all sizes and all values of the other attribute) pooled two ways: the mean of their
#: embeddings (CLIP's ensemble) and the best of them (``reduce="max"``).
TEMPLATES = {
    "colour": {"'a {colour}'": (["a {colour}"], "mean"),
               "'a large {colour} circle'": (["a large {colour} circle"], "mean"),
               "ensemble of 8, mean": (["a {size} {colour} {kind}"], "mean"),
               "ensemble of 8, max": (["a {size} {colour} {kind}"], "max")},
    "kind": {"'a {kind}'": (["a {kind}"], "mean"),
             "'a large red {kind}'": (["a large red {kind}"], "mean"),
             "ensemble of 12, mean": (["a {size} {colour} {kind}"], "mean"),
             "ensemble of 12, max": (["a {size} {colour} {kind}"], "max")},
}

__all__ = ["TEMPLATES", "attribute_accuracy", "image_embeddings", "prototype_accuracy", "template_table"]


@torch.no_grad()
def image_embeddings(model, images: Tensor, batch_size: int = 512) -> Tensor:
    """``model.encode_image`` of every image, ``(n, dim)`` float32 on the CPU, in eval mode."""
    from mmcourse.tensors import model_device

    dev = model_device(model)
    was = model.training
    model.eval()
    try:
        return torch.cat([model.encode_image(images[i:i + batch_size].to(dev)).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was)


def _check_objects(objects, attribute: str) -> None:
    if attribute not in ("colour", "kind"):
        raise ValueError(f"attribute must be 'colour' or 'kind', got {attribute!r}")
    for key in ("image", attribute, "seen"):
        if key not in objects.tensors:
            raise KeyError(f"attribute_accuracy needs a one-object split with {key!r} "
                           "(mmcourse.data.shapes.holdout.load_single_objects)")
    if (objects.tensors[attribute] < 0).any():
        raise ValueError("attribute_accuracy needs one-object scenes only (colour/kind = -1 found)")


def attribute_accuracy(model, objects, attribute: str, templates: str | Sequence[str],
                       image_emb: Tensor | None = None, reduce: str = "mean") -> dict[str, float]:
    """Zero-shot accuracy at naming ``attribute`` with the prompts of ``templates`` pooled by
    ``reduce`` (``zero_shot_predict``): ``{"seen": ..., "unseen": ..., "all": ...,
    "gap": seen - unseen}``. ``image_emb`` may be passed to avoid re-embedding the images."""
    _check_objects(objects, attribute)
    prompts, classes = fill_templates(templates, attribute)
    u = image_emb if image_emb is not None else image_embeddings(model, objects.tensors["image"])
    pred = zero_shot_predict(u, encode_prompts(model, prompts), classes, len(ATTRIBUTES[attribute]), reduce)
    correct = (pred == objects.tensors[attribute]).float()
    seen = objects.tensors["seen"].bool()
    out = {"seen": correct[seen].mean().item(), "unseen": correct[~seen].mean().item(),
           "all": correct.mean().item()}
    out["gap"] = out["seen"] - out["unseen"]
    return out


def template_table(model, objects, templates: Mapping[str, Mapping[str, tuple]] | None = None
                   ) -> list[dict]:
    """One row per (attribute, prompt set): ``{"attribute", "prompts", "seen", "unseen", "all",
    "gap"}``, for the prompt sets of ``TEMPLATES`` (label → (templates, reduce)) by default."""
    templates = TEMPLATES if templates is None else templates
    u = image_embeddings(model, objects.tensors["image"])
    rows = []
    for attribute, sets in templates.items():
        for label, (temps, reduce) in sets.items():
            rows.append({"attribute": attribute, "prompts": label,
                         **attribute_accuracy(model, objects, attribute, temps, image_emb=u, reduce=reduce)})
    return rows


def prototype_accuracy(model, images: Tensor, labels: Tensor, clips: Tensor, clip_labels: Tensor,
                       n_classes: int = 10) -> float:
    """Audio-visual zero-shot: each image's class is that of the nearest spoken prototype
    ``w_c = normalise(mean_{clips of c} v)``; the accuracy against ``labels`` (which only score
    the answer -- the classifier never sees an image label)."""
    with torch.no_grad():
        model.eval()
        u = torch.cat([model.encode_image(images[i:i + 512]) for i in range(0, len(images), 512)])
        v = torch.cat([model.encode_audio(clips[i:i + 512]) for i in range(0, len(clips), 512)])
    w = class_embeddings(v, clip_labels, n_classes)
    return (zero_shot_scores(u, w).argmax(1) == labels).float().mean().item()
