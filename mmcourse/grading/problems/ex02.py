"""Exercise 02 (convolution): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn


def _conv_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        x = randn(g, 1, 1, 4, 4)
        return [(x, randn(g, 1, 1, 3, 3), None, 1, 0),
                (randn(g, 2, 3, 5, 5), randn(g, 4, 3, 3, 3), randn(g, 4), 1, 0),
                (randn(g, 1, 2, 6, 6), randn(g, 3, 2, 3, 3), randn(g, 3), 2, 1)]
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


def _size_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(28, 3, 1, 0), (28, 3, 1, 1), (28, 3, 2, 1)]
    return [(randint(g, 5, 64), k, s, p) for k, s, p in
            [(1, 1, 0), (5, 1, 2), (4, 2, 1), (3, 3, 0), (7, 2, 3), (2, 2, 0)]]


EX02 = Exercise("02_cnn_for_images_and_spectrograms", "Convolution as unfold + matmul", (
    Part("q1", "conv2d_unfold", 4, lambda x, w, b, s, p: F.conv2d(x, w, b, s, p), _conv_cases,
         forbidden=("conv2d", "conv1d", "conv3d", "Conv2d", "convolution", "_convolution",
                    "conv2d_unfold", "UnfoldConv2d"),
         hint="unfold x into columns (B, C·kh·kw, L), multiply by the weight as a matrix, reshape"),
    Part("q2", "conv_output_size", 1, ref.conv_output_size, _size_cases,
         hint="floor((n + 2p - k) / s) + 1"),
))
