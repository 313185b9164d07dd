"""Chapter 13 models: patch embedding against a strided convolution, the VQA models' contract,
their masks and attention maps, the baselines, and clear errors on bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_embedding import PatchEmbedding, patchify, sinusoidal_positions
from mmcourse.models.vqa import (
    ImageOnly,
    ProductFusionVQA,
    QuestionOnly,
    accuracy_by_type,
    bag_of_words,
    majority_per_type,
)
from mmcourse.models.vqa_transformers import VQA_KINDS, DualStreamVQA, SingleStreamVQA, make_vqa_model

INFO = {"answers": list("abcdefg"), "vocab": list(range(12)), "image_size": 32, "max_len": 6}


def _batch(b: int = 5, size: int = 32, length: int = 6, vocab: int = 12, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, vocab, (b, length), generator=g)
    text[0, 3:] = 0                                                        # a short question
    text[1, 1:] = 0                                                        # a one-word question
    return {"image": torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8),
            "text": text, "label": torch.randint(0, 7, (b,), generator=g)}


# -- patch embedding -----------------------------------------------------------------------
def test_patchify_matches_unfold():
    x = torch.randn(2, 3, 12, 8)
    ours = patchify(x, 4)
    ref = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)            # (B, N, C·p·p)
    assert ours.shape == (2, 6, 48)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("stem, norm", [(None, False), (4, False), (4, True)])
def test_patch_embedding_is_a_strided_convolution(stem, norm):
    torch.manual_seed(0)
    emb = PatchEmbedding(32, 4, 16, stem_width=stem, stem_norm=norm).eval()
    x = torch.rand(3, 3, 32, 32)
    feats = emb.stem(x) if stem else x
    conv = emb.as_conv()
    assert conv.stride == (4, 4) and conv.kernel_size == (4, 4)
    ref = conv(feats).flatten(2).transpose(1, 2) + emb.pos
    torch.testing.assert_close(emb(x), ref)
    assert emb(x).shape == (3, emb.num_patches, 16)
    assert emb.num_patches == (64 if stem is None else 4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in emb.modules()) == norm


def test_deeper_stem_adds_stride_one_convolutions_and_keeps_the_grid():
    from mmcourse.models.patch_embedding import conv_stem

    stem = conv_stem(3, 4, depth=3)
    convs = [m for m in stem if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (2, 2)]
    assert [c.out_channels for c in convs] == [4, 4, 8]
    assert conv_stem(3, 4).state_dict().keys() == conv_stem(3, 4, depth=2).state_dict().keys()
    shallow = PatchEmbedding(32, 4, 16, stem_width=4)
    deep = PatchEmbedding(32, 4, 16, stem_width=4, stem_depth=3)
    x = torch.rand(2, 3, 32, 32)
    assert deep(x).shape == shallow(x).shape == (2, 4, 16)
    with pytest.raises(ValueError, match="depth must be an int >= 2"):
        conv_stem(3, 4, depth=1)


@pytest.mark.parametrize("kind", ["single", "dual"])
def test_vqa_transformers_take_a_deeper_stem(kind):
    from mmcourse.models.vqa_transformers import model_kwargs

    torch.manual_seed(0)
    model = make_vqa_model(kind, INFO, stem_depth=3)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.patches.stem) == 3
    again = type(model)(**model_kwargs(kind, INFO, stem_depth=3))
    again.load_state_dict(model.state_dict())                              # a checkpoint rebuilds it
    out = model(_batch())
    assert out.logits.shape == (5, 7) and torch.isfinite(out.logits).all()


def test_patch_embedding_scales_uint8_pixels():
    emb = PatchEmbedding(8, 4, 6)
    pixels = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(emb(pixels), emb(pixels.float() / 255))


def test_patch_embedding_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match="patch size 5 must divide"):
        PatchEmbedding(32, 5, 8)
    emb = PatchEmbedding(32, 4, 8)
    with pytest.raises(ValueError, match=r"expects images \(batch, 3, 32, 32\)"):
        emb(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="batch, channels, height, width"):
        emb(torch.rand(3, 32, 32))


def test_sinusoidal_positions_formula():
    pe = sinusoidal_positions(10, 8)
    t, i = 7, 2
    angle = torch.tensor(t / 10000 ** (2 * i / 8))
    assert pe[t, 2 * i].item() == pytest.approx(torch.sin(angle).item(), abs=1e-6)
    assert pe[t, 2 * i + 1].item() == pytest.approx(torch.cos(angle).item(), abs=1e-6)
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_positions(4, 5)


# -- the models' contract ------------------------------------------------------------------
@pytest.mark.parametrize("kind", VQA_KINDS)
def test_every_vqa_model_returns_model_output(kind):
    torch.manual_seed(0)
    overrides = {"patch": 2} if kind in ("single", "dual") else {}
    model = make_vqa_model(kind, INFO, **overrides)
    out = model(_batch())
    assert isinstance(out, ModelOutput) and out.logits.shape == (5, 7) and out.loss is None
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad and p.dim() > 1)


@pytest.mark.parametrize("cls", [SingleStreamVQA, DualStreamVQA])
def test_attention_maps_words_to_patches(cls):
    torch.manual_seed(0)
    model = cls(7, 12, 32, 6, patch=8, dim=16, heads=2)
    batch = _batch()
    att = model(batch).extras
    assert att["attention"].shape == (5, 6, 16) and att["cls_attention"].shape == (5, 16)
    assert (att["attention"][0, 3:] == 0).all() and (att["attention"][1, 1:] == 0).all()  # padding
    assert (att["attention"] >= 0).all()
    if cls is DualStreamVQA:                  # cross-attention: each word's weights sum to 1 over patches
        torch.testing.assert_close(att["attention"][2].sum(-1), torch.ones(6))


@pytest.mark.parametrize("cls", [SingleStreamVQA, DualStreamVQA])
def test_padding_words_change_nothing(cls):
    """What sits at a padding position (its position embedding) cannot reach the answer."""
    torch.manual_seed(0)
    model = cls(7, 12, 32, 6, patch=8, dim=16, heads=2).eval()
    batch = _batch()
    before = model(batch).logits
    with torch.no_grad():
        model.words.pos[:, 3:] += torch.randn(1, 3, 16)      # positions 3.. (a constant would vanish in LN)
    after = model(batch).logits
    torch.testing.assert_close(after[:2], before[:2])                      # rows 0, 1 are padded there
    assert not torch.allclose(after[2:], before[2:])


def test_single_stream_reads_word_order():
    """Unlike a bag of words, the transformer tells "A above B" from "B above A"."""
    torch.manual_seed(0)
    model = SingleStreamVQA(7, 12, 32, 6, patch=8, dim=16, heads=2).eval()
    batch = _batch()
    swapped = dict(batch, text=batch["text"].flip(1))
    assert not torch.allclose(model(batch).logits, model(swapped).logits)
    bow = ProductFusionVQA(7, 12, 32, 6).eval()
    torch.testing.assert_close(bow(batch).logits, bow(swapped).logits)


def test_question_only_and_image_only_read_one_modality():
    torch.manual_seed(0)
    q, v = QuestionOnly(7, 12, 6), ImageOnly(7, 32)
    batch = _batch()
    assert q.modalities == ("text",) and v.modalities == ("image",)
    other_image = dict(batch, image=torch.zeros_like(batch["image"]))
    torch.testing.assert_close(q(batch).logits, q(other_image).logits)
    assert v({"image": batch["image"]}).logits.shape == (5, 7)


def test_bad_batches_get_clear_errors():
    model = SingleStreamVQA(7, 12, 32, 6, patch=8, dim=16, heads=2)
    batch = _batch()
    with pytest.raises(KeyError, match=r"expects modalities \['image', 'text'\].*missing \['text'\]"):
        model({"image": batch["image"]})
    with pytest.raises(ValueError, match=r"expects images \(batch, 3, 32, 32\)"):
        model(dict(batch, image=batch["image"][:, :, :16]))
    with pytest.raises(ValueError, match=r"expects question ids \(batch, 6\)"):
        model(dict(batch, text=batch["text"][:, :4]))
    with pytest.raises((TypeError, ValueError), match="int64|integer|token"):
        model(dict(batch, text=batch["text"].float()))
    with pytest.raises(ValueError, match="5 images but 4 questions"):
        model(dict(batch, text=batch["text"][:4]))
    with pytest.raises(ValueError, match="unknown VQA model 'cnn'"):
        make_vqa_model("cnn", INFO)
    with pytest.raises(KeyError, match="max_len"):
        make_vqa_model("single", {k: v for k, v in INFO.items() if k != "max_len"})


# -- baselines and scores --------------------------------------------------------------------
def test_bag_of_words_marks_present_words():
    text = torch.tensor([[3, 1, 3, 0], [2, 0, 0, 0]])
    assert bag_of_words(text, 5).tolist() == [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]]


def test_majority_per_type():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    types = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    pred = majority_per_type(labels, types, torch.tensor([1, 0, 2]), 4)
    assert pred.tolist() == [2, 0, 2]                                       # unseen type: overall majority
    with pytest.raises(ValueError, match="equal length"):
        majority_per_type(labels, types[:3], types, 4)


def test_accuracy_by_type():
    pred, y = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 0])
    types = torch.tensor([0, 0, 1, 1])
    scores = accuracy_by_type(pred, y, types, ("a", "b", "c"))
    assert scores == {"overall": 0.5, "a": 1.0, "b": 0.0}


@pytest.mark.parametrize("kind", VQA_KINDS)
def test_model_kwargs_rebuild_the_same_model(kind):
    # what a shipped checkpoint records: plain arguments that rebuild make_vqa_model's model
    from mmcourse.models.vqa_transformers import model_kwargs

    overrides = {"patch": 2} if kind in ("single", "dual") else {}
    torch.manual_seed(0)
    model = make_vqa_model(kind, INFO, **overrides)
    again = type(model)(**model_kwargs(kind, INFO, **overrides))
    again.load_state_dict(model.state_dict())
    batch = _batch()
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(batch).logits, again(batch).logits)
    assert all(isinstance(v, int | float) for v in model_kwargs(kind, INFO, **overrides).values())


# -- the shipped checkpoints (scripts/train_vqa_checkpoints.py) -----------------------------
@pytest.mark.slow
def test_shipped_easy_vqa_model_reads_the_image():
    from mmcourse import pretrained
    from mmcourse.data.easy_vqa import load_easy_vqa

    model = pretrained.load("easy_vqa_single")
    test = load_easy_vqa().test.subset(torch.arange(1500))
    with torch.no_grad():
        pred = torch.cat([model({k: test.tensors[k][i:i + 500] for k in ("image", "text")}).logits.argmax(1)
                          for i in range(0, 1500, 500)])
    names = ("yes/no", "shape", "colour")
    scores = accuracy_by_type(pred, test.tensors["label"], test.tensors["qtype"], names)
    assert scores["overall"] > 0.95 and scores["shape"] > 0.9        # the question alone: ~0.67, ~0.35


def test_shipped_shapes_qa_models_share_one_budget_and_the_transformer_relates_objects():
    """The goal of chapter 13: on Shapes-QA relations the transformer beats the element-wise
    product by >= 15 points. Scored here, on the checkpoints' own test split."""
    from mmcourse import pretrained
    from mmcourse.data.shapes_qa import load_shapes_qa

    product, single = (pretrained.metadata(f"shapes_qa_{k}") for k in ("product", "single"))
    for key in ("n_train", "n_val", "n_test", "curriculum", "epochs", "batch_size", "seed"):
        assert product[key] == single[key], key
    test = load_shapes_qa(n_train=1, n_val=1, n_test=single["n_test"], seed=single["seed"],
                          curriculum=single["curriculum"]).test
    names = tuple(single["test_accuracy"])[1:]
    scores = {}
    for kind in ("product", "single"):
        model = pretrained.load(f"shapes_qa_{kind}")
        assert isinstance(model, SingleStreamVQA if kind == "single" else ProductFusionVQA)
        with torch.no_grad():
            pred = torch.cat([model({k: v[i:i + 500] for k, v in test.tensors.items()}).logits.argmax(1)
                              for i in range(0, len(test), 500)])
        scores[kind] = accuracy_by_type(pred, test.tensors["label"], test.tensors["qtype"], names)
        recorded = pretrained.metadata(f"shapes_qa_{kind}")["test_accuracy"]
        assert scores[kind] == pytest.approx(recorded, abs=0.01)          # what the script recorded
    assert 0.4 < scores["product"]["relation"] < 0.6                  # a bag of words is at chance
    assert scores["single"]["relation"] - scores["product"]["relation"] >= 0.15
