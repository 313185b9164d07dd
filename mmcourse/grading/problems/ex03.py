"""Exercise 03 (RNN): an Elman RNN over a padded batch, one GRU step, and a memory experiment
(Elman against GRU on a task that needs the first step of a long sequence)."""


from __future__ import annotations

import math

import torch

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded
from mmcourse.models.rnn import ElmanCell, GRUCell, gradient_through_time, run_cell


def _params(g: torch.Generator, f: int, h: int, gates: int = 1):
    s = 1 / math.sqrt(h)
    return randn(g, gates * h, f) * s, randn(g, gates * h, h) * s, randn(g, gates * h) * s


def _cell(kind, W, U, b_x, b_h):
    cell = kind(W.shape[1], U.shape[1])
    with torch.no_grad():
        cell.W.copy_(W), cell.U.copy_(U), cell.b_x.copy_(b_x), cell.b_h.copy_(b_h)
    return cell


def _elman_padded(x, lengths, h0, W, U, b):
    """Each sequence run alone over its own ``lengths[i]`` steps (``run_cell``); outputs zero at
    padded steps; the last state is the one after the sequence's last real step."""
    cell = _cell(ElmanCell, W, U, b, torch.zeros_like(b))
    B, T, _ = x.shape
    outputs, last = torch.zeros(B, T, U.shape[0]), torch.zeros(B, U.shape[0])
    with torch.no_grad():
        for i in range(B):
            n = int(lengths[i])
            out, h = run_cell(cell, x[i:i + 1, :n], h0[i:i + 1])
            outputs[i, :n], last[i] = out[0], h[0]
    return outputs, last


def _forward_cases(g: torch.Generator, public: bool) -> Cases:
    def case(b, t, f, h, lengths=None):
        W, U, bias = _params(g, f, h)
        lengths = torch.full((b,), t) if lengths is None else torch.tensor(lengths)
        return (randn(g, b, t, f), lengths, randn(g, b, h), W, U, bias)
    if public:
        return [case(2, 3, 2, 4), case(3, 5, 2, 3, [5, 2, 1])]     # padded: lengths 2 and 1
    cases = [case(1, 1, 3, 2), case(3, 6, 2, 4, [6, 3, 5]), case(4, 8, 4, 3, [1, 8, 2, 7]),
             case(2, 12, 3, 3, [12, 4])]
    W, U, bias = _params(g, 3, 4)
    cases.append((randn(g, 2, 4, 3) * 50, torch.tensor([4, 2]), randn(g, 2, 4), W, U, bias))   # saturated
    return cases


def _gru(x, h, W, U, b_x, b_h):
    with torch.no_grad():
        return _cell(GRUCell, W, U, b_x, b_h)(x, h)


def _gru_cases(g: torch.Generator, public: bool) -> Cases:
    def case(b, f, h, scale=1.0):
        W, U, b_x = _params(g, f, h, 3)
        return (randn(g, b, f) * scale, randn(g, b, h), W, U, b_x, randn(g, 3 * h))   # c_n != 0
    if public:
        return [case(1, 2, 3), case(4, 3, 2)]
    return [case(1, 1, 1), case(3, 4, 6), case(5, 7, 2), case(2, 3, 8, 30.0), case(6, 2, 5)]


@single_threaded
def memory_experiment(seed: int) -> dict:
    """The reference of q3 (the protocol the master states): how many decades ``||∂h_T/∂x_1||``
    lies below ``||∂h_T/∂x_T||`` over 40 steps: a fresh Elman cell, a fresh GRU cell, and a
    GRU cell whose update gate starts nearly open (bias +4)."""
    out = {}
    for name, kind, gate_bias in (("elman", ElmanCell, 0.0), ("gru", GRUCell, 0.0),
                                  ("gru_remember", GRUCell, 4.0)):
        torch.manual_seed(seed)
        cell = kind(4, 16)
        with torch.no_grad():
            cell.b_x[16:32] += gate_bias       # the update gate's bias (GRU only): z near 1
        g = gradient_through_time(cell, T=40, batch=8, seed=seed)
        out[name] = float(torch.log10(g[-1] / g[0]))
    return out


def _memory_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


_RNN_FORBIDDEN = ("RNN", "RNNCell", "rnn_tanh", "rnn_tanh_cell", "GRU", "LSTM", "GRUCell", "gru_cell",
                  "gru", "ElmanCell", "run_cell", "SequenceEncoder", "pack_padded_sequence")
EX03 = Exercise("03_rnns_for_sequences", "An RNN over a padded batch, a GRU step, and memory", (
    Part("q1", "rnn_forward", 6, _elman_padded, _forward_cases, forbidden=_RNN_FORBIDDEN,
         hint="h_t = tanh(x_t W^T + h_{t-1} U^T + b); at a padded step (t >= lengths[i]) sample i "
              "keeps its state and outputs zeros, so h_last is the state after its last real step"),
    Part("q2", "gru_step", 5, _gru, _gru_cases, forbidden=_RNN_FORBIDDEN,
         hint="r, z = sigmoid(x W_{r,z}^T + b_{r,z} + h U_{r,z}^T + c_{r,z}); "
              "n = tanh(x W_n^T + b_n + r * (h U_n^T + c_n)) -- the reset gate multiplies c_n too; "
              "h' = (1 - z) * n + z * h"),
    Part("q3", "memory_experiment", 5, memory_experiment, _memory_cases, atol=0.1, rtol=0.02,
         case_timeout=30.0,
         hint="follow the protocol exactly; return {'elman', 'gru', 'gru_remember'}: log10(g_T / g_1) each, "
              "as floats"),
))
