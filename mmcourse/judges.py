"""Judging generated images without a human: an attribute classifier, a CLIP score, diversity.

* ``AttributeJudge`` is a CNN trained on *real* Shapes scenes to read a scene's content, objects
  in caption (canonical) order: how many objects (1 or 2), each one's size, colour and kind, and
  the relation between them ("above" / "left of"). ``judge_report`` compares what it reads in
  each generated image with the caption the image was generated from:

      colour_kind = [n̂ = n  and  (ĉolour_i, k̂ind_i) = (colour_i, kind_i) for every object i]
      colour, kind = the same with the colours alone / the kinds alone
      size        = [n̂ = n  and  ŝize_i = size_i for every i],   relation = [r̂ = r] (2 objects)
      caption     = [the judge's caption = the caption]  (everything right)

  Its figures on real test scenes (``judge_accuracy``) are the ceiling: a generator cannot be
  judged more precisely than the judge reads.
* ``clip_score``: the course's dual encoder's cosine ``sim(I, x) = u · v`` between an image and
  its caption (CLIPScore, Hessel et al. 2021, without the rescaling): higher = more aligned.
* ``diversity``: how different the samples of one caption are -- the fraction of distinct token
  grids, and the mean pairwise pixel distance ``(2 / n(n-1)) Σ_{i<j} ||I_i − I_j||_2 / √(3S²)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset, check_batch
from mmcourse.data.shapes import (
    COLOUR_NAMES,
    KINDS,
    RELATIONS,
    SIZES,
    canonical_order,
    parse_caption,
    relation,
)
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import model_device

__all__ = ["HEADS", "AttributeJudge", "CaptionerJudge", "all_single_object_captions", "attribute_targets",
           "clip_score", "diversity", "generation_report", "judge_accuracy", "judge_dataset", "judge_report"]

#: The judge's heads and their classes; slot 2 and the relation are -1 (no target) for one object.
HEADS = {"count": (1, 2), "size1": SIZES, "colour1": COLOUR_NAMES, "kind1": KINDS,
         "size2": SIZES, "colour2": COLOUR_NAMES, "kind2": KINDS, "relation": RELATIONS}


def attribute_targets(scenes: Sequence[Sequence[Mapping]]) -> Tensor:
    """``(N, 8)`` int64 targets of ``HEADS`` (in that order) for Shapes scenes of 1-2 objects."""
    rows = []
    for scene in scenes:
        if not 1 <= len(scene) <= 2:
            raise ValueError(f"the attribute judge reads scenes of 1 or 2 objects, got {len(scene)}")
        objs = [scene[i] for i in canonical_order(scene)]
        row = [len(objs) - 1]
        for slot in range(2):
            if slot < len(objs):
                o = objs[slot]
                row += [SIZES.index(o["size"]), COLOUR_NAMES.index(o["colour"]), KINDS.index(o["kind"])]
            else:
                row += [-1, -1, -1]
        row.append(RELATIONS.index(relation(objs[0], objs[1])) if len(objs) == 2 else -1)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


def judge_dataset(split: ModalDataset) -> ModalDataset:
    """A Shapes split as ``{"image", "attributes" (N, 8)}`` for training the judge."""
    return ModalDataset({"image": split.tensors["image"],
                         "attributes": attribute_targets(split.meta["scene"])}, name=split.name)


class AttributeJudge(nn.Module):
    """A ``ConvEncoder`` and one linear head per attribute (``HEADS``). ``forward(batch)`` reads
    ``batch["image"]`` (and ``batch["attributes"]`` to compute the loss: the sum over heads of
    the cross-entropy over the examples that have that attribute) and returns
    ``ModelOutput(loss, extras={"heads": {name: (B, classes)}})``; ``read(images)`` gives the
    captions the judge reads."""

    def __init__(self, image_size: int = 32, width: int = 32, features: int = 128):
        super().__init__()
        self.image_size = image_size
        self.encoder = ConvEncoder(3, (image_size, image_size), width=width, out_dim=features)
        self.heads = nn.ModuleDict({name: nn.Linear(features, len(classes))
                                    for name, classes in HEADS.items()})

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        check_batch(batch, {"image": (3, self.image_size, self.image_size)}, "AttributeJudge")
        h = self.encoder(batch["image"])
        logits = {name: head(h) for name, head in self.heads.items()}
        loss = None
        if "attributes" in batch:
            targets = batch["attributes"]
            if targets.dim() != 2 or targets.shape[1] != len(HEADS):
                raise ValueError(f"AttributeJudge expects attributes (batch, {len(HEADS)}), "
                                 f"got {tuple(targets.shape)}")
            loss = sum(F.cross_entropy(z.float(), targets[:, i], ignore_index=-1)
                       if bool((targets[:, i] >= 0).any()) else z.sum() * 0.0
                       for i, z in enumerate(logits.values()))
        return ModelOutput(loss=loss, extras={"heads": logits})

    @torch.no_grad()
    def read(self, images: Tensor, batch_size: int = 500) -> list[str]:
        """The caption the judge reads in each image (its argmax for every head)."""
        was = self.training
        self.eval()
        dev = model_device(self)
        out = []
        for start in range(0, len(images), batch_size):
            heads = self({"image": images[start:start + batch_size].to(dev)}).extras["heads"]
            pred = {k: v.argmax(-1).tolist() for k, v in heads.items()}
            for i in range(len(pred["count"])):
                objs = [f"a {SIZES[pred[f'size{s}'][i]]} {COLOUR_NAMES[pred[f'colour{s}'][i]]} "
                        f"{KINDS[pred[f'kind{s}'][i]]}" for s in (1, 2)]
                out.append(objs[0] if pred["count"][i] == 0
                           else f"{objs[0]} {RELATIONS[pred['relation'][i]]} {objs[1]}")
        self.train(was)
        return out


class CaptionerJudge:
    """A judge that reads a scene by captioning it: ``read(images)`` is a trained captioner's
    greedy caption (e.g. chapter 08's, trained on real scenes). ``judge_report`` takes it
    wherever it takes an ``AttributeJudge``; an ungrammatical caption counts as all wrong."""

    def __init__(self, captioner):
        self.captioner = captioner.eval()

    @torch.no_grad()
    def read(self, images: Tensor, batch_size: int = 500) -> list[str]:
        dev = model_device(self.captioner)
        return [c for start in range(0, len(images), batch_size)
                for c in self.captioner.caption(images[start:start + batch_size].to(dev))]


def judge_report(judge: AttributeJudge, images: Tensor, captions: Sequence[str]) -> dict:
    """Mean verdicts (see the module docstring) of ``judge`` on ``images`` against the captions
    they should show: ``colour_kind`` (and ``colour``, ``kind`` alone), ``size``, ``relation``
    (over two-object captions only; NaN if none), ``caption``; ``n``, and ``verdicts``: the
    per-image dicts."""
    if len(images) != len(captions):
        raise ValueError(f"judge_report needs one caption per image, got {len(images)} images and "
                         f"{len(captions)} captions")
    read = judge.read(images)
    verdicts = []
    for want, got in zip(captions, read):
        w_objs, w_rels = parse_caption(want)
        try:
            g_objs, g_rels = parse_caption(got)
        except ValueError:  # a judge that writes captions may write an ungrammatical one
            g_objs, g_rels = [], []
        same_n = len(w_objs) == len(g_objs)
        verdicts.append({
            "read": got,
            "colour_kind": same_n and all(a[1:] == b[1:] for a, b in zip(w_objs, g_objs)),
            "colour": same_n and all(a[1] == b[1] for a, b in zip(w_objs, g_objs)),
            "kind": same_n and all(a[2] == b[2] for a, b in zip(w_objs, g_objs)),
            "size": same_n and all(a[0] == b[0] for a, b in zip(w_objs, g_objs)),
            "relation": (same_n and w_rels == g_rels) if len(w_objs) == 2 else None,
            "caption": got == want,
        })
    rel = [v["relation"] for v in verdicts if v["relation"] is not None]
    n = max(len(verdicts), 1)
    return {"n": len(verdicts),
            "colour_kind": sum(v["colour_kind"] for v in verdicts) / n,
            "colour": sum(v["colour"] for v in verdicts) / n,
            "kind": sum(v["kind"] for v in verdicts) / n,
            "size": sum(v["size"] for v in verdicts) / n,
            "relation": sum(rel) / len(rel) if rel else float("nan"),
            "caption": sum(v["caption"] for v in verdicts) / n,
            "verdicts": verdicts}


def judge_accuracy(judge: AttributeJudge, split: ModalDataset) -> dict[str, float]:
    """``judge_report`` of the judge on a split's *real* images and their captions: the ceiling
    of every generated-image figure (keys ``colour_kind``, ``size``, ``relation``, ``caption``)."""
    report = judge_report(judge, split.tensors["image"], split.meta["caption"])
    return {k: report[k] for k in ("colour_kind", "size", "relation", "caption")}


@torch.no_grad()
def clip_score(dual_encoder, images: Tensor, captions: Tensor, batch_size: int = 500) -> Tensor:
    """``sim(I_i, x_i) = u_i · v_i`` ``(N,)`` of each image with its caption ids (a
    ``DualEncoder``'s cosine similarity)."""
    if len(images) != len(captions):
        raise ValueError(f"clip_score needs one caption per image, got {len(images)} and {len(captions)}")
    was = dual_encoder.training
    dual_encoder.eval()
    dev = model_device(dual_encoder)
    out = []
    for start in range(0, len(images), batch_size):
        u = dual_encoder.encode_image(images[start:start + batch_size].to(dev))
        v = dual_encoder.encode_text(captions[start:start + batch_size].to(dev))
        out.append((u * v).sum(-1).float().cpu())
    dual_encoder.train(was)
    return torch.cat(out)


def diversity(samples: Tensor, codes: Tensor | None = None) -> dict[str, float]:
    """Diversity of ``n >= 2`` samples of one caption, ``samples`` ``(n, 3, S, S)``: the mean
    pairwise RMS pixel distance, and (with their ``codes`` ``(n, T)``) the fraction of distinct
    token grids."""
    if samples.dim() != 4 or len(samples) < 2:
        raise ValueError(f"diversity needs n >= 2 images (n, 3, S, S), got {tuple(samples.shape)}")
    flat = samples.flatten(1).float()
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    n = len(samples)
    out = {"pixel_distance": (d.sum() / (n * (n - 1))).item()}
    if codes is not None:
        out["distinct"] = len({tuple(row) for row in codes.tolist()}) / n
    return out


def all_single_object_captions() -> list[str]:
    """The 48 one-object captions "a SIZE COLOUR KIND", in a fixed order."""
    return [f"a {s} {c} {k}" for k in KINDS for c in COLOUR_NAMES for s in SIZES]


@torch.no_grad()
def generation_report(generator, tokenizer, judge: AttributeJudge, captions: Sequence[str], vocab, *,
                      samples: int = 1, guidance: float = 1.0, temperature: float = 1.0,
                      plausibility: float = 0.0, seed: int = 0, dual_encoder=None,
                      batch_size: int = 256) -> dict:
    """Generate ``samples`` images for each caption (``generator.generate``, seeded, with guidance
    ``w``, temperature and the ``plausibility`` threshold ``α``), paint them
    (``tokenizer.decode``) and judge them: ``judge_report``'s figures (``colour_kind``, ``size``,
    ``relation``, ``caption``), the mean ``clip_score`` (with a ``dual_encoder``), the mean
    ``diversity`` per caption (``samples >= 2``), and ``images`` ``(len(captions), samples, 3, S, S)``."""
    from mmcourse.models.captioning import encode_captions

    ids = encode_captions(list(captions), vocab)
    ids = F.pad(ids, (0, generator.text_len - ids.shape[1]))
    ids = ids.repeat_interleave(samples, dim=0)
    dev = model_device(generator)
    gen = torch.Generator(device=dev).manual_seed(seed)
    codes = torch.cat([generator.generate(ids[i:i + batch_size].to(dev), guidance=guidance,
                                          temperature=temperature, generator=gen,
                                          plausibility=plausibility).cpu()
                       for i in range(0, len(ids), batch_size)])
    images = torch.cat([tokenizer.decode(codes[i:i + batch_size].to(model_device(tokenizer))).cpu()
                        for i in range(0, len(codes), batch_size)])
    wanted = [c for c in captions for _ in range(samples)]
    report = judge_report(judge, images, wanted)
    out = {k: report[k] for k in ("n", "colour_kind", "colour", "kind", "size", "relation", "caption")}
    if dual_encoder is not None:
        out["clip_score"] = clip_score(dual_encoder, images, ids).mean().item()
    if samples >= 2:
        per = [diversity(images[i:i + samples], codes[i:i + samples]) for i in range(0, len(images), samples)]
        out["distinct"] = sum(d["distinct"] for d in per) / len(per)
        out["pixel_distance"] = sum(d["pixel_distance"] for d in per) / len(per)
    out["images"] = images.view(len(captions), samples, *images.shape[1:])
    out["verdicts"] = report["verdicts"]
    return out
