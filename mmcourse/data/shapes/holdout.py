"""Shapes with attribute combinations held out: pretraining data for zero-shot prediction.

A **combination** is a (colour, kind) pair such as ("green", "triangle"). Pretraining scenes
avoid every held-out combination -- no object, hence no caption, ever shows a green triangle --
while each colour and each kind on its own is still seen, with other partners. Zero-shot tests
then ask about scenes of one object, each labelled with its colour, kind and whether its
combination was ``seen`` in pretraining: compositional generalisation is the accuracy on the
unseen ones.

* ``has_combination(scene, combos)``: does any object of ``scene`` show one of ``combos``?
* ``sample_scenes_without(n, rng, combos, ...)``: rejection sampling of scenes that avoid them;
* ``shapes_split(scenes, ...)``: render scenes and tokenise their captions into a split with
  ``image``, ``text``, ``length``, ``label`` and, per scene, ``count`` (objects - 1) and, for
  one-object scenes, ``colour`` and ``kind`` ids (-1 otherwise) and ``seen``;
* ``load_pretraining`` / ``load_single_objects`` / ``load_counting``: the chapter's three data
  sets (pretraining pairs, zero-shot test objects, the downstream counting task).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.shapes.grammar import caption_label, caption_of, max_tokens, shapes_vocab
from mmcourse.data.shapes.render import _check_image_size, render_scenes
from mmcourse.data.shapes.sampling import sample_scenes
from mmcourse.data.shapes.scene import COLOUR_NAMES, KINDS, MAX_SHAPES, _check_int

#: The default held-out (colour, kind) combinations: every colour once, every kind at least once.
HELD_OUT = (("green", "triangle"), ("red", "square"), ("blue", "circle"), ("yellow", "cross"),
            ("magenta", "triangle"), ("cyan", "square"))

MODALITY_SHAPES = {
    "image": "(3, S, S) RGB in [0, 1]",
    "text": "(L,) caption token ids: <bos> caption <eos>, 0 = <pad>",
    "length": "() non-pad tokens",
    "label": "() canonical caption id",
    "count": "() number of objects - 1",
    "colour": "() colour id of a one-object scene (-1: several objects)",
    "kind": "() kind id of a one-object scene (-1: several objects)",
    "seen": "() 1 if every object's (colour, kind) was seen in pretraining",
}


def check_combinations(combos: Iterable) -> tuple[tuple[str, str], ...]:
    """``combos`` as a tuple of valid (colour, kind) pairs, or a clear error."""
    out = []
    for combo in combos:
        if not (isinstance(combo, Sequence) and not isinstance(combo, str) and len(combo) == 2):
            raise ValueError(f"a held-out combination is a (colour, kind) pair, got {combo!r}")
        colour, kind = combo
        if colour not in COLOUR_NAMES or kind not in KINDS:
            raise ValueError(
                f"held-out combination {combo!r}: colour must be one of {list(COLOUR_NAMES)} and "
                f"kind one of {list(KINDS)}"
            )
        out.append((colour, kind))
    return tuple(out)


def has_combination(scene: Sequence[Mapping], combos: Iterable) -> bool:
    """Whether an object of ``scene`` has one of the (colour, kind) ``combos``."""
    held = set(check_combinations(combos))
    return any((obj["colour"], obj["kind"]) in held for obj in scene)


def sample_scenes_without(n: int, rng: np.random.Generator, combos: Iterable = HELD_OUT, *,
                          max_shapes: int = 2, min_shapes: int = 1) -> list[list[dict]]:
    """``n`` random scenes (see ``sample_scenes``) none of whose objects shows a held-out
    combination: scenes are drawn in batches and those that show one are thrown away."""
    n = _check_int("n", n, 0)
    combos = check_combinations(combos)
    if len(set(combos)) >= len(COLOUR_NAMES) * len(KINDS):
        raise ValueError("every (colour, kind) combination is held out: no scene is left to sample")
    kept: list[list[dict]] = []
    while len(kept) < n:
        batch = sample_scenes(max(64, 2 * (n - len(kept))), rng, max_shapes, min_shapes=min_shapes)
        kept.extend(s for s in batch if not has_combination(s, combos))
    return kept[:n]


def shapes_split(scenes: Sequence[Sequence[Mapping]], name: str = "split", *, image_size: int = 32,
                 rng: np.random.Generator | None = None, combos: Iterable = HELD_OUT,
                 max_shapes: int = MAX_SHAPES) -> ModalDataset:
    """Render ``scenes`` (nuisance from ``rng``; ``None``: clean) into a ``ModalDataset`` with
    ``image``, ``text`` (``L = max_tokens(max_shapes)``), ``length``, ``label`` (caption id),
    ``count`` (objects - 1), ``colour`` / ``kind`` (ids for one-object scenes, else -1) and
    ``seen`` (no object shows one of ``combos``); meta ``caption`` and ``scene``."""
    size = _check_image_size(image_size)
    combos = check_combinations(combos)
    if not scenes:
        raise ValueError("shapes_split needs at least one scene")
    images = render_scenes(scenes, size, rng)
    captions = [caption_of(s) for s in scenes]
    tokens, length = shapes_vocab().encode_batch(captions, length=max_tokens(max_shapes),
                                                 bos=True, eos=True)
    one = [len(s) == 1 for s in scenes]
    tensors = {
        "image": torch.from_numpy(images), "text": tokens, "length": length,
        "label": torch.tensor([caption_label(c) for c in captions], dtype=torch.long),
        "count": torch.tensor([len(s) - 1 for s in scenes], dtype=torch.long),
        "colour": torch.tensor([COLOUR_NAMES.index(s[0]["colour"]) if o else -1
                                for s, o in zip(scenes, one)], dtype=torch.long),
        "kind": torch.tensor([KINDS.index(s[0]["kind"]) if o else -1
                              for s, o in zip(scenes, one)], dtype=torch.long),
        "seen": torch.tensor([not has_combination(s, combos) for s in scenes], dtype=torch.long),
    }
    return ModalDataset(tensors, name=name, meta={"caption": captions, "scene": [list(s) for s in scenes]},
                        shapes=MODALITY_SHAPES)


def load_pretraining(n_train: int = 4000, n_val: int = 500, *, image_size: int = 32,
                     combos: Iterable = HELD_OUT, max_shapes: int = MAX_SHAPES, seed: int = 0) -> Splits:
    """Pretraining pairs (scene, caption) of 1..``max_shapes`` objects that never show a
    held-out combination (train and val), and a test split of ``n_val`` one-object scenes
    over *all* combinations (``load_single_objects``). Seeded, disjoint streams per split."""
    combos = check_combinations(combos)
    streams = np.random.SeedSequence([_check_int("seed", seed, 0), 11]).spawn(3)
    splits = []
    for name, n, ss in (("train", n_train, streams[0]), ("val", n_val, streams[1])):
        scene_ss, render_ss = ss.spawn(2)
        scenes = sample_scenes_without(n, np.random.default_rng(scene_ss), combos,
                                       max_shapes=max_shapes)
        splits.append(shapes_split(scenes, name, image_size=image_size, combos=combos,
                                   rng=np.random.default_rng(render_ss), max_shapes=max_shapes))
    test = load_single_objects(n_val, image_size=image_size, combos=combos, max_shapes=max_shapes,
                               seed=int(streams[2].generate_state(1)[0]))
    info = {"title": "Shapes pretraining pairs with held-out (colour, kind) combinations",
            "held_out": combos, "seed": seed, "image_size": image_size, "max_shapes": max_shapes,
            "vocab": shapes_vocab(), "max_len": max_tokens(max_shapes)}
    return Splits(*splits, test, info=info)


def load_single_objects(n: int = 1200, *, image_size: int = 32, combos: Iterable = HELD_OUT,
                        max_shapes: int = MAX_SHAPES, seed: int = 1) -> ModalDataset:
    """``n`` one-object scenes, half of them showing a held-out combination (``seen = 0``) and
    half not (``seen = 1``), for zero-shot colour and kind classification."""
    n = _check_int("n", n, 2)
    combos = check_combinations(combos)
    scene_ss, render_ss = np.random.SeedSequence([_check_int("seed", seed, 0), 12]).spawn(2)
    rng = np.random.default_rng(scene_ss)
    unseen, seen = [], []
    while len(unseen) < n // 2 or len(seen) < n - n // 2:
        for s in sample_scenes(4 * n, rng, 1):
            (unseen if has_combination(s, combos) else seen).append(s)
    scenes = unseen[: n // 2] + seen[: n - n // 2]
    order = rng.permutation(n)
    return shapes_split([scenes[i] for i in order], "objects", image_size=image_size,
                        rng=np.random.default_rng(render_ss), combos=combos, max_shapes=max_shapes)


def load_counting(n_per_class: int = 100, *, image_size: int = 32, max_shapes: int = MAX_SHAPES,
                  seed: int = 2, name: str = "counting") -> ModalDataset:
    """A downstream task the pretraining never trained on: how many objects (1..``max_shapes``)
    a scene holds, ``label = count`` = objects - 1, ``n_per_class`` scenes per count, shuffled."""
    n_per_class = _check_int("n_per_class", n_per_class, 1)
    scene_ss, render_ss = np.random.SeedSequence([_check_int("seed", seed, 0), 13]).spawn(2)
    rng = np.random.default_rng(scene_ss)
    scenes = [s for c in range(1, max_shapes + 1)
              for s in sample_scenes(n_per_class, rng, c, min_shapes=c)]
    scenes = [scenes[i] for i in rng.permutation(len(scenes))]
    split = shapes_split(scenes, name, image_size=image_size, rng=np.random.default_rng(render_ss),
                         max_shapes=max_shapes)
    split.tensors["label"] = split.tensors["count"].clone()
    split.shapes["label"] = "() number of objects - 1 (the counting task's class)"
    return split


__all__ = ["HELD_OUT", "check_combinations", "has_combination", "load_counting", "load_pretraining",
           "load_single_objects", "sample_scenes_without", "shapes_split"]
