"""Shapes-QA: questions about Shapes scenes that need more than one object.

Scenes of 2-3 objects with distinct kinds and distinct colours (so "the red circle" names one
object) come from the Shapes generator (``mmcourse.data.shapes``); each scene gets one question
of each type, with its answer computed from the scene:

* ``relation`` -- "is the red circle above the blue square?" (yes / no) about two objects that
  the Shapes grammar relates (consecutive in canonical order, clearly on one axis); the relation
  word is the true one or its opposite ("above" / "below", "left of" / "right of") and the two
  objects are named in either order, each with probability 1/2, so half the answers are "yes".
  The *same bag of words* ("red circle blue square above") asks both "is A above B?" and "is B
  above A?": a model that ignores word order is at chance (50 %) on these, whatever it sees.
* ``count``    -- "how many large shapes are there?" / "how many shapes are there?"
  (zero / one / two / three);
* ``exists``   -- "is there a green triangle?" (yes / no): two attributes bound to one object;
  a false one pairs a colour and a kind that are both in the scene, on different objects,
  whenever the scene allows, so knowing *which* colours and kinds are present is not enough.

With ``load_shapes_qa(..., curriculum=True)``, two easier types are added:

* ``query``    -- "what colour is the circle?" / "what shape is the red one?" (a colour or a
  kind): one object found by one attribute, another of its attributes read off;
* ``position`` -- "is the red circle on the left?" (left / right / top / bottom half; yes / no).

Why the two easier types. The first three are balanced so that no single feature predicts the answer
(a false "is there a green triangle?" uses a colour and a kind that are both present; "above"
and "below" are asked equally often of both orders). Gradient descent then sees a flat loss: on
the first three types alone, even a transformer given the *true object list* (colour, kind,
size and position tokens) stays at chance on relations and existence (``docs/benchmarks/
bench_shapes_qa_cpu_2026-11-30.txt``). ``query`` questions teach it to find an object by a word
(existence then follows within two epochs), ``position`` ones to read where that object is;
with both, and its position given as a learned embedding of the object's 8 × 8 grid cell (as a
patch's is), that transformer answers relations too (0.99 on validation after 7 epochs). The
chapter's pixel transformer does the same once its image tokens say what is where (a frozen
patch tagger whose posteriors become factorised attribute tokens,
``mmcourse.models.patch_tagging``), so the chapter's checkpoints train on all five types.

``object_cells(scenes, grid)`` says *what is where* in a scene: for a ``grid × grid`` split of the
image, the object whose centre lies in each cell (1 + its Shapes code) or 0 for none;
``tagging_split(split, grid)`` pairs each scene's image once with those cells. The chapter uses
them to pre-train the transformer's patch tokens before it reads questions (its section 5).

Each split holds ``image`` uint8 ``(N, 3, S, S)``, ``text`` ``(N, L)`` word ids (0 = pad),
``label`` (answer id in ``info["answers"]``), ``qtype`` (index in ``info["question_types"]``),
and meta ``question``, ``answer`` and ``scene``. Splits come from disjoint seed streams.
"""

from __future__ import annotations

import numpy as np
import torch

from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.shapes.grammar import canonical_order, relation
from mmcourse.data.shapes.render import _check_image_size, _render_arrays
from mmcourse.data.shapes.sampling import _sample_arrays
from mmcourse.data.shapes.scene import (
    COLOUR_NAMES,
    KINDS,
    N_CODES,
    SIZES,
    _arrays_to_scenes,
    _check_int,
    _code,
)
from mmcourse.data.text import Vocab, tokenize

#: every type, the chapter's three first; ``curriculum=True`` adds the last two
QUESTION_TYPES = ("relation", "count", "exists", "query", "position")
BASE_TYPES = QUESTION_TYPES[:3]
ANSWERS = ("yes", "no", "zero", "one", "two", "three", *COLOUR_NAMES, *KINDS)
BASE_ANSWERS = ANSWERS[:6]
OPPOSITE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
WORDS = ("is", "the", "there", "a", "how", "many", "shapes", "are", "above", "below", "left", "right",
         "of", *SIZES, *COLOUR_NAMES, *KINDS)
CURRICULUM_WORDS = ("what", "colour", "shape", "one", "on", "at", "top", "bottom")
MAX_WORDS = 9                                      # "is the red circle left of the blue square"
MODALITY_SHAPES = {
    "image": "(3, S, S) uint8 RGB (models scale by 1/255)",
    "text": "(L,) question word ids, 0 = <pad>",
    "label": "() answer id (info['answers'])",
    "qtype": "() question type id (info['question_types'])",
}


