"""Chapter 13, section 5: a patch tagger trained to name what is where, whose posteriors become a
VQA transformer's tokens."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.shapes_qa import CODE_FACTORS, NUM_CELL_CLASSES, load_shapes_qa, tagging_split
from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_tagging import PatchTagger, TaggedPatches, load_tagger, tagging_accuracy
from mmcourse.models.vqa_transformers import make_vqa_model
from mmcourse.train import fit

SIZES = {"patch": 2, "dim": 64, "stem_width": 16}


def test_tagger_scores_every_patch_and_names_bad_batches():
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    out = tagger({"image": torch.zeros(3, 3, 32, 32, dtype=torch.uint8)})
    assert isinstance(out, ModelOutput) and out.logits.shape == (3, 16, NUM_CELL_CLASSES)
    with pytest.raises(KeyError, match="key 'image'"):
        tagger({"text": torch.zeros(3, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"expects images \(batch, 3, 32, 32\)"):
        tagger({"image": torch.zeros(3, 3, 16, 16)})
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        PatchTagger(1, 32, **SIZES)


def test_tagger_learns_what_is_where():
    """On 1,500 scenes, a few seconds of training: the object under each centre cell is named far
    above what the background prior gives (0 on object cells); chance on colour + kind is 1/24.
    (The chapter's tagger trains 60 epochs on 6,000 scenes and reaches about 0.88.)"""
    data = load_shapes_qa(n_train=1500, n_val=100, n_test=1, seed=0)
    train, val = tagging_split(data.train, 4), tagging_split(data.val, 4)
    torch.manual_seed(0)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    fit(tagger, train, epochs=25, lr=3e-3, weight_decay=0.05, target="cells", progress=False, device="cpu")
    with torch.no_grad():
        pred = tagger({"image": val.tensors["image"]}).logits.argmax(-1)
    scores = tagging_accuracy(pred, val.tensors["cells"])
    assert scores["colour_kind"] > 0.2, scores                      # measured 0.37
    assert scores["empty"] > 0.9, scores                            # measured 0.985


def _one_class_tagger(cls: int) -> PatchTagger:
    """A tagger that calls every patch class ``cls`` with probability ~1."""
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    with torch.no_grad():
        tagger.head.weight.zero_()
        tagger.head.bias.fill_(-30.0)
        tagger.head.bias[cls] = 30.0
    return tagger


def test_tagged_patches_sum_one_embedding_per_attribute_and_mask_empty_patches():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    kind, colour, size = 2, 4, 1                                     # code (kind·6 + colour)·2 + size
    tokens = TaggedPatches(_one_class_tagger(1 + (kind * 6 + colour) * 2 + size), 64, CODE_FACTORS)
    z, keep = tokens(images)
    assert z.shape == (2, 16, 64) and keep.all()
    kinds, colours, sizes = tokens.values
    for n in range(16):
        i, j = divmod(n, 4)                                          # row-major patches
        expected = kinds[kind] + colours[colour] + sizes[size] + tokens.rows[i, 0] + tokens.cols[0, j]
        torch.testing.assert_close(z[0, n], expected)
    empty = TaggedPatches(_one_class_tagger(0), 64, CODE_FACTORS)
    z, keep = empty(images)
    torch.testing.assert_close(z[1, 5], empty.empty + empty.rows[1, 0] + empty.cols[0, 1])
    assert keep.all()                                                # nothing found: every patch kept
    with pytest.raises(ValueError, match=r"1 \+ prod\(\[4, 6, 2\]\) = 49 classes"):
        TaggedPatches(PatchTagger(10, 32, **SIZES), 64, CODE_FACTORS)


def test_a_tagged_transformer_attends_only_to_patches_holding_objects():
    data = load_shapes_qa(n_train=4, n_val=1, n_test=1, seed=0, curriculum=True)
    torch.manual_seed(0)
    model = make_vqa_model("single", data.info, patch=2, layers=1, tagged=CODE_FACTORS)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    objects = [0, 5, 10]                          # a tagger that sees an object in these patches only
    with torch.no_grad():
        for p in tagger.parameters():
            p.zero_()                             # every token is its position embedding
        tagger.patches.pos[0, objects, 0] = 1.0
        tagger.head.weight[1 + 7, 0] = 60.0       # object code 7 where dim 0 is on
        tagger.head.bias[0] = 30.0                # empty elsewhere
    assert load_tagger(model, tagger) is model
    batch = {k: data.train.tensors[k][:6] for k in ("image", "text")}
    _, keep = model.patches(batch["image"])
    assert keep.tolist() == [[n in objects for n in range(16)]] * 6
    out = model(batch)
    assert (out.extras["cls_attention"][~keep] == 0).all()
    assert (out.extras["cls_attention"][keep] > 0).all()


def test_load_tagger_copies_a_frozen_tagger_that_training_leaves_alone():
    data = load_shapes_qa(n_train=20, n_val=10, n_test=1, seed=0, curriculum=True)
    torch.manual_seed(0)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    model = make_vqa_model("single", data.info, patch=2, layers=1, tagged=CODE_FACTORS)
    images = data.train.tensors["image"][:4]
    load_tagger(model, tagger)
    torch.testing.assert_close(model.patches.tagger({"image": images}).logits,
                               tagger({"image": images}).logits)
    before = {n: p.clone() for n, p in model.named_parameters()}
    assert not any(p.requires_grad for p in model.patches.tagger.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    fit(model, data.train, epochs=1, optimizer=torch.optim.AdamW(params, lr=1e-2), progress=False,
        device="cpu")
    after = dict(model.named_parameters())
    for n in before:
        changed = not torch.equal(before[n], after[n])
        assert changed != n.startswith("patches.tagger."), n          # the tagger alone is left alone


def test_load_tagger_rejects_models_it_cannot_fill():
    data = load_shapes_qa(n_train=4, n_val=1, n_test=1, seed=0)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    with pytest.raises(TypeError, match="TaggedPatches"):
        load_tagger(make_vqa_model("single", data.info, patch=2), tagger)
    with pytest.raises(ValueError, match="the two taggers differ"):
        load_tagger(make_vqa_model("single", data.info, patch=2, tagged=CODE_FACTORS),
                    PatchTagger(NUM_CELL_CLASSES, 32, patch=2, dim=32, stem_width=16))


def test_a_tagged_transformer_survives_a_checkpoint_round_trip(tmp_path):
    from mmcourse import pretrained
    from mmcourse.models.vqa_transformers import model_kwargs

    data = load_shapes_qa(n_train=4, n_val=1, n_test=1, seed=0, curriculum=True)
    kwargs = model_kwargs("single", data.info, patch=2, layers=1, tagged=list(CODE_FACTORS))
    model = make_vqa_model("single", data.info, patch=2, layers=1, tagged=list(CODE_FACTORS)).eval()
    pretrained.save(model, "tagged", kwargs, {}, folder=tmp_path)
    again = pretrained.load("tagged", folder=tmp_path)
    batch = {k: data.train.tensors[k] for k in ("image", "text")}
    torch.testing.assert_close(again(batch).logits, model(batch).logits)


def test_tagging_accuracy_counts_objects_sizes_and_empty_cells():
    cells = torch.tensor([[0, 1 + 10, 0, 1 + 21]])                  # codes 10 and 21: (colour, kind) 5 and 10
    pred = torch.tensor([[0, 1 + 11, 3, 1 + 21]])                   # 11 = code 10 with the other size
    assert tagging_accuracy(pred, cells) == {"object": 0.5, "colour_kind": 1.0, "empty": 0.5}
    with pytest.raises(ValueError, match="one shape"):
        tagging_accuracy(pred, cells[:, :3])
    with pytest.raises(ValueError, match="both with and without"):
        tagging_accuracy(cells, torch.zeros_like(cells))
