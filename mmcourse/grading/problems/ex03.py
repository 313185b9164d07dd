"""Exercise 03 (RNN): its parts, references and public / hidden test cases."""


from __future__ import annotations

import math

import torch

from mmcourse.grading.problems.base import Cases, Exercise, Part, randn
from mmcourse.models.rnn import ElmanCell, run_cell


def _elman_params(g: torch.Generator, f: int, h: int):
    s = 1 / math.sqrt(h)
    return randn(g, h, f) * s, randn(g, h, h) * s, randn(g, h) * s


def _elman(x, h, W, U, b) -> torch.Tensor:
    cell = ElmanCell(W.shape[1], W.shape[0])
    with torch.no_grad():
        cell.W.copy_(W), cell.U.copy_(U), cell.b_x.copy_(b), cell.b_h.zero_()
        return cell(x, h)


def _elman_seq(x, h0, W, U, b):
    cell = ElmanCell(W.shape[1], W.shape[0])
    with torch.no_grad():
        cell.W.copy_(W), cell.U.copy_(U), cell.b_x.copy_(b), cell.b_h.zero_()
        return run_cell(cell, x, h0)


def _step_cases(g: torch.Generator, public: bool) -> Cases:
    shapes = [(1, 2, 3), (4, 5, 2)] if public else [(1, 1, 1), (3, 4, 6), (5, 7, 2), (2, 3, 8),
                                                   (6, 2, 5), (1, 9, 4)]
    cases = []
    for b, f, h in shapes:
        W, U, bias = _elman_params(g, f, h)
        cases.append((randn(g, b, f), randn(g, b, h), W, U, bias))
    if not public:   # large pre-activations: tanh saturates, it must still be tanh
        W, U, bias = _elman_params(g, 3, 4)
        cases.append((randn(g, 2, 3) * 50, randn(g, 2, 4), W, U, bias))
    return cases


def _seq_cases(g: torch.Generator, public: bool) -> Cases:
    shapes = [(2, 3, 2, 4)] if public else [(1, 1, 3, 2), (3, 5, 2, 4), (2, 8, 4, 3), (4, 2, 1, 6),
                                            (1, 12, 3, 3)]
    cases = []
    for b, t, f, h in shapes:
        W, U, bias = _elman_params(g, f, h)
        cases.append((randn(g, b, t, f), randn(g, b, h), W, U, bias))
    return cases


_RNN_FORBIDDEN = ("RNN", "RNNCell", "rnn_tanh", "rnn_tanh_cell", "GRU", "LSTM", "GRUCell",
                  "ElmanCell", "run_cell", "SequenceEncoder")
EX03 = Exercise("03_rnns_for_sequences", "One step of an Elman RNN, then a whole sequence", (
    Part("q1", "rnn_step", 3, _elman, _step_cases, forbidden=_RNN_FORBIDDEN,
         hint="h_t = tanh(x_t W^T + h_{t-1} U^T + b)"),
    Part("q2", "rnn_forward", 2, _elman_seq, _seq_cases, forbidden=_RNN_FORBIDDEN,
         hint="loop over t, stack the states into (B, T, H), return (outputs, h_T)"),
))
