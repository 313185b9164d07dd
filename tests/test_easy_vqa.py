"""The easy-VQA loader, on the real data set inside the installed ``easy-vqa`` package."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mmcourse.data import easy_vqa as E


@pytest.fixture(scope="module")
def splits():
    return E.load_easy_vqa()


def test_counts_match_the_published_data_set(splits):
    train, val, test = splits
    assert len(train) + len(val) == 38575 and len(test) == 9673
    assert splits.info["images"] == {"train": 3600, "val": 400, "test": 1000}
    assert len(set(train.tensors["image_id"].tolist())) == 3600
    assert len(set(val.tensors["image_id"].tolist())) == 400
    assert len(set(test.tensors["image_id"].tolist())) == 1000
    assert len(splits.info["answers"]) == 13
    # the package's own statistics: 28,407 train and 7,136 test yes/no questions
    yes_no = E.QUESTION_TYPES.index("yes/no")
    assert int((train.tensors["qtype"] == yes_no).sum() + (val.tensors["qtype"] == yes_no).sum()) == 28407
    assert int((test.tensors["qtype"] == yes_no).sum()) == 7136


def test_validation_is_carved_by_image(splits):
    train_ids = set(splits.train.tensors["image_id"].tolist())
    val_ids = set(splits.val.tensors["image_id"].tolist())
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(4000))
    other = E.load_easy_vqa(seed=1)
    assert set(other.val.tensors["image_id"].tolist()) != val_ids          # the seed draws the images


def test_tensors_hold_the_package_questions_answers_and_images(splits):
    import easy_vqa
    from PIL import Image

    questions, answers, image_ids = easy_vqa.get_test_questions()
    test, info = splits.test, splits.info
    assert test.meta["question"] == questions and test.meta["answer"] == answers
    assert test.tensors["image_id"].tolist() == image_ids
    assert [info["answers"][i] for i in test.tensors["label"].tolist()] == answers
    vocab = info["vocab"]
    for row in (0, 17, 9672):
        assert vocab.decode(test.tensors["text"][row]) == " ".join(E.question_words(questions[row]))
        path = easy_vqa.get_test_image_paths()[image_ids[row]]
        pixels = np.array(Image.open(path).convert("RGB")).transpose(2, 0, 1).copy()
        assert torch.equal(test.tensors["image"][row], torch.from_numpy(pixels))
    assert test.tensors["image"].dtype == torch.uint8 and test.tensors["image"].shape[1:] == (3, 64, 64)
    assert test.tensors["text"].shape[1] == info["max_len"] == 9


def test_question_types_follow_the_answer(splits):
    names = splits.info["question_types"]
    for split in splits:
        for t, a in zip(split.tensors["qtype"][:500].tolist(), split.meta["answer"][:500]):
            assert names[t] == E.question_type(a)
    assert E.question_type("yes") == "yes/no" and E.question_type("triangle") == "shape"
    assert E.question_type("teal") == "colour"


def test_split_images_gives_each_image_once(splits):
    ids, images = E.split_images(splits.val)
    assert len(ids) == len(images) == 400 and ids.tolist() == sorted(ids.tolist())
    first = splits.val.tensors["image_id"].tolist().index(int(ids[5]))
    assert torch.equal(images[5], splits.val.tensors["image"][first])


def test_unknown_words_become_unk():
    vocab = E.easy_vqa_vocab()
    ids = E.encode_questions(["what colour is the zebra?"], vocab, 9)
    assert ids[0, :5].tolist() == [vocab.stoi["what"], vocab.unk_id, vocab.stoi["is"], vocab.stoi["the"],
                                   vocab.unk_id]
    with pytest.raises(ValueError, match="more than length=3"):
        E.encode_questions(["what is the shape?"], vocab, 3)


# -- a missing or altered package fails clearly --------------------------------------------
@pytest.fixture
def fresh_cache():
    E._read_split_cached.cache_clear()
    E.easy_vqa_vocab.cache_clear()
    yield
    E._read_split_cached.cache_clear()
    E.easy_vqa_vocab.cache_clear()


def test_missing_package_says_how_to_install(monkeypatch, fresh_cache):
    monkeypatch.setitem(sys.modules, "easy_vqa", None)                    # import fails
    with pytest.raises(E.EasyVQAError, match="pip install easy-vqa"):
        E.load_easy_vqa()


def test_altered_counts_are_refused(monkeypatch, fresh_cache):
    import easy_vqa

    q, a, ids = easy_vqa.get_test_questions()
    monkeypatch.setattr(easy_vqa, "get_test_questions", lambda: (q[:-1], a[:-1], ids[:-1]))
    with pytest.raises(E.EasyVQAError, match="test questions: expected 9673, found 9672"):
        E.load_easy_vqa()


def test_altered_content_is_refused(monkeypatch, fresh_cache):
    import easy_vqa

    q, a, ids = easy_vqa.get_train_questions()
    flipped = ["no" if x == "yes" else x for x in a]
    monkeypatch.setattr(easy_vqa, "get_train_questions", lambda: (q, flipped, ids))
    with pytest.raises(E.EasyVQAError, match="train questions: SHA-256"):
        E.load_easy_vqa()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="val_images must be in 1..3999"):
        E.load_easy_vqa(val_images=4000)
    with pytest.raises(TypeError, match="seed must be an int"):
        E.load_easy_vqa(seed="0")


def test_no_question_word_is_about_position_or_orientation(splits):
    # what makes flips and quarter turns label-preserving augmentations (SymmetryBatches)
    words = set(splits.info["vocab"].itos)
    assert not words & {"left", "right", "above", "below", "top", "bottom", "up", "down", "upside"}


def test_dihedral_is_the_eight_symmetries_of_the_square():
    x = torch.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    expected = [torch.rot90(x, k % 4, dims=(-2, -1)) for k in range(8)]
    expected = [e.flip(-1) if k >= 4 else e for k, e in enumerate(expected)]
    for k in range(8):
        out = E.dihedral(x, torch.full((2,), k))
        assert torch.equal(out, expected[k])
    assert len({E.dihedral(x[:1], torch.tensor([k])).flatten().tolist().__repr__() for k in range(8)}) == 8
    mixed = E.dihedral(x, torch.tensor([0, 5]))                      # one symmetry per image
    assert torch.equal(mixed[0], x[0]) and torch.equal(mixed[1], expected[5][1])
    with pytest.raises(ValueError, match="square images"):
        E.dihedral(torch.zeros(1, 3, 4, 5), torch.tensor([1]))


def test_symmetry_batches_turn_images_and_keep_questions(splits):
    small = splits.val.subset(torch.arange(300))
    batches = E.SymmetryBatches(small, 64, seed=0)
    seen, turned = [], 0
    assert len(batches) == 5
    for batch in batches:
        for i in range(len(batch["label"])):
            j = int(torch.nonzero((small.tensors["text"] == batch["text"][i]).all(1)
                                  & (small.tensors["image_id"] == batch["image_id"][i]))[0])
            assert batch["label"][i] == small.tensors["label"][j]
            options = [E.dihedral(small.tensors["image"][j:j + 1], torch.tensor([k]))[0] for k in range(8)]
            assert any(torch.equal(batch["image"][i], o) for o in options)
            turned += not torch.equal(batch["image"][i], small.tensors["image"][j])
            seen.append(j)
    assert sorted(seen) == list(range(300))                          # every sample once per pass
    assert turned > 150                                              # 7 of 8 symmetries change the image
    first = [b["image_id"] for b in E.SymmetryBatches(small, 64, seed=3)]
    again = [b["image_id"] for b in E.SymmetryBatches(small, 64, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    with pytest.raises(TypeError, match="ModalDataset"):
        E.SymmetryBatches([1, 2], 8)
