"""Shapes: procedural scenes of coloured shapes, each with one canonical caption.

A scene of 1-3 coloured shapes is sampled (seeded), rendered as an RGB image ``(3, S, S)`` and
described by the one caption its grammar gives it, e.g. "a large blue square left of a small red
circle above a small green cross". One idea per module:

* ``scene``     -- what a scene is (kinds, colours, sizes, positions), its checks, object codes;
* ``grammar``   -- canonical order, the caption grammar, its vocabulary and caption labels;
* ``sampling``  -- random non-overlapping, unambiguous layouts (rejection sampling);
* ``render``    -- anti-aliased coverage, blending and rendering nuisance;
* ``negatives`` -- hard negatives (colour / relation swaps, one-word changes), Winoground pairs;
* ``loader``    -- ``load_shapes``: seeded train / val / test splits.

Every public name is importable from here, ``from mmcourse.data.shapes import load_shapes``.
"""

from mmcourse.data.shapes.grammar import (
    GRAMMAR,
    RELATIONS,
    WORDS,
    canonical_order,
    caption_label,
    caption_of,
    max_caption_words,
    max_tokens,
    num_captions,
    parse_caption,
    relation,
    shapes_vocab,
)
from mmcourse.data.shapes.loader import MODALITY_SHAPES, load_shapes
from mmcourse.data.shapes.negatives import HardNegative, hard_negative_scene, hard_negatives, winoground_pairs
from mmcourse.data.shapes.render import (
    BACKGROUND,
    MIN_IMAGE_SIZE,
    SUPERSAMPLE,
    object_masks,
    render_scene,
    render_scenes,
)
from mmcourse.data.shapes.sampling import AXIS_RATIO, GAP, sample_scene, sample_scenes
from mmcourse.data.shapes.scene import COLOUR_NAMES, COLOURS, HALF_EXTENT, KINDS, MAX_SHAPES, N_CODES, SIZES

__all__ = [
    "AXIS_RATIO", "BACKGROUND", "COLOURS", "COLOUR_NAMES", "GAP", "GRAMMAR", "HALF_EXTENT", "KINDS",
    "MAX_SHAPES", "MIN_IMAGE_SIZE", "MODALITY_SHAPES", "N_CODES", "RELATIONS", "SIZES", "SUPERSAMPLE",
    "WORDS", "HardNegative", "canonical_order", "caption_label", "caption_of", "hard_negative_scene",
    "hard_negatives", "load_shapes", "max_caption_words", "max_tokens", "num_captions", "object_masks",
    "parse_caption", "relation", "render_scene", "render_scenes", "sample_scene", "sample_scenes",
    "shapes_vocab", "winoground_pairs",
]
