"""Hard negatives: minimal changes of a scene that change its caption, and Winoground pairs.

Swapping the colours of two objects, or exchanging two objects' positions, keeps the caption's
words and changes only their order; changing one object's colour or size changes one word.
A Winoground-style pair is two images and two captions with the same words in a different
order; with a similarity ``s(I, C)`` the pair is scored (Thrush et al., 2022)::

    text  = [s(I0, C0) > s(I0, C1)  and  s(I1, C1) > s(I1, C0)]   (each image picks its caption)
    image = [s(I0, C0) > s(I1, C0)  and  s(I1, C1) > s(I0, C1)]   (each caption picks its image)
    group = text and image
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

from mmcourse.data.base import ModalDataset
from mmcourse.data.shapes.grammar import canonical_order, caption_of, max_tokens, shapes_vocab
from mmcourse.data.shapes.loader import MODALITY_SHAPES
from mmcourse.data.shapes.render import _check_image_size, render_scene, render_scenes
from mmcourse.data.shapes.sampling import sample_scenes
from mmcourse.data.shapes.scene import COLOUR_NAMES, MAX_SHAPES, SIZES, _check_int, _check_scene, _code


class HardNegative(NamedTuple):
    """A changed scene, its caption and its rendering ``(3, S, S)``."""

    scene: list[dict]
    caption: str
    image: np.ndarray


def _distinct(scene: Sequence[Mapping]) -> bool:
    return len({_code(o) for o in scene}) == len(scene)


def _swap_colours(scene, i, j) -> list[dict]:
    new = [dict(o) for o in scene]
    new[i]["colour"], new[j]["colour"] = scene[j]["colour"], scene[i]["colour"]
    return new


def _swap_positions(scene, i, j) -> list[dict]:
    new = [dict(o) for o in scene]
    new[i]["position"], new[j]["position"] = scene[j]["position"], scene[i]["position"]
    return new


def _pick(options: list, rng: np.random.Generator | None):
    if not options:
        return None
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _swap_options(scene: list[dict], kind: str) -> list[list[dict]]:
    if kind == "colour_swap":
        options = [_swap_colours(scene, i, j) for i in range(len(scene))
                   for j in range(i + 1, len(scene)) if scene[i]["colour"] != scene[j]["colour"]]
        return [s for s in options if _distinct(s)]
    if kind == "relation_swap":
        return [_swap_positions(scene, i, i + 1) for i in range(len(scene) - 1)]
    raise ValueError(f"kind must be 'colour_swap' or 'relation_swap', got {kind!r}")


def hard_negative_scene(scene: Sequence[Mapping], kind: str,
                        rng: np.random.Generator | None = None) -> list[dict]:
    """Just the changed scene of one swap ``kind`` (no rendering); an error if impossible."""
    scene = [scene[i] for i in canonical_order(_check_scene(scene))]
    choice = _pick(_swap_options(scene, kind), rng)
    if choice is None:
        raise ValueError(f"no {kind} is possible for the scene {caption_of(scene)!r}")
    return choice


def hard_negatives(scene: Sequence[Mapping], image_size: int = 32, *,
                   rng: np.random.Generator | None = None,
                   render_seed: int | None = None) -> dict[str, HardNegative]:
    """Minimal changes of ``scene`` whose captions differ, for Winoground-style probes.

    Returns a dict (kinds that cannot apply are left out, e.g. swaps of a 1-object scene):

    * ``"original"``      -- the scene itself;
    * ``"colour_swap"``   -- two objects of different colours exchange colours: the caption has
      the *same words in a different order*;
    * ``"relation_swap"`` -- two objects exchange positions ("A above B" -> "B above A"): same
      words, different order;
    * ``"colour_change"`` -- one object gets another colour (one word differs);
    * ``"size_change"``   -- one object changes size (one word differs).

    Without ``rng`` the choice is deterministic (the first valid object/pair in canonical
    order); with it, random. Images are rendered clean, or with identical nuisance for every
    variant when ``render_seed`` is given.
    """
    scene = [scene[i] for i in canonical_order(_check_scene(scene))]
    if not _distinct(scene):
        raise ValueError("hard negatives need a scene whose objects are all different")
    size = _check_image_size(image_size)
    variants: dict[str, list[dict]] = {"original": scene}
    for key in ("colour_swap", "relation_swap"):
        choice = _pick(_swap_options(scene, key), rng)
        if choice is not None:
            variants[key] = choice
    for key, attr, values in (("colour_change", "colour", COLOUR_NAMES),
                              ("size_change", "size", SIZES)):
        options = []
        for i, obj in enumerate(scene):
            start = values.index(obj[attr])
            for step in range(1, len(values)):
                new = [dict(o) for o in scene]
                new[i][attr] = values[(start + step) % len(values)]
                if _distinct(new):
                    options.append(new)
        choice = _pick(options, rng)
        if choice is not None:
            variants[key] = choice
    out = {}
    for key, variant in variants.items():
        render_rng = None if render_seed is None else np.random.default_rng(render_seed)
        out[key] = HardNegative(variant, caption_of(variant),
                                render_scene(variant, size, render_rng))
    return out


def winoground_pairs(n: int, image_size: int = 32, seed: int = 0, *, n_shapes: int = 2,
                     kinds: Sequence[str] = ("colour_swap", "relation_swap")) -> ModalDataset:
    """``n`` Winoground-style pairs: two images and two captions with the same words in a
    different order.

    Each pair is a random scene of ``n_shapes`` differently coloured objects (``image0``,
    ``caption0``) and its colour swap or relation swap (``image1``, ``caption1``), the kind drawn
    uniformly from ``kinds``; both images share the same rendering nuisance. Tensors:
    ``image0``/``image1`` float32 ``(n, 3, S, S)``, ``text0``/``text1`` long ``(n, L)``;
    meta: ``caption0``, ``caption1``, ``kind``, ``scene0``, ``scene1``. With a similarity
    ``s``, the text score asks ``s(I0, C0) > s(I0, C1)`` and ``s(I1, C1) > s(I1, C0)``; the image
    score ``s(I0, C0) > s(I1, C0)`` and ``s(I1, C1) > s(I0, C1)``; the group score both.
    """
    n = _check_int("n", n, 0)
    size = _check_image_size(image_size)
    n_shapes = _check_int("n_shapes", n_shapes, 2, MAX_SHAPES)
    allowed = ("colour_swap", "relation_swap")
    kinds = tuple(kinds)
    if not kinds or any(k not in allowed for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {list(allowed)}, got {list(kinds)}")
    scene_ss, render_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(scene_ss)
    scenes0 = sample_scenes(n, rng, n_shapes, min_shapes=n_shapes, distinct_colours=True)
    chosen = [kinds[int(i)] for i in rng.integers(len(kinds), size=n)]
    scenes1 = [hard_negative_scene(s, k, rng) for s, k in zip(scenes0, chosen)]
    images = [render_scenes(s, size, np.random.default_rng(render_ss)) if s
              else np.zeros((0, 3, size, size), dtype=np.float32) for s in (scenes0, scenes1)]
    captions = [[caption_of(s) for s in group] for group in (scenes0, scenes1)]
    vocab = shapes_vocab()
    width = max_tokens(n_shapes)
    tokens = [vocab.encode_batch(c, length=width, bos=True, eos=True)[0] for c in captions]
    return ModalDataset(
        {"image0": torch.from_numpy(images[0]), "text0": tokens[0],
         "image1": torch.from_numpy(images[1]), "text1": tokens[1]},
        name="winoground",
        meta={"caption0": captions[0], "caption1": captions[1], "kind": chosen,
              "scene0": scenes0, "scene1": scenes1},
        shapes={"image0": MODALITY_SHAPES["image"], "text0": MODALITY_SHAPES["text"],
                "image1": MODALITY_SHAPES["image"], "text1": MODALITY_SHAPES["text"]},
    )
