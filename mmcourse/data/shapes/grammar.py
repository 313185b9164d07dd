"""The Shapes caption grammar: one canonical caption per scene, its vocabulary and its label.

**Grammar.** Objects are put in *canonical order*: ascending ``x + y`` (top-left first). For two
objects ``a`` before ``b`` in that order the relation is read on the dominant axis of
``b - a``: ``|dy| > |dx|`` gives "above", otherwise "left of" -- and ``x + y`` order guarantees
the earlier object is always above or left of the later one, so "below" / "right of" are never
needed and the caption is unique::

    caption  := object | object REL object | object REL object REL object
    object   := "a" SIZE COLOUR KIND              e.g. "a small red circle"
    REL      := "above" | "left of"               (between consecutive objects)

e.g. "a large blue square left of a small red circle above a small green cross": the square is
left of the circle, the circle is above the cross. A caption is at most 10 words for 2 objects
and 16 words for 3.

**Labels.** ``caption_label(caption)`` is a fixed integer id of a caption (a mixed-radix code of
its objects and relations), the same in every split, so two scenes with the same caption share a
label: the "semantic match" used by retrieval metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmcourse.data.shapes.scene import (
    COLOUR_NAMES,
    KINDS,
    MAX_SHAPES,
    N_CODES,
    SIZES,
    _check_max_shapes,
    _check_scene,
    _code,
)
from mmcourse.data.text import Vocab, tokenize

RELATIONS = ("above", "left of")
#: the grammar's words, in a fixed order: the vocabulary never depends on sampled data
WORDS = ("a", *SIZES, *COLOUR_NAMES, *KINDS, "above", "left", "of")
GRAMMAR = ("object (REL object){0,2}; object = 'a' SIZE COLOUR KIND; "
           "REL = 'above' | 'left of'; objects in ascending x+y order")


# -- vocabulary and sizes ---------------------------------------------------------------------
def shapes_vocab() -> Vocab:
    """The fixed Shapes vocabulary: 4 specials + the grammar's 16 words (20 tokens)."""
    return Vocab(WORDS)


def max_caption_words(max_shapes: int = 2) -> int:
    """Longest caption in words: 4 per object and 2 per relation ("left of")."""
    _check_max_shapes(max_shapes)
    return 4 * max_shapes + 2 * (max_shapes - 1)


def max_tokens(max_shapes: int = 2) -> int:
    """Width ``L`` of the ``text`` tensor: the longest caption plus <bos> and <eos>."""
    return max_caption_words(max_shapes) + 2


def num_captions(max_shapes: int = 2) -> int:
    """How many distinct captions scenes of 1..``max_shapes`` distinct objects can have."""
    _check_max_shapes(max_shapes)
    total, objects = 0, 1
    for n in range(1, max_shapes + 1):
        objects *= N_CODES - (n - 1)
        total += objects * len(RELATIONS) ** (n - 1)
    return total


# -- canonical order and captions ---------------------------------------------------------
def canonical_order(scene: Sequence[Mapping]) -> list[int]:
    """Indices of ``scene``'s objects in caption order: ascending ``x + y`` (ties: ``y``)."""
    keys = [(o["position"][0] + o["position"][1], o["position"][1]) for o in scene]
    return sorted(range(len(scene)), key=lambda i: keys[i])


def relation(first: Mapping, second: Mapping) -> str:
    """"above" or "left of": ``first`` relative to ``second`` on the dominant axis.

    Only meaningful when ``first`` comes before ``second`` in canonical order (it is then above
    or left of it); otherwise an error.
    """
    dx = second["position"][0] - first["position"][0]
    dy = second["position"][1] - first["position"][1]
    if dx + dy < 0:
        raise ValueError("relation(first, second) needs first before second in x+y order")
    return "above" if abs(dy) > abs(dx) else "left of"


def _caption_parts(scene: Sequence[Mapping]) -> tuple[list[Mapping], list[str]]:
    ordered = [scene[i] for i in canonical_order(scene)]
    return ordered, [relation(a, b) for a, b in zip(ordered, ordered[1:])]


def caption_of(scene: Sequence[Mapping]) -> str:
    """The canonical caption of ``scene`` (see the module docstring for the grammar)."""
    ordered, rels = _caption_parts(_check_scene(scene))
    phrases = [f"a {o['size']} {o['colour']} {o['kind']}" for o in ordered]
    words = [phrases[0]]
    for rel, phrase in zip(rels, phrases[1:]):
        words += [rel, phrase]
    return " ".join(words)


def parse_caption(caption: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``(objects, relations)`` of a grammatical caption; objects as (size, colour, kind).

    Raises ``ValueError`` naming what was expected if ``caption`` is not in the grammar -- handy
    for checking a generated caption.
    """
    words = tokenize(caption)
    objects, rels, i = [], [], 0
    while True:
        chunk = words[i:i + 4]
        if (len(chunk) < 4 or chunk[0] != "a" or chunk[1] not in SIZES
                or chunk[2] not in COLOUR_NAMES or chunk[3] not in KINDS):
            raise ValueError(
                f"not a Shapes caption: expected 'a SIZE COLOUR KIND' at word {i} of {caption!r}"
            )
        objects.append((chunk[1], chunk[2], chunk[3]))
        i += 4
        if i == len(words):
            break
        if words[i] == "above":
            rels.append("above")
            i += 1
        elif words[i:i + 2] == ["left", "of"]:
            rels.append("left of")
            i += 2
        else:
            raise ValueError(
                f"not a Shapes caption: expected 'above' or 'left of' at word {i} of {caption!r}"
            )
        if len(objects) == MAX_SHAPES:
            raise ValueError(f"not a Shapes caption: more than {MAX_SHAPES} objects in {caption!r}")
    return objects, rels


def caption_label(caption: str) -> int:
    """The fixed integer id of a caption, equal across splits and datasets.

    Mixed radix over the object ids (``48`` values each) and relations (``2`` each), offset by
    the number of objects: 1 object -> ``[0, 48)``, 2 -> ``[48, 48 + 48² · 2)``, and so on.
    """
    objects, rels = parse_caption(caption)
    offset = sum(N_CODES**n * len(RELATIONS) ** (n - 1) for n in range(1, len(objects)))
    value = 0
    for size, colour, kind in objects:
        value = value * N_CODES + _code({"kind": kind, "colour": colour, "size": size})
    for rel in rels:
        value = value * len(RELATIONS) + RELATIONS.index(rel)
    return offset + value
