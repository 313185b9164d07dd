"""A Shapes scene: what it is made of, how it is checked, and its array form.

A **scene** is a list of 1-3 objects, each a dict::

    {"kind": "circle", "colour": "red", "size": "small", "position": (x, y)}

* ``kind``   -- circle, square, triangle (pointing up), cross (a plus sign);
* ``colour`` -- red, green, blue, yellow, magenta, cyan (far apart in RGB, see ``COLOURS``);
* ``size``   -- small (half-extent 0.095 of the image side) or large (0.16);
* ``position`` -- the object's centre ``(x, y)`` as a fraction of the image side, ``x`` to the
  right and ``y`` *down* (image rows), so a scene renders the same at any ``image_size``.

No two objects in a scene have the same (kind, colour, size), so every object has a unique
description. Each object has an id, kind-major then colour then size::

    code = (kind · |COLOURS| + colour) · |SIZES| + size  ∈ [0, N_CODES),  N_CODES = 4 · 6 · 2 = 48

and a batch of ``N`` scenes of at most ``K`` objects has an array form: ``count (N,)``,
``codes (N, K)`` (-1 = no object) and ``pos (N, K, 2)``, which sampling and rendering work on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

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
MAX_SHAPES = 3
N_CODES = len(KINDS) * len(COLOUR_NAMES) * len(SIZES)  # 48 distinct objects


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


# -- object codes and the array form ------------------------------------------------------
def _code(obj: Mapping) -> int:
    """Object id 0..47: kind-major, then colour, then size."""
    return ((KINDS.index(obj["kind"]) * len(COLOUR_NAMES) + COLOUR_NAMES.index(obj["colour"]))
            * len(SIZES) + SIZES.index(obj["size"]))


def _decode(code: int) -> tuple[str, str, str]:
    code = int(code)
    return (KINDS[code // (len(COLOUR_NAMES) * len(SIZES))],
            COLOUR_NAMES[code // len(SIZES) % len(COLOUR_NAMES)], SIZES[code % len(SIZES)])


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
