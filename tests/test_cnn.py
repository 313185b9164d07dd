"""cnn.py: the dense layer and unfold convolution equal their PyTorch references; encoders."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.cnn import (
    ConvEncoder,
    Dense,
    UnfoldConv2d,
    conv2d_unfold,
    image_encoder,
    spectrogram_encoder,
)


def _grads(module, x):
    x = x.clone().requires_grad_(True)
    module(x).pow(2).sum().backward()
    return [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", None])
def test_dense_equals_linear_with_copied_weights(activation):
    torch.manual_seed(0)
    ours = Dense(7, 5, activation)
    ref = nn.Linear(7, 5)
    ref.load_state_dict({"weight": ours.weight.detach(), "bias": ours.bias.detach()})
    f = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, None: lambda y: y}[activation]
    x = torch.randn(4, 3, 7)
    torch.testing.assert_close(ours(x), f(ref(x)), atol=1e-5, rtol=0)

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = ref

        def forward(self, x):
            return f(self.lin(x))

    for g_ours, g_ref in zip(_grads(ours, x), _grads(Ref(), x)):
        torch.testing.assert_close(g_ours, g_ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("stride,padding,kernel",
                         [(1, 0, 3), (1, 1, 3), (2, 1, 3), (2, 2, 5), (1, 0, (3, 2))])
def test_unfold_conv_equals_conv2d(stride, padding, kernel):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 11, 9)
    ref = nn.Conv2d(3, 4, kernel, stride, padding)
    ours = UnfoldConv2d(3, 4, kernel, stride, padding)
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)
    for g_ours, g_ref in zip(_grads(ours, x), _grads(ref, x)):
        torch.testing.assert_close(g_ours, g_ref, atol=1e-4, rtol=0)


def test_conv2d_unfold_without_bias_and_errors():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    torch.testing.assert_close(conv2d_unfold(x, w), F.conv2d(x, w), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"same C.*x \(1, 2, 5, 5\).*weight \(3, 4, 3, 3\)"):
        conv2d_unfold(x, torch.randn(3, 4, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_unfold(x, torch.randn(3, 2, 7, 7))


def test_dense_rejects_wrong_feature_size_and_activation():
    with pytest.raises(ValueError, match=r"expects \(\.\.\., 7\) inputs, got \(2, 6\)"):
        Dense(7, 3)(torch.randn(2, 6))
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(7, 3, "gelu")


def test_encoders_shapes_grid_and_errors():
    img = image_encoder(1, 28, out_dim=32)
    assert img(torch.randn(3, 1, 28, 28)).shape == (3, 32)
    spec = spectrogram_encoder(32, 32, out_dim=16)
    assert spec(torch.randn(2, 1, 32, 32)).shape == (2, 16)
    enc = ConvEncoder(3, (32, 32), width=8, out_dim=None)
    x = torch.randn(2, 3, 32, 32)
    grid = enc.grid(x)
    assert grid.shape == (2, 64, enc.grid_dim) and enc.grid_size == (8, 8)
    # region r = row-major position (i, j) of the feature map
    fmap = enc.features(x)
    torch.testing.assert_close(grid[:, 8 * 2 + 5], fmap[:, :, 2, 5])
    with pytest.raises(ValueError, match="out_dim=None"):
        enc(x)
    with pytest.raises(ValueError, match=r"expects \(batch, 1, 28, 28\), got \(3, 3, 28, 28\)"):
        img(torch.randn(3, 3, 28, 28))


def test_from_scratch_layers_name_a_wrong_dtype():
    dense = Dense(3, 2)
    with pytest.raises(ValueError, match=r"Dense expects torch.float32 input like its weights, got "
                                         r"torch.float64"):
        dense(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"conv2d_unfold \(x\) expects a float tensor, got dtype "
                                         r"torch.uint8"):
        conv2d_unfold(torch.zeros(1, 1, 5, 5, dtype=torch.uint8), torch.zeros(2, 1, 3, 3))
    assert dense.double()(torch.zeros(4, 3, dtype=torch.float64)).dtype == torch.float64
