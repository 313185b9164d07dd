"""Exercise 02 (convolution): convolution and max pooling as unfold, then a weight-sharing
experiment (a CNN with global max pooling against an MLP on bars seen at new positions)."""


from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded


def _conv_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        x = randn(g, 1, 1, 4, 4)
        return [(x, randn(g, 1, 1, 3, 3), None, 1, 0),
                (randn(g, 2, 3, 5, 5), randn(g, 4, 3, 3, 3), randn(g, 4), 1, 0),
                (randn(g, 1, 2, 6, 6), randn(g, 3, 2, 3, 3), randn(g, 3), 2, 1),
                (randn(g, 1, 1, 7, 5), randn(g, 2, 1, 2, 3), None, 3, 2)]     # odd sizes: floor
    cases = []
    for i in range(8):
        b, c, o = randint(g, 1, 3), randint(g, 1, 3), randint(g, 1, 4)
        kh, kw = randint(g, 1, 3), randint(g, 1, 4)
        stride = (1, 1, 2, 3, 1, 2, 1, 2)[i]
        padding = (0, 1, 0, 1, 2, 2, 0, 1)[i]
        h, w = randint(g, max(kh, 3), 9), randint(g, max(kw, 3), 8)
        bias = randn(g, o) if i % 2 else None
        cases.append((randn(g, b, c, h, w), randn(g, o, c, kh, kw), bias, stride, padding))
    return cases


def _pool_ref(x, kernel, stride=None):
    return F.max_pool2d(x, kernel, stride)


def _pool_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 1, 1, 4, 4), 2, None),
                (-1 - torch.rand(1, 2, 6, 6, generator=g), 3, None),       # all negative: max < 0
                (randn(g, 2, 3, 5, 5), 3, 1),                              # overlapping windows
                (randn(g, 1, 1, 7, 7), 2, None)]                           # a leftover row/column
    cases = [(randn(g, 2, 2, 8, 8), 2, None), (randn(g, 1, 3, 9, 7), 3, 2), (randn(g, 3, 1, 6, 6), 2, 1),
             (-torch.rand(2, 2, 5, 5, generator=g) - 0.5, 2, None), (randn(g, 1, 4, 11, 10), 4, 3)]
    return cases


def make_bars(n: int, seed: int, anywhere: bool = True, size: int = 12, noise: float = 0.6):
    """``n`` noisy ``size × size`` images, each with one bar of 4 bright pixels: horizontal (label
    0) or vertical (label 1). With ``anywhere=False`` every bar lies in the left third of the
    image. Returns ``(images (n, 1, size, size) float32, labels (n,) int64)``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = noise * torch.randn(n, 1, size, size, generator=g)
    row = torch.randint(0, size - 4, (n, 1), generator=g)
    col = torch.randint(0, size - 4 if anywhere else size // 3 - 3, (n, 1), generator=g)
    step = torch.arange(4)
    vertical = labels[:, None] == 1
    rows = torch.where(vertical, row + step, row)          # (n, 4) pixels of each bar
    cols = torch.where(vertical, col, col + step)
    images[torch.arange(n)[:, None], 0, rows, cols] += 2.0
    return images, labels


def _train_full_batch(forward, params, x, y, steps: int = 60, lr: float = 0.02) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@single_threaded
def shift_experiment(seed: int) -> dict:
    """The reference of q3 (the protocol the master states)."""
    from mmcourse.models import UnfoldConv2d

    x, y = make_bars(256, seed, anywhere=False)
    x_test, y_test = make_bars(512, seed + 1, anywhere=True)
    torch.manual_seed(seed)
    conv, head = UnfoldConv2d(1, 8, 3), nn.Linear(8, 2)

    def cnn(z):
        return head(torch.relu(conv(z)).amax(dim=(2, 3)))

    _train_full_batch(cnn, [*conv.parameters(), *head.parameters()], x, y)
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Linear(32, 2))
    _train_full_batch(mlp, list(mlp.parameters()), x, y)
    with torch.no_grad():
        return {"cnn": float((cnn(x_test).argmax(1) == y_test).float().mean()),
                "mlp": float((mlp(x_test).argmax(1) == y_test).float().mean())}


def _shift_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(0,)]
    return [(randint(g, 1, 2**30),) for _ in range(3)]


_POOL = ("max_pool2d", "MaxPool2d", "max_pool2d_with_indices", "adaptive_max_pool2d",
         "AdaptiveMaxPool2d", "max_pool1d", "max_pool3d", "fractional_max_pool2d")
EX02 = Exercise("02_cnn_for_images_and_spectrograms", "Convolution and pooling as unfold; weight sharing", (
    Part("q1", "conv2d_unfold", 6, lambda x, w, b, s, p: F.conv2d(x, w, b, s, p), _conv_cases,
         forbidden=("conv2d", "conv1d", "conv3d", "Conv2d", "convolution", "_convolution",
                    "conv2d_unfold", "UnfoldConv2d"),
         hint="unfold x into columns (B, C·kh·kw, L), multiply by the weight as a matrix, reshape to "
              "H_out = floor((H + 2p - kh) / s) + 1 (likewise W_out)"),
    Part("q2", "max_pool2d", 4, _pool_ref, _pool_cases, forbidden=_POOL,
         hint="unfold each channel on its own (view x as (B·C, 1, H, W)), take the max over a window's "
              "k·k values -- never start a running max at 0: a window of negative values has a "
              "negative max; stride defaults to the kernel size"),
    Part("q3", "shift_experiment", 5, shift_experiment, _shift_cases, atol=0.06, rtol=0.0,
         case_timeout=30.0,
         hint="follow the protocol exactly (seeds, sizes, 60 full-batch Adam steps at lr 0.02) and "
              "return {'cnn': accuracy, 'mlp': accuracy} on the bars anywhere"),
))
