"""Shapes: procedural scenes of coloured shapes, each with one canonical caption.

A **scene** is a list of 1-3 objects, each a dict::

    {"kind": "circle", "colour": "red", "size": "small", "position": (x, y)}

* ``kind``   -- circle, square, triangle (pointing up), cross (a plus sign);
* ``colour`` -- red, green, blue, yellow, magenta, cyan (far apart in RGB, see ``COLOURS``);
* ``size``   -- small (half-extent 0.095 of the image side) or large (0.16);
* ``position`` -- the object's centre ``(x, y)`` as a fraction of the image side, ``x`` to the
  right and ``y`` *down* (image rows), so a scene renders the same at any ``image_size``.

No two objects in a scene have the same (kind, colour, size), so every object has a unique
description. Objects never overlap: each reserves a large-size box, and boxes are at least
``GAP`` apart (rejection sampling, seeded), so a size change never creates an overlap. Images
are RGB on a dark background, anti-aliased by 2×2 supersampling; a rendering ``rng`` adds light
nuisance (background level, ±0.05 colour jitter, uniform pixel noise of std 0.02) that never makes an
attribute ambiguous.

**Grammar.** Objects are put in *canonical order*: ascending ``x + y`` (top-left first). For two
objects ``a`` before ``b`` in that order the relation is read on the dominant axis of
``b - a``: ``|dy| > |dx|`` gives "above", otherwise "left of" -- and ``x + y`` order guarantees
the earlier object is always above or left of the later one, so "below" / "right of" are never
needed and the caption is unique::

    caption  := object | object REL object | object REL object REL object
    object   := "a" SIZE COLOUR KIND              e.g. "a small red circle"
    REL      := "above" | "left of"               (between consecutive objects)

e.g. "a large blue square left of a small red circle above a small green cross": the square is
left of the circle, the circle is above the cross. Sampled scenes keep every described pair
clearly on one axis (``|major| >= 2 |minor|``, whole boxes apart), so the relation is
unambiguous to the eye. A caption is at most 10 words for 2 objects and 16 words for 3.

Swapping the colours of two objects, or exchanging two objects' positions, keeps the caption's
words and changes only their order -- the Winoground-style hard negatives of
``hard_negatives()`` and ``winoground_pairs()``.

**Labels.** ``caption_label(caption)`` is a fixed integer id of a caption (a mixed-radix code of
its objects and relations), the same in every split, so two scenes with the same caption share a
label: the "semantic match" used by retrieval metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

from mmcourse import config
from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.text import Vocab, tokenize

KINDS = ("circle", "square", "triangle", "cross")
#: RGB in [0, 1]; the closest pair (blue, cyan) is 0.6 apart.
COLOURS = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.15, 0.25, 1.00),
    "yellow": (0.95, 0.90, 0.15),
    "magenta": (0.90, 0.20, 0.90),
    "cyan": (0.15, 0.85, 0.90),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
#: half-extent of each size as a fraction of the image side
HALF_EXTENT = {"small": 0.095, "large": 0.16}
RELATIONS = ("above", "left of")
#: minimum distance between two objects' (large-size) boxes, as a fraction of the image side
GAP = 0.04
#: a described pair must have |major axis offset| >= AXIS_RATIO * |minor axis offset|
AXIS_RATIO = 2.0
MIN_IMAGE_SIZE = 24
MAX_SHAPES = 3
SUPERSAMPLE = 2
BACKGROUND = 0.08

#: the grammar's words, in a fixed order: the vocabulary never depends on sampled data
WORDS = ("a", *SIZES, *COLOUR_NAMES, *KINDS, "above", "left", "of")
GRAMMAR = ("object (REL object){0,2}; object = 'a' SIZE COLOUR KIND; "
           "REL = 'above' | 'left of'; objects in ascending x+y order")
N_CODES = len(KINDS) * len(COLOUR_NAMES) * len(SIZES)  # 48 distinct objects
MODALITY_SHAPES = {
    "image": "(3, S, S) RGB in [0, 1]",
    "text": "(L,) caption token ids: <bos> caption <eos>, 0 = <pad>",
    "length": "() non-pad tokens",
    "label": "() canonical caption id",
}

_MARGIN = HALF_EXTENT["large"] + 0.03  # centres stay this far from the border


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


# -- argument checks --------------------------------------------------------------------------
def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        want = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {want}, got {value}")
    return value


def _check_max_shapes(max_shapes) -> int:
    return _check_int("max_shapes", max_shapes, 1, MAX_SHAPES)


def _check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size must be an int number of pixels, got {image_size!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be at least {MIN_IMAGE_SIZE} pixels so a small shape spans "
            f"{2 * HALF_EXTENT['small'] * MIN_IMAGE_SIZE:.1f}+ px and three shapes fit, "
            f"got {image_size}"
        )
    return int(image_size)


def _check_scene(scene) -> list[dict]:
    if isinstance(scene, Mapping) or not isinstance(scene, Sequence) or isinstance(scene, str):
        raise TypeError(f"a scene is a list of object dicts, got {type(scene).__name__}")
    if not 1 <= len(scene) <= MAX_SHAPES:
        raise ValueError(f"a scene has 1..{MAX_SHAPES} objects, got {len(scene)}")
    checked = []
    for i, obj in enumerate(scene):
        if not isinstance(obj, Mapping):
            raise TypeError(f"scene object {i} must be a dict, got {type(obj).__name__}")
        for key, allowed in (("kind", KINDS), ("colour", COLOUR_NAMES), ("size", SIZES)):
            if obj.get(key) not in allowed:
                raise ValueError(
                    f"scene object {i}: {key} must be one of {list(allowed)}, got {obj.get(key)!r}"
                )
        pos = obj.get("position")
        try:
            x, y = (float(v) for v in pos)
        except (TypeError, ValueError):
            raise ValueError(
                f"scene object {i}: position must be (x, y) fractions of the image side, "
                f"got {pos!r}"
            ) from None
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"scene object {i}: position must lie in [0, 1]^2, got {pos!r}")
        checked.append({"kind": obj["kind"], "colour": obj["colour"], "size": obj["size"],
                        "position": (x, y)})
    return checked


# -- scene codes and canonical order ----------------------------------------------------------
def _code(obj: Mapping) -> int:
    """Object id 0..47: kind-major, then colour, then size."""
    return ((KINDS.index(obj["kind"]) * len(COLOUR_NAMES) + COLOUR_NAMES.index(obj["colour"]))
            * len(SIZES) + SIZES.index(obj["size"]))


def _decode(code: int) -> tuple[str, str, str]:
    code = int(code)
    return (KINDS[code // (len(COLOUR_NAMES) * len(SIZES))],
            COLOUR_NAMES[code // len(SIZES) % len(COLOUR_NAMES)], SIZES[code % len(SIZES)])


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


# -- sampling ---------------------------------------------------------------------------------
def _valid_layouts(pos: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate layouts ``pos`` (M, K, 2) are valid, and each one's canonical order."""
    m, k = pos.shape[:2]
    slot = np.arange(k)[None, :]
    used = slot < count[:, None]
    key = np.where(used, pos[..., 0] + pos[..., 1], np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    pos = np.take_along_axis(pos, order[..., None], axis=1)
    ok = np.ones(m, dtype=bool)
    min_sep = 2 * HALF_EXTENT["large"] + GAP
    for i in range(k):
        for j in range(i + 1, k):
            both = (j < count)
            d = np.abs(pos[:, j] - pos[:, i])
            major, minor = d.max(axis=1), d.min(axis=1)
            good = major >= min_sep
            if j == i + 1:  # a described pair: clearly on one axis
                good &= major >= AXIS_RATIO * minor
            ok &= ~both | good
    return ok, order


def _sample_arrays(n: int, rng: np.random.Generator, max_shapes: int, *, min_shapes: int = 1,
                   distinct_colours: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count (n,)``, object ``codes (n, K)`` (-1 = none) and ``pos (n, K, 2)``, canonical order."""
    k = max_shapes
    count = rng.integers(min_shapes, max_shapes + 1, size=n)
    codes = np.argsort(rng.random((n, N_CODES)), axis=1)[:, :k]
    if distinct_colours and k > 1:
        while True:
            colour = codes // len(SIZES) % len(COLOUR_NAMES)
            bad = np.zeros(n, dtype=bool)
            for i in range(k):
                for j in range(i + 1, k):
                    bad |= (j < count) & (colour[:, i] == colour[:, j])
            if not bad.any():
                break
            codes[bad] = np.argsort(rng.random((int(bad.sum()), N_CODES)), axis=1)[:, :k]
    codes = np.where(np.arange(k)[None, :] < count[:, None], codes, -1)
    pos = np.zeros((n, k, 2))
    todo = np.arange(n)
    while todo.size:
        cand = rng.uniform(_MARGIN, 1 - _MARGIN, size=(todo.size, k, 2))
        ok, order = _valid_layouts(cand, count[todo])
        cand = np.take_along_axis(cand, order[..., None], axis=1)
        pos[todo[ok]] = cand[ok]
        todo = todo[~ok]
    pos[codes < 0] = 0.0
    return count, codes, pos


def _arrays_to_scenes(count, codes, pos) -> list[list[dict]]:
    scenes = []
    for c, row, p in zip(count.tolist(), codes.tolist(), pos.tolist()):
        scene = []
        for code, xy in zip(row[:c], p[:c]):
            kind, colour, size = _decode(code)
            scene.append({"kind": kind, "colour": colour, "size": size, "position": tuple(xy)})
        scenes.append(scene)
    return scenes


def _scenes_to_arrays(scenes: Sequence[Sequence[Mapping]]):
    k = max((len(s) for s in scenes), default=1)
    n = len(scenes)
    count = np.zeros(n, dtype=np.int64)
    codes = np.full((n, k), -1, dtype=np.int64)
    pos = np.zeros((n, k, 2))
    for i, scene in enumerate(scenes):
        scene = _check_scene(scene)
        count[i] = len(scene)
        for j, obj in enumerate(scene):
            codes[i, j] = _code(obj)
            pos[i, j] = obj["position"]
    return count, codes, pos


def sample_scenes(n: int, rng: np.random.Generator, max_shapes: int = 2, *,
                  min_shapes: int = 1, distinct_colours: bool = False) -> list[list[dict]]:
    """``n`` random scenes of ``min_shapes..max_shapes`` objects (uniform count), objects listed
    in canonical order. ``distinct_colours`` makes every object's colour different."""
    n = _check_int("n", n, 0)
    max_shapes = _check_max_shapes(max_shapes)
    min_shapes = _check_int("min_shapes", min_shapes, 1, max_shapes)
    return _arrays_to_scenes(*_sample_arrays(n, rng, max_shapes, min_shapes=min_shapes,
                                             distinct_colours=distinct_colours))


def sample_scene(rng: np.random.Generator, max_shapes: int = 2) -> list[dict]:
    """One random scene of 1..``max_shapes`` objects (see ``sample_scenes``)."""
    return sample_scenes(1, rng, max_shapes)[0]


# -- rendering --------------------------------------------------------------------------------
def _inside(kind: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Whether offsets (in units of the half-extent) fall inside a shape of ``kind``."""
    name = KINDS[kind]
    if name == "circle":
        return dx * dx + dy * dy <= 1.0
    if name == "square":
        return (np.abs(dx) <= 0.85) & (np.abs(dy) <= 0.85)
    if name == "triangle":  # apex up at dy = -0.95, base at dy = +0.9, ~equilateral
        return (dy <= 0.9) & (np.abs(dx) <= 1.07 * (dy + 0.95) / 1.85)
    if name == "cross":
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 0.34) & (ay <= 0.95)) | ((ay <= 0.34) & (ax <= 0.95))
    raise ValueError(f"unknown kind id {kind}")


def _window(size: int) -> int:
    """Side in pixels of the square window that holds any object (a large one plus a margin)."""
    return min(size, int(np.ceil(2 * HALF_EXTENT["large"] * size)) + 3)


def _window_coverage(codes: np.ndarray, pos: np.ndarray, size: int):
    """Anti-aliased coverage of objects ``codes (M,)`` centred at ``pos (M, 2)``, computed only
    in a ``W × W`` window around each: ``(cov (M, W, W) in [0, 1], y0 (M,), x0 (M,))``."""
    ss, w = SUPERSAMPLE, _window(size)
    m = len(codes)
    radius = np.where(codes % len(SIZES) == 0, HALF_EXTENT["small"], HALF_EXTENT["large"])
    corner = np.floor((pos - HALF_EXTENT["large"]) * size).astype(np.int64) - 1
    corner = np.clip(corner, 0, size - w)  # (M, 2) as (x0, y0)
    sub = (np.arange(w * ss, dtype=np.float32) + 0.5) / ss  # sub-pixel centres in the window
    kinds = codes // (len(COLOUR_NAMES) * len(SIZES))
    cov = np.empty((m, w, w), dtype=np.float32)
    for kind in np.unique(kinds):
        rows = np.flatnonzero(kinds == kind)
        r = radius[rows].astype(np.float32)[:, None, None]
        start = (corner[rows] / size - pos[rows]).astype(np.float32)  # window corner - centre
        dx = (start[:, 0, None, None] + sub[None, None, :] / size) / r
        dy = (start[:, 1, None, None] + sub[None, :, None] / size) / r
        inside = _inside(int(kind), dx, dy).view(np.uint8).reshape(len(rows), w, ss, w, ss)
        acc = np.zeros((len(rows), w, w), dtype=np.uint8)
        for a in range(ss):
            for b in range(ss):
                acc += inside[:, :, a, :, b]
        cov[rows] = acc * np.float32(1.0 / (ss * ss))
    return cov, corner[:, 1], corner[:, 0]


def _coverage(codes: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """Full-frame coverage ``(M, S, S)`` in [0, 1] of the objects ``codes (M,)`` at ``pos``."""
    cov, y0, x0 = _window_coverage(codes, pos, size)
    w = cov.shape[1]
    out = np.zeros((len(codes), size, size), dtype=np.float32)
    for i in range(len(codes)):
        out[i, y0[i]:y0[i] + w, x0[i]:x0[i] + w] = cov[i]
    return out


def _render_arrays(count, codes, pos, size: int, rng: np.random.Generator | None,
                   chunk: int = 1024) -> np.ndarray:
    """Images ``(N, 3, S, S)``: background, then each object blended in inside its window."""
    n, k = codes.shape
    w = _window(size)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    palette = np.asarray(list(COLOURS.values()), dtype=np.float32)
    offsets = np.arange(w)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        m = sl.stop - sl.start
        if rng is None:
            bg = np.full((m, 1, 1, 1), BACKGROUND, dtype=np.float32)
            jitter = np.zeros((m, k, 3), dtype=np.float32)
        else:
            bg = rng.uniform(0.03, 0.13, size=(m, 1, 1, 1)).astype(np.float32)
            jitter = rng.uniform(-0.05, 0.05, size=(m, k, 3)).astype(np.float32)
        img = images[sl]  # a view: render in place
        img[...] = bg
        for j in range(k):
            rows = np.flatnonzero(codes[sl, j] >= 0)
            if rows.size == 0:
                continue
            c = codes[sl, j][rows]
            cov, y0, x0 = _window_coverage(c, pos[sl, j][rows], size)
            colour = palette[c // len(SIZES) % len(COLOUR_NAMES)] + jitter[rows, j]
            index = (rows[:, None, None, None], np.arange(3)[None, :, None, None],
                     (y0[:, None] + offsets)[:, None, :, None],
                     (x0[:, None] + offsets)[:, None, None, :])
            patch = img[index]
            img[index] = patch + cov[:, None] * (colour[:, :, None, None] - patch)
        if rng is not None:
            noise = rng.random(size=img.shape, dtype=np.float32)  # uniform: 6x faster
            noise -= np.float32(0.5)
            noise *= np.float32(0.07)  # std 0.07 / sqrt(12) = 0.02
            img += noise
        np.clip(img, 0.0, 1.0, out=img)
    return images


def render_scenes(scenes: Sequence[Sequence[Mapping]], image_size: int = 32,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Render many scenes at once: float32 ``(N, 3, S, S)`` in [0, 1].

    Without ``rng`` the rendering is clean (fixed background, exact colours, no noise); with one,
    light nuisance is added (see the module docstring).
    """
    size = _check_image_size(image_size)
    return _render_arrays(*_scenes_to_arrays(scenes), size, rng)


def render_scene(scene: Sequence[Mapping], image_size: int = 32,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one scene: float32 ``(3, S, S)`` in [0, 1] (see ``render_scenes``)."""
    return render_scenes([scene], image_size, rng)[0]


def object_masks(scene: Sequence[Mapping], image_size: int = 32) -> np.ndarray:
    """Each object's pixel coverage, float32 ``(n_objects, S, S)`` in [0, 1], in scene order
    (for checking colours, or comparing with attention maps)."""
    size = _check_image_size(image_size)
    count, codes, pos = _scenes_to_arrays([scene])
    return _coverage(codes[0, : count[0]], pos[0, : count[0]], size)


# -- hard negatives ---------------------------------------------------------------------------
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


# -- the dataset ------------------------------------------------------------------------------
def _make_split(name: str, n: int, size: int, max_shapes: int, ss: np.random.SeedSequence,
                vocab: Vocab) -> ModalDataset:
    scene_ss, render_ss = ss.spawn(2)
    arrays = _sample_arrays(n, np.random.default_rng(scene_ss), max_shapes)
    images = _render_arrays(*arrays, size, np.random.default_rng(render_ss))
    scenes = _arrays_to_scenes(*arrays)
    captions = [caption_of(s) for s in scenes]
    tokens, length = vocab.encode_batch(captions, length=max_tokens(max_shapes), bos=True,
                                        eos=True)
    labels = torch.tensor([caption_label(c) for c in captions], dtype=torch.long)
    return ModalDataset(
        {"image": torch.from_numpy(images), "text": tokens, "length": length, "label": labels},
        name=name, meta={"caption": captions, "scene": scenes}, shapes=MODALITY_SHAPES,
    )


def load_shapes(n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
                image_size: int | None = None, *, max_shapes: int = 2, seed: int = 0,
                profile: str | config.Profile | None = None) -> Splits:
    """Shapes train / val / test splits: rendered scenes and their canonical captions.

    Sizes and ``image_size`` default to the run profile (``profile`` names one, else
    ``MMCOURSE_PROFILE``): 4,000 / 500 / 1,000 at 32 px by default. Each split holds

    * ``image``  float32 ``(N, 3, S, S)`` in [0, 1];
    * ``text``   int64 ``(N, L)``: caption token ids ``<bos>`` caption ``<eos>``, padded with 0,
      ``L = info["max_len"]`` (the same key and info entry as AV-Digits' hints);
    * ``length`` int64 ``(N,)``: non-pad tokens per row;
    * ``label``  int64 ``(N,)``: ``caption_label`` of the caption (same caption, same label);

    and meta ``caption`` (str) and ``scene`` (list of object dicts). Splits come from disjoint
    seed streams (``SeedSequence(seed).spawn(3)``); the same arguments give bit-identical tensors,
    and the same ``seed`` and ``max_shapes`` give the same scenes at any ``image_size``.
    """
    prof = profile if isinstance(profile, config.Profile) else config.profile(profile)
    sizes = {"train": prof.shapes_train if n_train is None else n_train,
             "val": prof.shapes_val if n_val is None else n_val,
             "test": prof.shapes_test if n_test is None else n_test}
    sizes = {k: _check_int(f"n_{k}", v, 0) for k, v in sizes.items()}
    size = _check_image_size(prof.shapes_image_size if image_size is None else image_size)
    max_shapes = _check_max_shapes(max_shapes)
    seed = _check_int("seed", seed, 0)
    vocab = shapes_vocab()
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = [_make_split(name, n, size, max_shapes, ss, vocab)
              for (name, n), ss in zip(sizes.items(), streams)]
    train_captions = set(splits[0].meta["caption"])
    test_captions = splits[2].meta["caption"]
    seen = float(np.mean([c in train_captions for c in test_captions])) if test_captions else 0.0
    info = {
        "title": "Shapes (procedural scenes of coloured shapes + canonical captions)",
        "seed": seed,
        "image_size": size,
        "max_shapes": max_shapes,
        "vocab": vocab,
        "max_len": max_tokens(max_shapes),
        "grammar": GRAMMAR,
        "possible_captions": num_captions(max_shapes),
        "distinct_captions": {s.name: len(set(s.meta["caption"])) for s in splits},
        "test_captions_seen_in_train": round(seen, 3),
    }
    return Splits(*splits, info=info)