def shapes_qa_vocab(curriculum: bool = False) -> Vocab:
    """The fixed Shapes-QA vocabulary (4 specials + the question words; ``curriculum``: + the
    query and position words, appended, so the other ids do not move)."""
    return Vocab(WORDS + CURRICULUM_WORDS if curriculum else WORDS)


def _relation_question(scene: list[dict], rng: np.random.Generator) -> tuple[str, str]:
    ordered = [scene[i] for i in canonical_order(scene)]
    j = int(rng.integers(len(ordered) - 1))
    a, b = ordered[j], ordered[j + 1]
    true = relation(a, b)                                   # a is `true` b
    word = true if rng.random() < 0.5 else OPPOSITE[true]
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    holds = (word == true) == (first is a)
    question = f"is the {first['colour']} {first['kind']} {word} the {second['colour']} {second['kind']}"
    return question, "yes" if holds else "no"


def _count_question(scene: list[dict], rng: np.random.Generator) -> tuple[str, str]:
    size = [None, *SIZES][int(rng.integers(3))]
    n = sum(size is None or o["size"] == size for o in scene)
    question = "how many shapes are there" if size is None else f"how many {size} shapes are there"
    return question, ANSWERS[2 + n]


def _exists_question(scene: list[dict], rng: np.random.Generator) -> tuple[str, str]:
    if rng.random() < 0.5:
        obj = scene[int(rng.integers(len(scene)))]
        return f"is there a {obj['colour']} {obj['kind']}", "yes"
    present = {(o["colour"], o["kind"]) for o in scene}
    # a colour of one object with the kind of another: both attributes are in the scene
    pairs = [(o["colour"], p["kind"]) for o in scene for p in scene if o is not p]
    pairs = [c for c in pairs if c not in present]
    if not pairs:
        pairs = [(c, k) for c in COLOUR_NAMES for k in KINDS if (c, k) not in present]
    colour, kind = pairs[int(rng.integers(len(pairs)))]
    return f"is there a {colour} {kind}", "no"


def _query_question(scene: list[dict], rng: np.random.Generator) -> tuple[str, str]:
    obj = scene[int(rng.integers(len(scene)))]
    if rng.random() < 0.5:
        return f"what colour is the {obj['kind']}", obj["colour"]
    return f"what shape is the {obj['colour']} one", obj["kind"]


def _position_question(scene: list[dict], rng: np.random.Generator) -> tuple[str, str]:
    obj = scene[int(rng.integers(len(scene)))]
    side = ("on the left", "on the right", "at the top", "at the bottom")[int(rng.integers(4))]
    x, y = obj["position"]
    holds = {"on the left": x < 0.5, "on the right": x >= 0.5,
             "at the top": y < 0.5, "at the bottom": y >= 0.5}
    return f"is the {obj['colour']} {obj['kind']} {side}", "yes" if holds[side] else "no"


QUESTIONS = {"relation": _relation_question, "count": _count_question, "exists": _exists_question,
             "query": _query_question, "position": _position_question}


def _distinct_scenes(n: int, rng: np.random.Generator):
    """Arrays of ``n`` scenes of 2-3 objects with distinct colours and distinct kinds: the
    Shapes layout sampler places them, then each slot gets its object (layouts reserve a
    large-size box, so any object fits any slot)."""
    count, _, pos = _sample_arrays(n, rng, 3, min_shapes=2)
    kinds = np.argsort(rng.random((n, len(KINDS))), axis=1)[:, :3]
    colours = np.argsort(rng.random((n, len(COLOUR_NAMES))), axis=1)[:, :3]
    sizes = rng.integers(len(SIZES), size=(n, 3))
    codes = (kinds * len(COLOUR_NAMES) + colours) * len(SIZES) + sizes
    codes = np.where(np.arange(3)[None, :] < count[:, None], codes, -1)
    return count, codes, pos


def _make_split(name: str, n_scenes: int, size: int, ss: np.random.SeedSequence,
                vocab: Vocab, qtypes: tuple[str, ...]) -> ModalDataset:
    scene_ss, render_ss, question_ss = ss.spawn(3)
    arrays = _distinct_scenes(n_scenes, np.random.default_rng(scene_ss))
    images = _render_arrays(*arrays, size, np.random.default_rng(render_ss))
    pixels = torch.from_numpy(np.round(images * 255).astype(np.uint8))
    scenes = _arrays_to_scenes(*arrays)
    rng = np.random.default_rng(question_ss)
    rows, questions, answers, types = [], [], [], []
    for i, scene in enumerate(scenes):
        for t, qtype in enumerate(qtypes):
            question, answer = QUESTIONS[qtype](scene, rng)
            rows.append(i)
            questions.append(question)
            answers.append(answer)
            types.append(t)
    ids = np.zeros((len(questions), MAX_WORDS), dtype=np.int64)
    for r, q in enumerate(questions):
        words = [vocab.stoi[w] for w in tokenize(q)]
        ids[r, :len(words)] = words
    index = torch.tensor(rows, dtype=torch.long)
    return ModalDataset(
        {"image": pixels[index], "text": torch.from_numpy(ids),
         "label": torch.tensor([ANSWERS.index(a) for a in answers], dtype=torch.long),
         "qtype": torch.tensor(types, dtype=torch.long)},
        name=name, meta={"question": [q + "?" for q in questions], "answer": answers,
                         "scene": [scenes[i] for i in rows]},
        shapes=MODALITY_SHAPES)


