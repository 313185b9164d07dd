"""Fusion on frozen, shared encoders: the same scores as the fusion on precomputed features, the
encoders never change, and absent modalities stay absent."""

import pytest
import torch
from torch import nn

from mmcourse.data.base import ModalDataset
from mmcourse.models.frozen import FrozenEncoders, encode_features
from mmcourse.models.fusion import make_fusion
from mmcourse.train import fit


class Enc(nn.Module):
    def __init__(self, d_in, d_out=8):
        super().__init__()
        self.out_dim, self.net = d_out, nn.Sequential(nn.Linear(d_in, d_out), nn.Dropout(0.5), nn.ReLU())

    def forward(self, x):
        return self.net(x.flatten(1))


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(3, (n,), generator=g)
    a, b = torch.randn(n, 5, generator=g) + y[:, None], torch.randn(n, 2, 3, generator=g)
    return ModalDataset({"a": a, "b": b, "label": y}, name="train")


def test_frozen_encoders_give_the_fusion_of_the_precomputed_features_and_stay_frozen():
    torch.manual_seed(0)
    raw = data()
    encoders = {"a": Enc(5), "b": Enc(6)}
    feats = encode_features(encoders, raw)
    assert feats.tensors["a"].shape == (64, 8) and torch.equal(feats.tensors["label"], raw.tensors["label"])
    fusion = make_fusion("early", feats, seed=0)
    model = FrozenEncoders(encoders, fusion)
    before = {k: v.clone() for k, v in model.encoders.state_dict().items()}
    fit(model, raw, epochs=3, lr=1e-2, batch_size=16, progress=False)
    assert all(torch.equal(v, model.encoders.state_dict()[k]) for k, v in before.items())
    model.eval()
    with torch.no_grad():
        direct = fusion({k: v for k, v in encode_features(encoders, raw).tensors.items()}).logits
        assert torch.allclose(model(raw.tensors).logits, direct, atol=1e-5)
    model.train()
    assert not model.encoders.training                      # dropout of a frozen encoder stays off


def test_absent_modalities_and_masks_pass_through():
    raw = data()
    encoders = {"a": Enc(5), "b": Enc(6)}
    fusion = make_fusion("late", encode_features(encoders, raw), seed=0).eval()
    model = FrozenEncoders(encoders, fusion).eval()
    with torch.no_grad():
        alone = model({"a": raw.tensors["a"], "b": None}).logits
        no_b = torch.zeros(64, dtype=torch.bool)
        masked = model({"a": raw.tensors["a"], "b": raw.tensors["b"], "b_mask": no_b}).logits
    assert torch.allclose(alone, masked, atol=1e-5)


def test_clear_errors():
    raw = data()
    with pytest.raises(KeyError, match=r"no \['c'\]"):
        encode_features({"c": Enc(5)}, raw)
    fusion = make_fusion("early", encode_features({"a": Enc(5), "b": Enc(6)}, raw))
    with pytest.raises(KeyError, match="no encoder for"):
        FrozenEncoders({"a": Enc(5)}, fusion)
    with pytest.raises(TypeError, match="ModalDataset"):
        encode_features({"a": Enc(5)}, raw.tensors)
