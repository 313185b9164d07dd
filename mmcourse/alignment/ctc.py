"""Connectionist temporal classification (CTC): a loss that needs no alignment.

A model gives, for each of ``T`` frames, log-probabilities ``log y_t(k)`` over ``V`` symbols, one
of which is the **blank** ``∅`` ("no symbol here"). A *path* ``π`` picks one symbol per frame;
the **collapse rule** ``B`` merges repeated symbols, then drops blanks:
``B(3 3 ∅ 3 ∅ ∅ 7) = 3 3 7`` (a blank between two 3s keeps them apart). The probability of a
target ``l`` of length ``S`` sums over every path that collapses to it:

    p(l | x) = Σ_{π : B(π) = l} Π_t y_t(π_t),         L_CTC = -log p(l | x).

**Forward recursion.** Put a blank around every symbol, ``l' = ∅ l_1 ∅ l_2 ... ∅ l_S ∅``
(length ``2S + 1``). ``α_t(s)`` is the probability of all path prefixes ``π_1..t`` that reach
state ``s`` of ``l'``:

    α_1(0) = y_1(∅),   α_1(1) = y_1(l_1),   α_1(s) = 0 for s > 1
    α_t(s) = y_t(l'_s) [α_{t-1}(s) + α_{t-1}(s-1) + [l'_s ≠ ∅ and l'_s ≠ l'_{s-2}] α_{t-1}(s-2)]
    p(l | x) = α_T(2S) + α_T(2S - 1).

The skip ``s-2 → s`` jumps over a blank only between two *different* symbols: a repeated symbol
needs a blank in between, so a target needs ``T ≥ S + #repeats`` frames. Products of many
probabilities underflow, so everything runs in log space, with ``+`` becoming ``logsumexp``.
The loss is differentiable through the recursion (autograd), and matches
``torch.nn.functional.ctc_loss`` in value and gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["collapse", "ctc_alpha", "ctc_loss", "extend_with_blanks"]

NEG_INF = float("-inf")


def _logsumexp(x: Tensor, dim: int = 0) -> Tensor:
    """``log Σ exp x`` along ``dim``, ``-inf`` where every term is ``-inf`` -- with a finite
    (zero) gradient there too, where ``torch.logsumexp`` gives NaN: unreachable states are
    everywhere in the CTC lattice, and one NaN would poison the whole gradient."""
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    total = (x - m).exp().sum(dim=dim)
    m = m.squeeze(dim)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, m + safe.log(), torch.full_like(total, NEG_INF))


def collapse(path, blank: int = 0) -> list[int]:
    """The collapse rule ``B``: merge runs of the same symbol, then drop blanks."""
    out, prev = [], None
    for k in (path.tolist() if isinstance(path, Tensor) else list(path)):
        k = int(k)
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def extend_with_blanks(target, blank: int = 0) -> Tensor:
    """``l = l_1 .. l_S`` -> ``l' = ∅ l_1 ∅ l_2 ... ∅ l_S ∅`` (length ``2S + 1``), int64."""
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    ext = torch.full((2 * len(target) + 1,), blank, dtype=torch.long)
    ext[1::2] = target
    return ext


def _check(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
           blank: int) -> None:
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 3 or not log_probs.is_floating_point():
        raise ValueError("log_probs must be a float tensor (T, N, V) of log-probabilities, got "
                         f"{getattr(log_probs, 'shape', type(log_probs).__name__)}")
    t_max, n, v = log_probs.shape
    if not 0 <= blank < v:
        raise ValueError(f"blank must be a class index in [0, {v}), got {blank}")
    if targets.dim() != 2 or len(targets) != n:
        raise ValueError(f"targets must be (N={n}, S) padded int class ids, got {tuple(targets.shape)}")
    if input_lengths.shape != (n,) or target_lengths.shape != (n,):
        raise ValueError(f"input_lengths and target_lengths must be ({n},), got "
                         f"{tuple(input_lengths.shape)} and {tuple(target_lengths.shape)}")
    if (input_lengths < 1).any() or (input_lengths > t_max).any():
        raise ValueError(f"input_lengths must be in [1, T={t_max}], got {input_lengths.tolist()}")
    if (target_lengths < 0).any() or (target_lengths > targets.shape[1]).any():
        raise ValueError(f"target_lengths must be in [0, S={targets.shape[1]}], got "
                         f"{target_lengths.tolist()}")
    valid = torch.arange(targets.shape[1]) < target_lengths[:, None]
    used = targets[valid]
    if used.numel() and ((used < 0).any() or (used >= v).any() or (used == blank).any()):
        raise ValueError(f"target symbols must be in [0, {v}) and not the blank {blank}")


