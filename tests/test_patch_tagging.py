"""Chapter 13, section 5: patch tokens pre-trained to name what is where, then handed to a VQA model."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.shapes_qa import NUM_CELL_CLASSES, load_shapes_qa, tagging_split
from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_tagging import PatchTagger, tagging_accuracy, transfer_patches
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


def test_transfer_copies_the_tokens_and_freezes_stem_and_projection():
    data = load_shapes_qa(n_train=20, n_val=10, n_test=1, seed=0, curriculum=True)
    torch.manual_seed(0)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    model = make_vqa_model("single", data.info, patch=2, layers=1)
    images = data.train.tensors["image"][:4]
    assert not torch.equal(model.patches(images), tagger.patches(images))
    assert transfer_patches(tagger, model) is model
    torch.testing.assert_close(model.patches(images), tagger.patches(images))
    frozen = {n: p.clone() for n, p in model.patches.named_parameters() if not n.startswith("pos")}
    assert frozen and not any(p.requires_grad for n, p in model.patches.named_parameters() if n in frozen)
    assert model.patches.pos.requires_grad
    params = [p for p in model.parameters() if p.requires_grad]
    fit(model, data.train, epochs=1, optimizer=torch.optim.AdamW(params, lr=1e-2), progress=False,
        device="cpu")
    for n, p in model.patches.named_parameters():
        if n in frozen:
            torch.testing.assert_close(p, frozen[n])


def test_transfer_rejects_models_it_cannot_fill():
    data = load_shapes_qa(n_train=4, n_val=1, n_test=1, seed=0)
    tagger = PatchTagger(NUM_CELL_CLASSES, 32, **SIZES)
    with pytest.raises(ValueError, match="patch embeddings differ"):
        transfer_patches(tagger, make_vqa_model("single", data.info, patch=4))
    with pytest.raises(TypeError, match="PatchEmbedding `patches`"):
        transfer_patches(tagger, make_vqa_model("product", data.info))


def test_tagging_accuracy_counts_objects_sizes_and_empty_cells():
    cells = torch.tensor([[0, 1 + 10, 0, 1 + 21]])                  # codes 10 and 21: (colour, kind) 5 and 10
    pred = torch.tensor([[0, 1 + 11, 3, 1 + 21]])                   # 11 = code 10 with the other size
    assert tagging_accuracy(pred, cells) == {"object": 0.5, "colour_kind": 1.0, "empty": 0.5}
    with pytest.raises(ValueError, match="one shape"):
        tagging_accuracy(pred, cells[:, :3])
    with pytest.raises(ValueError, match="both with and without"):
        tagging_accuracy(cells, torch.zeros_like(cells))
