"""Measuring zero-shot classification (chapter 11): seen vs unseen combinations, prompts, prototypes.

The classifier itself is ``mmcourse.models.zero_shot`` (``ŷ(x) = argmax_c u_x · w_c`` with the
ensembled class embeddings ``w_c``); this module scores it on data.

* ``attribute_accuracy(model, objects, attribute, templates)``: zero-shot accuracy of a Shapes
  dual encoder at naming the colour (or kind) of one-object scenes, separately on combinations
  seen in pretraining and on held-out ones (``objects`` from
  ``mmcourse.data.shapes.holdout.load_single_objects``);
* ``template_table(model, objects, templates)``: the same for several prompt sets, to compare
  one template against an ensemble;
* ``choose_prompts(model, val_objects)``: for each attribute, the prompt set with the best
  accuracy on the **seen** combinations of a validation split -- the held-out combinations
  never take part in the choice;
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

#: Every form a caption of one object takes in pretraining (``vary_captions``): the attribute
#: alone, with a size, with the other attribute, or all three words.
FORMS = {"colour": ["a {colour}", "a {size} {colour}", "a {colour} {kind}", "a {size} {colour} {kind}"],
         "kind": ["a {kind}", "a {size} {kind}", "a {colour} {kind}", "a {size} {colour} {kind}"]}

#: Prompt sets compared in the chapter: a partial caption, one full caption, every full caption
#: (all sizes and all values of the other attribute), and every caption form (1 + 2 + 4 + 8 = 15
#: prompts per colour, 1 + 2 + 6 + 12 = 21 per kind), the ensembles pooled two ways: the mean of
#: their embeddings (CLIP's ensemble) and the best of them (``reduce="max"``).
TEMPLATES = {
    "colour": {"'a {colour}'": (["a {colour}"], "mean"),
               "'a large {colour} circle'": (["a large {colour} circle"], "mean"),
               "ensemble of 8, mean": (["a {size} {colour} {kind}"], "mean"),
               "ensemble of 8, max": (["a {size} {colour} {kind}"], "max"),
               "all forms (15), mean": (FORMS["colour"], "mean"),
               "all forms (15), max": (FORMS["colour"], "max")},
    "kind": {"'a {kind}'": (["a {kind}"], "mean"),
             "'a large red {kind}'": (["a large red {kind}"], "mean"),
             "ensemble of 12, mean": (["a {size} {colour} {kind}"], "mean"),
             "ensemble of 12, max": (["a {size} {colour} {kind}"], "max"),
             "all forms (21), mean": (FORMS["kind"], "mean"),
             "all forms (21), max": (FORMS["kind"], "max")},
}

__all__ = ["FORMS", "TEMPLATES", "attribute_accuracy", "choose_prompts", "image_embeddings",
           "prototype_accuracy", "template_table"]


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


def choose_prompts(model, val_objects, templates: Mapping[str, Mapping[str, tuple]] | None = None
                   ) -> dict[str, str]:
    """``{attribute: label}``: the prompt set of ``templates`` (default ``TEMPLATES``) with the best
    accuracy on the ``seen`` combinations of ``val_objects`` (a validation split of one-object
    scenes, not the test split), the first in table order on a tie. Held-out combinations are
    not looked at: choosing prompts on them would leak the test of compositional generalisation."""
    seen = val_objects.tensors["seen"].bool() if "seen" in val_objects.tensors else None
    if seen is None or not seen.any():
        raise ValueError("choose_prompts needs validation objects with some seen combinations "
                         "(mmcourse.data.shapes.holdout.load_single_objects)")
    rows = template_table(model, val_objects.subset(torch.nonzero(seen).flatten()), templates)
    best: dict[str, dict] = {}
    for r in rows:
        if r["attribute"] not in best or r["all"] > best[r["attribute"]]["all"]:
            best[r["attribute"]] = r
    return {attribute: r["prompts"] for attribute, r in best.items()}


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
