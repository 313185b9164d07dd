"""The Shapes dataset: rendering, canonical captions, labels, hard negatives, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data import shapes as S
from mmcourse.data.base import Splits


@pytest.fixture(scope="module")
def splits() -> Splits:
    return S.load_shapes(300, 60, 120, 32, seed=0)


@pytest.fixture(scope="module")
def scenes3() -> list:
    return S.sample_scenes(200, np.random.default_rng(7), 3)


def _phrase(obj) -> str:
    return f"a {obj['size']} {obj['colour']} {obj['kind']}"


# -- tensors ---------------------------------------------------------------------------------
def test_shapes_dtypes_and_ranges(splits):
    for split, n in zip(splits, (300, 60, 120)):
        t = split.tensors
        assert t["image"].shape == (n, 3, 32, 32) and t["image"].dtype == torch.float32
        assert 0.0 <= t["image"].min() and t["image"].max() <= 1.0
        assert t["text"].shape == (n, S.max_tokens(2)) and t["text"].dtype == torch.long
        assert t["length"].dtype == torch.long and t["label"].dtype == torch.long
        assert t["length"].tolist() == (t["text"] != 0).sum(1).tolist()
        assert (t["text"][:, 0] == 1).all()  # <bos>
        eos_at = t["text"].gather(1, (t["length"] - 1)[:, None]).squeeze(1)
        assert (eos_at == 2).all()
        assert len(split.meta["caption"]) == len(split.meta["scene"]) == n
    info = splits.info
    assert info["image_size"] == 32 and len(info["vocab"]) == 20
    assert set(info["distinct_captions"]) == {"train", "val", "test"}
    text = splits.describe()
    assert "Shapes" in text and "canonical caption id" in text


def test_image_size_64_and_three_shapes():
    sp = S.load_shapes(40, 4, 4, 64, max_shapes=3, seed=3)
    assert sp.train.tensors["image"].shape == (40, 3, 64, 64)
    assert sp.train.tensors["text"].shape[1] == S.max_tokens(3) == 18
    assert max(len(s) for s in sp.train.meta["scene"]) == 3


def test_profile_defaults():
    sp = S.load_shapes(n_train=10, profile="default")
    assert (len(sp.train), len(sp.val), len(sp.test)) == (10, 500, 1000)
    assert sp.info["image_size"] == 32


def test_same_scenes_at_any_image_size():
    a = S.load_shapes(20, 0, 0, 32, seed=5)
    b = S.load_shapes(20, 0, 0, 64, seed=5)
    assert a.train.meta["caption"] == b.train.meta["caption"]


# -- determinism and disjoint splits ---------------------------------------------------------
def test_seeded_determinism(splits):
    again = S.load_shapes(300, 60, 120, 32, seed=0)
    other = S.load_shapes(300, 60, 120, 32, seed=1)
    for a, b, c in zip(splits, again, other):
        for key in a.tensors:
            assert torch.equal(a.tensors[key], b.tensors[key]), key
        assert a.meta["caption"] == b.meta["caption"]
        assert not torch.equal(a.tensors["image"], c.tensors["image"])
        assert a.meta["caption"] != c.meta["caption"]


def test_splits_share_no_images(splits):
    seen = {}
    for split in splits:
        for img in split.tensors["image"]:
            key = img.numpy().tobytes()
            assert key not in seen or seen[key] == split.name
            seen[key] = split.name
    assert len(seen) == 480


# -- captions, vocabulary and labels ---------------------------------------------------------
def test_captions_decode_from_tokens(splits):
    vocab = splits.info["vocab"]
    for split in splits:
        for row, caption in zip(split.tensors["text"], split.meta["caption"]):
            assert vocab.decode(row) == caption
            assert S.caption_of(split.meta["scene"][split.meta["caption"].index(caption)]) == caption


def test_vocabulary_is_fixed_grammar():
    vocab = S.shapes_vocab()
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.itos[4:] == list(S.WORDS)
    assert S.max_caption_words(1) == 4 and S.max_caption_words(2) == 10
    assert S.max_caption_words(3) == 16


def test_labels_match_captions(splits):
    by_caption = {}
    for split in splits:
        for caption, label in zip(split.meta["caption"], split.tensors["label"].tolist()):
            assert by_caption.setdefault(caption, label) == label
    assert len(set(by_caption.values())) == len(by_caption)  # different caption, different label
    assert S.num_captions(1) == 48 and S.num_captions(2) == 48 + 48 * 47 * 2


def test_caption_relation_matches_positions(splits, scenes3):
    for scene in [*splits.train.meta["scene"], *scenes3]:
        caption = S.caption_of(scene)
        objects, rels = S.parse_caption(caption)
        ordered = [scene[i] for i in S.canonical_order(scene)]
        assert [o[::-1] for o in objects] == [(o["kind"], o["colour"], o["size"]) for o in ordered]
        assert len(caption.split()) <= S.max_caption_words(3)
        for rel, a, b in zip(rels, ordered, ordered[1:]):
            dx = b["position"][0] - a["position"][0]
            dy = b["position"][1] - a["position"][1]
            major, minor = (dy, abs(dx)) if rel == "above" else (dx, abs(dy))
            assert major > 0 and major >= S.AXIS_RATIO * minor  # clearly above / left of


def test_caption_examples():
    a = {"kind": "circle", "colour": "red", "size": "small", "position": (0.5, 0.25)}
    b = {"kind": "square", "colour": "blue", "size": "large", "position": (0.45, 0.75)}
    c = {"kind": "triangle", "colour": "green", "size": "large", "position": (0.8, 0.75)}
    assert S.caption_of([a]) == "a small red circle"
    assert S.caption_of([b, a]) == "a small red circle above a large blue square"
    assert S.caption_of([b, c]) == "a large blue square left of a large green triangle"
    assert (S.caption_of([c, a, b])
            == "a small red circle above a large blue square left of a large green triangle")
    with pytest.raises(ValueError, match="SIZE COLOUR KIND"):
        S.parse_caption("a red circle")
    with pytest.raises(ValueError, match="'above' or 'left of'"):
        S.parse_caption("a small red circle below a large blue square")


def test_colour_named_is_colour_rendered(scenes3):
    palette = np.array(list(S.COLOURS.values()))
    rng = np.random.default_rng(0)
    for scene in scenes3[:60]:
        image = S.render_scene(scene, 32, rng)
        masks = S.object_masks(scene, 32)
        for obj, mask in zip(scene, masks):
            inside = mask >= 1.0
            assert inside.sum() >= 8
            mean = image[:, inside].mean(1)
            assert S.COLOUR_NAMES[int(np.argmin(((palette - mean) ** 2).sum(1)))] == obj["colour"]
        outside = masks.sum(0) == 0
        assert image[:, outside].mean() < 0.2  # dark background


def test_sizes_and_kinds_render_distinctly():
    area = {}
    for kind in S.KINDS:
        for size in S.SIZES:
            obj = {"kind": kind, "colour": "red", "size": size, "position": (0.5, 0.5)}
            area[kind, size] = float(S.object_masks([obj], 32).sum())
    for kind in S.KINDS:
        assert area[kind, "large"] > 2.2 * area[kind, "small"]
    masks = {k: S.object_masks([{"kind": k, "colour": "red", "size": "large",
                                 "position": (0.5, 0.5)}], 32)[0] for k in S.KINDS}
    for i, k1 in enumerate(S.KINDS):
        for k2 in S.KINDS[i + 1:]:
            assert np.abs(masks[k1] - masks[k2]).sum() > 10, (k1, k2)


def test_objects_do_not_overlap(scenes3):
    for scene in scenes3:
        assert len({(o["kind"], o["colour"], o["size"]) for o in scene}) == len(scene)
        masks = S.object_masks(scene, 64)
        assert masks.sum(0).max() <= 1.0 + 1e-6
        for i, a in enumerate(scene):
            for b in scene[i + 1:]:
                gap = np.abs(np.subtract(a["position"], b["position"])).max()
                assert gap >= 2 * S.HALF_EXTENT["large"] + S.GAP - 1e-9


# -- hard negatives --------------------------------------------------------------------------
def test_hard_negatives(scenes3):
    rng = np.random.default_rng(1)
    multi = [s for s in scenes3[:60] if len(s) > 1]
    for scene in [*S.sample_scenes(40, rng, 2, min_shapes=2), *multi]:
        negs = S.hard_negatives(scene, 32)
        original = negs["original"]
        assert original.caption == S.caption_of(scene)
        assert {"relation_swap", "colour_change"} <= set(negs)
        triples = {(o["kind"], o["colour"], o["size"]) for o in scene}
        flips = {(k, c, "large" if z == "small" else "small") for k, c, z in triples}
        assert ("size_change" in negs) == (not flips <= triples)
        for kind, neg in negs.items():
            if kind == "original":
                continue
            assert neg.caption != original.caption, kind
            assert not np.array_equal(neg.image, original.image), kind
            same_words = sorted(neg.caption.split()) == sorted(original.caption.split())
            if kind.endswith("swap"):
                assert same_words, kind
            else:
                diff = sum(x != y for x, y in zip(neg.caption.split(), original.caption.split()))
                assert diff == 1 and len(neg.caption) > 0, kind
        if len({o["colour"] for o in scene}) == len(scene):
            assert "colour_swap" in negs
    single = S.hard_negatives(scenes3[0][:1], 32)
    assert set(single) == {"original", "colour_change", "size_change"}


def test_hard_negative_relation_swap_example():
    a = {"kind": "circle", "colour": "red", "size": "small", "position": (0.5, 0.25)}
    b = {"kind": "square", "colour": "blue", "size": "large", "position": (0.45, 0.75)}
    negs = S.hard_negatives([a, b], 32)
    assert negs["relation_swap"].caption == "a large blue square above a small red circle"
    assert negs["colour_swap"].caption == "a small blue circle above a large red square"


def test_winoground_pairs():
    pairs = S.winoground_pairs(24, 32, seed=2)
    again = S.winoground_pairs(24, 32, seed=2)
    assert torch.equal(pairs.tensors["image1"], again.tensors["image1"])
    assert pairs.tensors["image0"].shape == (24, 3, 32, 32)
    assert set(pairs.meta["kind"]) == {"colour_swap", "relation_swap"}
    vocab = S.shapes_vocab()
    for i in range(len(pairs)):
        c0, c1 = pairs.meta["caption0"][i], pairs.meta["caption1"][i]
        assert c0 != c1 and sorted(c0.split()) == sorted(c1.split())
        assert vocab.decode(pairs.tensors["text0"][i]) == c0
        assert vocab.decode(pairs.tensors["text1"][i]) == c1
        assert S.caption_of(pairs.meta["scene1"][i]) == c1
        assert not torch.equal(pairs.tensors["image0"][i], pairs.tensors["image1"][i])


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_shapes": 0}, ValueError, "max_shapes must be in 1..3"),
        ({"max_shapes": 4}, ValueError, "max_shapes must be in 1..3"),
        ({"image_size": 16}, ValueError, "at least 24 pixels"),
        ({"image_size": 32.0}, TypeError, "image_size must be an int"),
        ({"n_train": -1}, ValueError, "n_train must be >= 0"),
        ({"n_test": 2.5}, TypeError, "n_test must be an int"),
        ({"profile": "huge"}, ValueError, "unknown profile"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"n_train": 2, "n_val": 2, "n_test": 2, **kwargs}
    with pytest.raises(error, match=match):
        S.load_shapes(**args)


def test_bad_scenes():
    good = {"kind": "circle", "colour": "red", "size": "small", "position": (0.5, 0.5)}
    with pytest.raises(ValueError, match="colour must be one of"):
        S.caption_of([{**good, "colour": "orange"}])
    with pytest.raises(ValueError, match="position must"):
        S.render_scene([{**good, "position": (1.5, 0.2)}], 32)
    with pytest.raises(ValueError, match="1..3 objects"):
        S.caption_of([])
    with pytest.raises(ValueError, match="kinds must be"):
        S.winoground_pairs(2, kinds=("size_change",))


#: every public name of the module before it became a package of one-idea modules
PUBLIC_NAMES = (
    "AXIS_RATIO", "BACKGROUND", "COLOURS", "COLOUR_NAMES", "GAP", "GRAMMAR", "HALF_EXTENT",
    "HardNegative", "KINDS", "MAX_SHAPES", "MIN_IMAGE_SIZE", "MODALITY_SHAPES", "N_CODES", "RELATIONS",
    "SIZES", "SUPERSAMPLE", "WORDS", "canonical_order", "caption_label", "caption_of",
    "hard_negative_scene", "hard_negatives",
    "load_shapes", "max_caption_words", "max_tokens", "num_captions", "object_masks", "parse_caption",
    "relation", "render_scene", "render_scenes", "sample_scene", "sample_scenes", "shapes_vocab",
    "winoground_pairs",
)


def test_the_public_names_stay_importable_from_mmcourse_data_shapes():
    missing = [name for name in PUBLIC_NAMES if not hasattr(S, name)]
    assert not missing, missing
    assert sorted(S.__all__) == sorted(PUBLIC_NAMES)
    from mmcourse.data import load_shapes

    assert load_shapes is S.load_shapes