def load_shapes_qa(n_train: int = 3000, n_val: int = 300, n_test: int = 1000, image_size: int = 32, *,
                   seed: int = 0, curriculum: bool = False) -> Splits:
    """Shapes-QA train / val / test splits: ``n_*`` *scenes* each, one question of each type per
    scene (so ``3 · n`` samples; ``curriculum``: also a query and a position question, ``5 · n``,
    with answers and vocabulary extended at the end, so the other ids do not move). See the
    module docstring for the questions and tensors."""
    sizes = {k: _check_int(f"n_{k}", v, 1) for k, v in (("train", n_train), ("val", n_val), ("test", n_test))}
    size = _check_image_size(image_size)
    seed = _check_int("seed", seed, 0)
    if not isinstance(curriculum, bool):
        raise TypeError(f"curriculum must be True or False, got {curriculum!r}")
    vocab = shapes_qa_vocab(curriculum)
    qtypes = QUESTION_TYPES if curriculum else BASE_TYPES
    streams = np.random.SeedSequence([seed, 12]).spawn(3)
    splits = [_make_split(name, n, size, ss, vocab, qtypes) for (name, n), ss in zip(sizes.items(), streams)]
    info = {"title": "Shapes-QA (questions about 2-3 object Shapes scenes: relations, counts, "
                     "two-attribute existence)",
            "answers": list(ANSWERS if curriculum else BASE_ANSWERS), "question_types": qtypes,
            "vocab": vocab, "max_len": MAX_WORDS, "image_size": size, "seed": seed}
    return Splits(*splits, info=info)


#: classes of ``object_cells``: 0 = no object's centre in the cell, 1 + code for each Shapes object
NUM_CELL_CLASSES = 1 + N_CODES
#: the attributes a Shapes code packs, row-major: kind, colour, size (``TaggedPatches``' factors)
CODE_FACTORS = (len(KINDS), len(COLOUR_NAMES), len(SIZES))


def object_cells(scenes, grid: int) -> torch.Tensor:
    """What is where: ``(N, grid·grid)`` long, row-major over a ``grid × grid`` split of each
    image (the order of ``patchify``'s patches): 1 + the Shapes code of the object whose centre
    ``(x, y)`` lies in the cell, or 0. Objects in a Shapes scene are at least one large box plus a
    gap apart, so two centres share a cell only when ``grid`` is finer than the layouts allow
    (then an error)."""
    grid = _check_int("grid", grid, 1)
    out = torch.zeros(len(scenes), grid * grid, dtype=torch.long)
    for r, scene in enumerate(scenes):
        for obj in scene:
            x, y = obj["position"]
            cell = min(int(y * grid), grid - 1) * grid + min(int(x * grid), grid - 1)
            if out[r, cell]:
                raise ValueError(f"object_cells: scene {r} has two object centres in cell {cell} of a "
                                 f"{grid}x{grid} grid; use a coarser grid")
            out[r, cell] = 1 + _code(obj)
    return out


def tagging_split(split: ModalDataset, grid: int) -> ModalDataset:
    """One row per scene of a Shapes-QA ``split``: its ``image`` and ``cells`` =
    ``object_cells(scene, grid)``, the target of ``PatchTagger`` (chapter 13, section 5)."""
    if not isinstance(split, ModalDataset) or "scene" not in split.meta or "qtype" not in split.tensors:
        raise TypeError("tagging_split expects a Shapes-QA split (a ModalDataset with meta 'scene' and "
                        f"tensor 'qtype', from load_shapes_qa), got {type(split).__name__}")
    first = (split.tensors["qtype"] == 0).nonzero().flatten()           # one question per scene is type 0
    scenes = [split.meta["scene"][i] for i in first.tolist()]
    return ModalDataset({"image": split.tensors["image"][first], "cells": object_cells(scenes, grid)},
                        name=f"{split.name}-cells", meta={"scene": scenes},
                        shapes={"image": MODALITY_SHAPES["image"],
                                "cells": "(grid*grid,) 0 = no object centre, else 1 + Shapes code"})
