"""Forced alignment: the single best CTC path for a *known* transcript (Viterbi).

The CTC loss sums over every path ``π`` with ``B(π) = l``; forced alignment keeps the best one.
Replace the sums of the forward recursion (``mmcourse.alignment.ctc``) by maxima, in log space,
over the same lattice of states ``l' = ∅ l_1 ∅ ... l_S ∅``:

    δ_1(0) = log y_1(∅),   δ_1(1) = log y_1(l_1)
    δ_t(s) = log y_t(l'_s) + max(δ_{t-1}(s), δ_{t-1}(s-1), [l'_s ≠ ∅, l'_s ≠ l'_{s-2}] δ_{t-1}(s-2))

end in ``s = 2S`` or ``2S - 1`` and follow the back-pointers. The path spends a run of frames in
each symbol's state ``2i + 1``: symbol ``i``'s **span** ``[first, last + 1)``. A trained CTC
model is *spiky*: it says the symbol in one or two frames and blank elsewhere, so a span marks
*where* a word is, not where it starts and ends. ``word_boundaries`` turns the spans into word
boundaries: a word is the run of non-silent frames around its span (silence is where the model
says blank with probability at least ``silence``), cut halfway between two spans when no silence
separates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.alignment.ctc import extend_with_blanks

__all__ = ["Alignment", "boundary_errors", "forced_align", "word_boundaries"]


@dataclass
class Alignment:
    """A forced alignment of one sequence.

    ``states (T,)``: the state of ``l'`` at each frame; ``symbols (T,)``: the symbol emitted
    (``blank`` or a target symbol); ``spans (S, 2)``: each target symbol's frames
    ``[first, last + 1)``; ``score``: the path's log-probability ``Σ_t log y_t(π_t)``.
    """

    states: Tensor
    symbols: Tensor
    spans: Tensor
    score: float


def forced_align(log_probs: Tensor, target, blank: int = 0, blank_penalty: float = 0.0) -> Alignment:
    """Viterbi over the CTC lattice: the likeliest path of ``log_probs (T, V)`` that collapses to
    ``target (S,)``. Raises ``ValueError`` when ``T`` is too short for the target.

    ``blank_penalty`` ``β ≥ 0`` scores the blank as ``log y_t(∅) - β`` (dividing its probability
    by ``e^β``, as dividing posteriors by a prior does): the path then stays in a symbol's state
    wherever the symbol is at least ``e^{-β}`` times as likely as the blank, so a spiky model's
    spans widen towards the words' true extents. ``score`` is always the unpenalised
    ``Σ_t log y_t(π_t)`` of the path.
    """
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 2 or not log_probs.is_floating_point():
        raise ValueError("log_probs must be a float tensor (T, V) for one sequence, got "
                         f"{getattr(log_probs, 'shape', type(log_probs).__name__)}")
    lp = log_probs.detach().double().cpu()
    t_max, v = lp.shape
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if len(target) == 0:
        raise ValueError("forced_align needs a non-empty target")
    if ((target < 0) | (target >= v) | (target == blank)).any():
        raise ValueError(f"target symbols must be in [0, {v}) and not the blank {blank}, "
                         f"got {target.tolist()}")
    repeats = int((target[1:] == target[:-1]).sum())
    if t_max < len(target) + repeats:
        raise ValueError(f"{t_max} frames cannot hold the target of {len(target)} symbols with "
                         f"{repeats} repeats: CTC needs T >= S + repeats = {len(target) + repeats}")
    ext = extend_with_blanks(target, blank)
    n = len(ext)
    skip = torch.zeros(n, dtype=torch.bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = lp[:, ext] - float(blank_penalty) * (ext == blank).double()[None]
    neg = torch.tensor([float("-inf")], dtype=torch.float64)
    delta = torch.full((n,), float("-inf"), dtype=torch.float64)
    delta[:2] = emit[0, :2]
    back = torch.zeros(t_max, n, dtype=torch.long)
    for t in range(1, t_max):
        cands = torch.stack([delta, torch.cat([neg, delta[:-1]]),
                             torch.cat([neg, neg, delta[:-2]]).masked_fill(~skip, float("-inf"))])
        best, arg = cands.max(dim=0)                              # arg: 0 stay, 1 step, 2 skip
        delta = emit[t] + best
        back[t] = torch.arange(n) - arg
    s = n - 1 if delta[n - 1] >= delta[n - 2] else n - 2
    states = torch.empty(t_max, dtype=torch.long)
    for t in range(t_max - 1, -1, -1):
        states[t] = s
        s = int(back[t, s])
    symbols = ext[states]
    score = float(lp[torch.arange(t_max), symbols].sum())
    spans = torch.zeros(len(target), 2, dtype=torch.long)
    for i in range(len(target)):
        frames = torch.nonzero(states == 2 * i + 1).flatten()
        spans[i] = torch.stack([frames[0], frames[-1] + 1])
    return Alignment(states=states, symbols=symbols, spans=spans, score=score)


def word_boundaries(log_probs: Tensor, spans: Tensor, blank: int = 0, silence: float = 0.999) -> Tensor:
    """Word boundaries ``(S, 2)`` ``[start, end)`` from the spans of a forced alignment.

    Word ``i`` grows out of its span over the frames that are not silence (``y_t(∅) <
    silence``), but never past the midpoint between its span and a neighbour's.
    """
    spans = torch.as_tensor(spans, dtype=torch.long)
    speech = (log_probs.detach().double().cpu()[:, blank].exp() < silence).tolist()
    t_max = len(speech)
    out = spans.clone()
    for i, (first, last) in enumerate(spans.tolist()):
        lo = 0 if i == 0 else (spans[i - 1, 1].item() + first) // 2
        hi = t_max if i == len(spans) - 1 else (last + spans[i + 1, 0].item()) // 2
        start, end = first, last
        while start > lo and speech[start - 1]:
            start -= 1
        while end < hi and speech[end]:
            end += 1
        out[i] = torch.tensor([start, end])
    return out


def boundary_errors(predicted, true) -> Tensor:
    """``|predicted - true|`` in frames for the ``[start, end)`` boundaries ``(S, 2)`` of one
    utterance (or several, concatenated): an ``(S, 2)`` int tensor."""
    predicted = torch.as_tensor(predicted, dtype=torch.long)
    true = torch.as_tensor(true, dtype=torch.long)
    if predicted.shape != true.shape or predicted.dim() != 2 or predicted.shape[1] != 2:
        raise ValueError(f"boundaries must both be (S, 2) [start, end) frames, got "
                         f"{tuple(predicted.shape)} and {tuple(true.shape)}")
    return (predicted - true).abs()