def ctc_alpha(log_probs: Tensor, target, blank: int = 0) -> Tensor:
    """The log forward variables ``log α_t(s)`` of one sequence, shape ``(T, 2S + 1)``.

    ``log_probs``: ``(T, V)`` log-probabilities; ``target``: ``(S,)`` symbols (no blanks).
    ``-logsumexp(alpha[-1, -2:])`` is the CTC loss (``alpha[-1, -1:]`` when ``S = 0``).
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (T, V) for one sequence, got {tuple(log_probs.shape)}")
    ext = extend_with_blanks(target, blank).to(log_probs.device)
    n_states = len(ext)
    # the skip s-2 -> s is allowed into a symbol that differs from the one two states back
    skip = torch.zeros(n_states, dtype=torch.bool, device=log_probs.device)
    if n_states > 2:
        skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = log_probs[:, ext]                                     # (T, 2S+1): log y_t(l'_s)
    neg = log_probs.new_full((1,), NEG_INF)
    rows = [torch.cat([emit[0, :2], neg.expand(max(n_states - 2, 0))])[:n_states]]
    for t in range(1, len(log_probs)):
        prev = rows[-1]
        stay = prev
        step = torch.cat([neg, prev[:-1]])
        jump = torch.where(skip, torch.cat([neg, neg, prev[:-2]])[:n_states], neg)
        rows.append(emit[t] + _logsumexp(torch.stack([stay, step, jump])))
    return torch.stack(rows)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """CTC loss with the arguments of ``torch.nn.functional.ctc_loss``, from scratch.

    ``log_probs (T, N, V)`` (log-softmax outputs), ``targets (N, S)`` padded,
    ``input_lengths (N,)``, ``target_lengths (N,)``. Per sequence ``L_n = -log p(l_n | x_n)`` from
    the forward recursion over its first ``input_lengths[n]`` frames; ``reduction="mean"``
    averages ``L_n / target_lengths[n]``, ``"sum"`` sums, ``"none"`` returns ``(N,)``. A target
    that no path can produce (too few frames) has ``L = inf`` (0 with ``zero_infinity``).
    The whole batch's recursion runs at once: one step per frame, vectorised over sequences
    and states.
    """
    targets = torch.as_tensor(targets, dtype=torch.long)
    input_lengths = torch.as_tensor(input_lengths, dtype=torch.long).reshape(-1)
    target_lengths = torch.as_tensor(target_lengths, dtype=torch.long).reshape(-1)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    _check(log_probs, targets, input_lengths, target_lengths, blank)
    t_max, n, _ = log_probs.shape
    dev = log_probs.device
    s_max = targets.shape[1]
    ext = torch.full((n, 2 * s_max + 1), blank, dtype=torch.long)
    ext[:, 1::2] = targets.clamp(min=0)
    n_states = ext.shape[1]
    state = torch.arange(n_states)
    # states beyond 2 S_n + 1 do not exist for sequence n
    exists = state[None, :] < (2 * target_lengths[:, None] + 1)
    skip = torch.zeros(n, n_states, dtype=torch.bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    ext, exists, skip = ext.to(dev), exists.to(dev), skip.to(dev)
    input_lengths, target_lengths = input_lengths.to(dev), target_lengths.to(dev)

    emit = log_probs.gather(2, ext[None].expand(t_max, n, n_states))      # (T, N, 2S+1)
    emit = emit.masked_fill(~exists[None], NEG_INF)
    neg = log_probs.new_full((n, 1), NEG_INF)
    alpha = torch.cat([emit[0, :, :2], neg.expand(n, n_states - 2)], dim=1)[:, :n_states]
    final = alpha
    for t in range(1, t_max):
        step = torch.cat([neg, alpha[:, :-1]], dim=1)
        jump = torch.cat([neg, neg, alpha[:, :-2]], dim=1)[:, :n_states].masked_fill(~skip, NEG_INF)
        new = emit[t] + _logsumexp(torch.stack([alpha, step, jump]))
        alive = (t < input_lengths)[:, None]
        alpha = torch.where(alive, new, alpha)               # a finished sequence keeps α_T
        final = alpha
    last = 2 * target_lengths                                # index of the final blank
    ends = torch.stack([final.gather(1, last[:, None])[:, 0],
                        final.gather(1, (last - 1).clamp(min=0)[:, None])[:, 0]], dim=1)
    ends[:, 1] = torch.where(target_lengths > 0, ends[:, 1], log_probs.new_full((n,), NEG_INF))
    losses = -_logsumexp(ends, dim=1)
    if zero_infinity:
        losses = torch.where(torch.isinf(losses), torch.zeros_like(losses), losses)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return (losses / target_lengths.clamp(min=1).to(losses.dtype)).mean()
