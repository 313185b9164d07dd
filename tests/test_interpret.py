"""interpret.py: saliency against hand-computed gradients and the Jacobian; ablation by hand."""

import pytest
import torch
from torch import nn

from mmcourse.data.base import ModalDataset
from mmcourse.interpret import modality_ablation, saliency
from mmcourse.models.output import ModelOutput


class Linear(nn.Module):
    """s = W vec(x) + b: the gradient of s_c with respect to x is row c of W, reshaped."""

    modalities = ("image",)

    def __init__(self, shape=(1, 3, 3), classes=4):
        super().__init__()
        self.shape = shape
        self.fc = nn.Linear(int(torch.tensor(shape).prod()), classes)

    def forward(self, batch):
        return ModelOutput(logits=self.fc(batch["image"].flatten(1)))


class Mlp(nn.Module):
    """A nonlinear two-modality model with dropout (saliency must switch it off)."""

    modalities = ("image", "audio")

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(9 + 5, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 3))

    def forward(self, batch):
        return ModelOutput(logits=self.net(torch.cat([batch["image"].flatten(1), batch["audio"]], dim=1)))


def test_saliency_of_a_linear_model_is_the_weight_row():
    torch.manual_seed(0)
    model = Linear()
    x = torch.randn(5, 1, 3, 3)
    target = torch.tensor([0, 1, 2, 3, 1])
    got = saliency(model, {"image": x}, target=target, absolute=False)
    expected = model.fc.weight.detach()[target].view(5, 1, 3, 3)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(saliency(model, {"image": x}, target=target), expected.abs())
    # one int target for every sample
    torch.testing.assert_close(saliency(model, {"image": x}, target=2, absolute=False),
                               model.fc.weight.detach()[2].view(1, 1, 3, 3).expand(5, 1, 3, 3))


def test_saliency_matches_the_jacobian_of_a_nonlinear_model():
    torch.manual_seed(1)
    model = Mlp()
    model.train()
    image, audio = torch.randn(4, 1, 3, 3), torch.randn(4, 5)
    got = saliency(model, {"image": image, "audio": audio}, "image", absolute=False)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        predicted = model({"image": image, "audio": audio}).logits.argmax(1)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(
            lambda im, i=i: model({"image": im[None], "audio": audio[i:i + 1]}).logits[0], image[i])
        torch.testing.assert_close(got[i], jac[predicted[i]], rtol=1e-5, atol=1e-6)
    # the gradient with respect to the other modality, for a fixed class
    got_audio = saliency(model, {"image": image, "audio": audio}, "audio", target=1)
    jac = torch.autograd.functional.jacobian(
        lambda a: model({"image": image[:1], "audio": a[None]}).logits[0], audio[0])
    torch.testing.assert_close(got_audio[0], jac[1].abs(), rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_saliency_errors_are_clear():
    model = Linear()
    x = torch.randn(2, 1, 3, 3)
    with pytest.raises(KeyError, match="no tensor 'audio'"):
        saliency(model, {"image": x}, "audio")
    with pytest.raises(ValueError, match="float modality"):
        saliency(model, {"image": x.long()})
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 4\)"):
        saliency(model, {"image": x}, target=4)
    with pytest.raises(TypeError, match="batch dict"):
        saliency(model, x)


class Additive(nn.Module):
    """s = A + B where A, B are fixed per-sample score tables looked up by sample id; an absent
    modality (None) adds nothing. Ablation accuracies can then be worked out by hand."""

    modalities = ("a", "b")

    def __init__(self, table_a, table_b):
        super().__init__()
        self.register_buffer("ta", table_a)
        self.register_buffer("tb", table_b)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, batch):
        idx = batch["id"]
        s = torch.zeros(len(idx), self.ta.shape[1]) + self.dummy
        if batch["a"] is not None:
            s = s + self.ta[idx]
        if batch["b"] is not None:
            s = s + self.tb[idx]
        return ModelOutput(logits=s)


def test_modality_ablation_by_hand():
    # 4 samples, 2 classes, all labels 0.
    # a: confident and right on samples 0, 1; weakly wrong on 2, 3
    # b: weakly right on 2; confidently wrong on 3; silent (tie -> argmax 0 = right) on 0, 1
    ta = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 0.5], [0.0, 0.5]])
    tb = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    data = ModalDataset({"a": torch.zeros(4, 1), "b": torch.zeros(4, 1), "id": torch.arange(4),
                         "label": torch.zeros(4, dtype=torch.long)})
    model = Additive(ta, tb)
    model.train()
    report = modality_ablation(model, data, batch_size=3)
    # all: s = [2,0] [2,0] [1,.5] [0,3.5] -> right, right, right, wrong = 0.75
    # without a (b only): [0,0] [0,0] [1,0] [0,3] -> right, right, right, wrong = 0.75
    # without b (a only): right, right, wrong, wrong = 0.5
    assert report["all"] == 0.75
    assert report["without"] == {"a": 0.75, "b": 0.5}
    assert report["alone"] == {"a": 0.5, "b": 0.75}
    assert report["contribution"] == {"a": 0.0, "b": 0.25}
    assert model.training


def test_modality_ablation_errors_are_clear():
    model = Additive(torch.zeros(2, 2), torch.zeros(2, 2))
    data = ModalDataset({"a": torch.zeros(2, 1), "id": torch.arange(2), "label": torch.zeros(2).long()})
    with pytest.raises(KeyError, match=r"no \['b'\]"):
        modality_ablation(model, data)
    with pytest.raises(TypeError, match="ModalDataset"):
        modality_ablation(model, {"a": torch.zeros(2, 1)})
    with pytest.raises(ValueError, match="declares none"):
        modality_ablation(nn.Linear(2, 2), data)


def test_modality_ablation_of_a_fusion_model_on_av_digits(av_digits):
    """On a real (untrained) fusion model: removing a modality equals passing None by hand."""
    from mmcourse.models.fusion import make_fusion
    from mmcourse.train import evaluate

    model = make_fusion("late", av_digits, seed=0)
    test = av_digits.test.subset(slice(0, 200))
    report = modality_ablation(model, test)
    assert report["all"] == pytest.approx(evaluate(model, test)["accuracy"])
    with torch.no_grad():
        model.eval()
        logits = model({**test.tensors, "audio": None}).logits
    assert report["without"]["audio"] == pytest.approx(
        (logits.argmax(1) == test.tensors["label"]).float().mean().item())
    assert set(report["alone"]) == {"image", "audio", "text"}
