"""Decoding CTC posteriors into a symbol string: greedy and prefix beam search.

**Greedy** (best path): take the likeliest symbol of every frame, then collapse,
``l* ≈ B(argmax_k y_1(k), ..., argmax_k y_T(k))``. It finds the most probable *path*, not the
most probable *string*: many paths collapse to one string, and their probabilities add up.

**Prefix beam search** keeps the ``W`` likeliest string prefixes ``ℓ``, each with two
log-probabilities of the frames so far, ``p_∅(ℓ)`` (paths ending in a blank) and ``p_n(ℓ)``
(paths ending in ``ℓ``'s last symbol). At frame ``t`` with ``y = y_t``:

    p_∅'(ℓ)      += (p_∅(ℓ) + p_n(ℓ)) y(∅)                       stay on ℓ through a blank
    p_n'(ℓ)      += p_n(ℓ) y(ℓ_last)                              repeat ℓ's last symbol: still ℓ
    p_n'(ℓ + k)  += (p_∅(ℓ) + p_n(ℓ)) y(k)        for k ≠ ℓ_last  extend by a new symbol
    p_n'(ℓ + k)  += p_∅(ℓ) y(k)                   for k = ℓ_last  a repeat needs a blank between

then keeps the ``W`` prefixes with the largest ``p_∅ + p_n``. With ``W`` as large as the number
of prefixes it is exact: the returned score is ``log p(ℓ | x)``, i.e. ``-`` the CTC loss of ``ℓ``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmcourse.alignment.ctc import collapse

__all__ = ["greedy_decode", "prefix_beam_search"]


def _as_log_probs(log_probs: Tensor, name: str) -> Tensor:
    if (not isinstance(log_probs, Tensor) or not log_probs.is_floating_point()
            or log_probs.dim() not in (2, 3)):
        raise ValueError(f"{name}: log_probs must be a float tensor (T, V) or (N, T, V), got "
                         f"{getattr(log_probs, 'shape', type(log_probs).__name__)}")
    return log_probs


def greedy_decode(log_probs: Tensor, lengths=None, blank: int = 0):
    """Best-path decoding: ``B(argmax_k log_probs[t, k] for t < T)``.

    ``log_probs``: ``(T, V)`` -> a list of symbols, or ``(N, T, V)`` (batch first) with optional
    ``lengths (N,)`` -> a list of lists.
    """
    log_probs = _as_log_probs(log_probs, "greedy_decode")
    best = log_probs.argmax(-1).cpu()
    if best.dim() == 1:
        return collapse(best, blank)
    lengths = [best.shape[1]] * len(best) if lengths is None else torch.as_tensor(lengths).tolist()
    return [collapse(row[: int(n)], blank) for row, n in zip(best, lengths)]


def prefix_beam_search(log_probs: Tensor, beam_width: int = 8, blank: int = 0,
                       return_score: bool = False):
    """The likeliest string under CTC, by prefix beam search of width ``beam_width``.

    ``log_probs``: ``(T, V)`` log-probabilities of one sequence. Returns the symbols (and, with
    ``return_score``, ``log p(ℓ | x)`` summed over the paths the beam kept).
    """
    log_probs = _as_log_probs(log_probs, "prefix_beam_search")
    if log_probs.dim() != 2:
        raise ValueError(f"prefix_beam_search decodes one sequence (T, V), got {tuple(log_probs.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    lp = log_probs.detach().double().cpu()
    neg = float("-inf")
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, neg)}     # prefix -> (log p_∅, log p_n)

    def add(a: float, b: float) -> float:                      # log(e^a + e^b)
        if a < b:
            a, b = b, a
        return a if b == neg else a + math.log1p(math.exp(b - a))

    for t in range(len(lp)):
        y = lp[t].tolist()
        nxt: dict[tuple, list[float]] = {}

        def bump(prefix, which, value, nxt=nxt):
            entry = nxt.setdefault(prefix, [neg, neg])
            entry[which] = add(entry[which], value)

        for prefix, (pb, pn) in beams.items():
            total = add(pb, pn)
            bump(prefix, 0, total + y[blank])
            last = prefix[-1] if prefix else None
            if last is not None:
                bump(prefix, 1, pn + y[last])
            for k, yk in enumerate(y):
                if k == blank:
                    continue
                bump(prefix + (k,), 1, (pb if k == last else total) + yk)
        ranked = sorted(nxt.items(), key=lambda kv: add(*kv[1]), reverse=True)
        beams = {prefix: (pb, pn) for prefix, (pb, pn) in ranked[:beam_width]}
    best, (pb, pn) = max(beams.items(), key=lambda kv: add(*kv[1]))
    return (list(best), add(pb, pn)) if return_score else list(best)
