"""The VQA explorer (chapter 13): driven without a browser on a small Shapes-QA model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.config import seeded
from mmcourse.data.shapes_qa import load_shapes_qa
from mmcourse.models.vqa_transformers import make_vqa_model
from mmcourse.widgets import Explorer
from mmcourse.widgets.vqa import answer_question, encode_question, vqa_explorer


@pytest.fixture(scope="module")
def setup():
    data = load_shapes_qa(n_train=4, n_val=2, n_test=6, seed=0)
    with seeded(0):
        model = make_vqa_model("single", data.info, patch=2)
    return model, data


def test_answer_question_matches_the_model(setup):
    model, data = setup
    row = 0
    res = answer_question(model, data.test.tensors["image"][row], data.test.meta["question"][row], data.info)
    model.eval()
    with torch.no_grad():
        batch = {"image": data.test.tensors["image"][:1], "text": data.test.tensors["text"][:1]}
        logits = model(batch).logits
    np.testing.assert_allclose(res["probabilities"], torch.softmax(logits, -1)[0].numpy(), atol=1e-6)
    assert res["answer"] == data.info["answers"][int(logits.argmax())]
    assert res["attention"].shape == (len(res["words"]), 16) and res["grid"] == (4, 4)
    assert res["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)


def test_typed_questions_map_unknown_words(setup):
    _, data = setup
    ids, words, unknown = encode_question("Is the RED zebra above the circle?", data.info["vocab"], 9)
    assert words == ["is", "the", "red", "zebra", "above", "the", "circle"] and unknown == ["zebra"]
    assert ids[0, 3].item() == data.info["vocab"].unk_id and ids[0, 7:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="non-empty question"):
        answer_question(setup[0], data.test.tensors["image"][0], "  ", data.info)


def test_explorer_follows_image_question_and_word(setup):
    model, data = setup
    ex = vqa_explorer(model, data.test, data.info)
    assert isinstance(ex, Explorer)
    assert ex.controls["image"].max == 5                                  # 6 scenes, 3 questions each
    first = ex.update(image=1, question=data.test.meta["question"][3])
    assert "the data set's answer" in first["html"]
    typed = ex.update(question="is there a zebra")
    assert "zebra" in typed["html"] and "unk" in typed["html"]
    word = ex.update(word="word 4")
    assert word["words"][3] == "zebra"


def test_a_data_set_question_follows_the_image_and_a_typed_one_stays(setup):
    model, data = setup
    ex = vqa_explorer(model, data.test, data.info)
    asked = data.test.meta["question"]
    ex.update(image=0, question=asked[1])                                 # scene 0's count question
    moved = ex.update(image=2)
    assert ex.controls["question"].value == asked[6]                      # scene 2's first question
    assert "the data set's answer" in moved["html"] and asked[6] in moved["html"]
    ex.update(question="is there a zebra")
    ex.update(image=3)
    assert ex.controls["question"].value == "is there a zebra"
