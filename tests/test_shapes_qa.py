"""Shapes-QA: every answer follows from its scene, relations are balanced and order-sensitive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data import shapes_qa as Q
from mmcourse.data.shapes.grammar import canonical_order, relation


@pytest.fixture(scope="module", params=[False, True], ids=["chapter", "curriculum"])
def splits(request):
    return Q.load_shapes_qa(n_train=300, n_val=30, n_test=60, seed=0, curriculum=request.param)


def _above(a, b, word):
    """Whether ``a word b`` holds, read as the grammar reads a related pair."""
    first, second = (a, b) if canonical_order([a, b]) == [0, 1] else (b, a)
    true = relation(first, second)
    if word in ("above", "left of"):
        return word == true and first is a
    return Q.OPPOSITE[word] == true and first is b


def _find(scene, colour, kind):
    return next((o for o in scene if o["colour"] == colour and o["kind"] == kind), None)


def test_every_answer_follows_from_the_scene(splits):
    for split in splits:
        for q, a, scene, t in zip(split.meta["question"], split.meta["answer"], split.meta["scene"],
                                  split.tensors["qtype"].tolist()):
            words = q.rstrip("?").split()
            kind = Q.QUESTION_TYPES[t]
            if kind == "relation":
                rel = " ".join(words[4:-3])
                x, y = _find(scene, words[2], words[3]), _find(scene, words[-2], words[-1])
                assert x is not None and y is not None and x is not y
                assert a == ("yes" if _above(x, y, rel) else "no"), (q, scene)
            elif kind == "count":
                size = words[2] if words[2] in ("small", "large") else None
                n = sum(size is None or o["size"] == size for o in scene)
                assert a == Q.ANSWERS[2 + n]
            elif kind == "exists":
                assert a == ("yes" if _find(scene, words[3], words[4]) else "no")
            elif kind == "query":                     # what colour is the K / what shape is the C one
                if words[1] == "colour":
                    assert a == next(o["colour"] for o in scene if o["kind"] == words[-1])
                else:
                    assert a == next(o["kind"] for o in scene if o["colour"] == words[-2])
            else:                                     # is the C K on the left / at the top ...
                x, y = _find(scene, words[2], words[3])["position"]
                holds = {"left": x < 0.5, "right": x >= 0.5, "top": y < 0.5, "bottom": y >= 0.5}[words[-1]]
                assert kind == "position" and a == ("yes" if holds else "no"), (q, scene)


def test_scenes_name_each_object_uniquely(splits):
    for scene in splits.train.meta["scene"]:
        assert 2 <= len(scene) <= 3
        assert len({o["kind"] for o in scene}) == len(scene)
        assert len({o["colour"] for o in scene}) == len(scene)


def test_relations_are_balanced_and_need_word_order():
    big = Q.load_shapes_qa(n_train=2000, n_val=1, n_test=1, seed=3).train
    rel = big.tensors["qtype"] == Q.QUESTION_TYPES.index("relation")
    yes = (big.tensors["label"][rel] == Q.ANSWERS.index("yes")).float().mean().item()
    assert 0.45 < yes < 0.55
    # naming the two objects the other way round flips the answer: same bag of words
    rng = np.random.default_rng(0)
    scene = big.meta["scene"][0]
    for _ in range(20):
        q, a = Q._relation_question(scene, rng)
        words = q.split()
        rel_words = words[4:-3]
        swapped = ["is", "the", *words[-2:], *rel_words, "the", *words[2:4]]
        x, y = _find(scene, words[-2], words[-1]), _find(scene, words[2], words[3])
        assert sorted(swapped) == sorted(words)
        assert ("yes" if _above(x, y, " ".join(rel_words)) else "no") != a


def test_false_existence_uses_attributes_that_are_present(splits):
    types, answers = splits.train.tensors["qtype"].tolist(), splits.train.meta["answer"]
    rows = [i for i, (t, a) in enumerate(zip(types, answers))
            if Q.QUESTION_TYPES[t] == "exists" and a == "no"]
    assert rows
    for i in rows:
        words = splits.train.meta["question"][i].rstrip("?").split()
        scene = splits.train.meta["scene"][i]
        assert words[3] in {o["colour"] for o in scene} and words[4] in {o["kind"] for o in scene}


def test_curriculum_types_are_asked_once_per_scene_and_balanced():
    data = Q.load_shapes_qa(n_train=2000, n_val=1, n_test=1, seed=3, curriculum=True)
    big, info = data.train, data.info
    types = big.tensors["qtype"]
    assert info["question_types"] == Q.QUESTION_TYPES and len(info["answers"]) == 16
    assert torch.equal(torch.bincount(types), torch.full((len(Q.QUESTION_TYPES),), 2000))
    # the chapter's data keep their answers and word ids: the shipped checkpoints still read them
    base = Q.load_shapes_qa(n_train=2, n_val=1, n_test=1).info
    assert base["question_types"] == Q.BASE_TYPES and base["answers"] == list(Q.BASE_ANSWERS)
    assert info["vocab"].itos[:len(base["vocab"])] == base["vocab"].itos
    query = types == Q.QUESTION_TYPES.index("query")
    assert len(set(big.tensors["label"][query].tolist())) == len(Q.ANSWERS) - 6   # any colour or kind
    for name in ("relation", "exists", "position"):
        labels = big.tensors["label"][types == Q.QUESTION_TYPES.index(name)]
        assert 0.45 < (labels == Q.ANSWERS.index("yes")).float().mean().item() < 0.55, name


def test_tensors_and_determinism(splits):
    train = splits.train
    assert train.tensors["image"].dtype == torch.uint8 and train.tensors["image"].shape[1:] == (3, 32, 32)
    assert len(train) == len(splits.info["question_types"]) * 300
    assert train.tensors["text"].shape[1] == splits.info["max_len"]
    vocab = splits.info["vocab"]
    assert vocab.decode(train.tensors["text"][0]) + "?" == train.meta["question"][0]
    again = Q.load_shapes_qa(n_train=300, n_val=30, n_test=60, seed=0,
                             curriculum=len(splits.info["question_types"]) == 5)
    assert all(torch.equal(train.tensors[k], again.train.tensors[k]) for k in train.tensors)
    other = Q.load_shapes_qa(n_train=300, n_val=30, n_test=60, seed=1)
    assert not torch.equal(train.tensors["image"], other.train.tensors["image"])
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        Q.load_shapes_qa(n_train=0)
    with pytest.raises(TypeError, match="curriculum must be True or False"):
        Q.load_shapes_qa(n_train=2, curriculum="yes")


# -- what is where: the targets of the chapter's patch tagger -------------------------------------
def test_object_cells_mark_the_patch_that_holds_each_centre():
    split = Q.load_shapes_qa(n_train=40, n_val=1, n_test=1, seed=1).train
    from mmcourse.models.patch_embedding import patchify

    size = split.tensors["image"].shape[-1]
    for grid in (2, 4):
        tags = Q.tagging_split(split, grid)
        assert len(tags) == 40 and tags.tensors["cells"].shape == (40, grid * grid)
        for scene, cells in zip(tags.meta["scene"], tags.tensors["cells"]):
            assert int((cells > 0).sum()) == len(scene)
            for obj in scene:
                # mark the pixel at the object's centre; patchify must put it in the tagged cell
                marker = torch.zeros(1, 1, size, size)
                x, y = obj["position"]
                marker[0, 0, min(int(y * size), size - 1), min(int(x * size), size - 1)] = 1
                where = patchify(marker, size // grid)[0].sum(dim=1).argmax().item()
                code = int(cells[where]) - 1
                assert code >= 0
                kind, colour, big = code // 12, code // 2 % 6, code % 2       # kind-major, colour, size
                assert (Q.KINDS[kind], Q.COLOUR_NAMES[colour], ("small", "large")[big]) == \
                    (obj["kind"], obj["colour"], obj["size"])


def test_tagging_split_keeps_one_image_per_scene():
    split = Q.load_shapes_qa(n_train=12, n_val=1, n_test=1, seed=2, curriculum=True).train
    tags = Q.tagging_split(split, 4)
    first = [i for i, t in enumerate(split.tensors["qtype"].tolist()) if t == 0]
    assert torch.equal(tags.tensors["image"], split.tensors["image"][first])
    assert tags.meta["scene"] == [split.meta["scene"][i] for i in first]


def test_object_cells_and_tagging_split_reject_bad_input():
    scene = [{"kind": "circle", "colour": "red", "size": "small", "position": (0.2, 0.2)},
             {"kind": "square", "colour": "blue", "size": "large", "position": (0.8, 0.8)}]
    with pytest.raises(ValueError, match="two object centres in cell 0 of a 1x1 grid"):
        Q.object_cells([scene], 1)
    def code(kind, colour, size):                       # the Shapes code: kind-major, colour, size
        return (Q.KINDS.index(kind) * len(Q.COLOUR_NAMES) + Q.COLOUR_NAMES.index(colour)) * 2 + size
    assert Q.object_cells([scene], 2).tolist() == [[1 + code("circle", "red", 0), 0, 0,
                                                    1 + code("square", "blue", 1)]]
    with pytest.raises(TypeError, match="Shapes-QA split"):
        Q.tagging_split({"image": torch.zeros(1)}, 4)
