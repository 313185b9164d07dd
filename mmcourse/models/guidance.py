"""Classifier-free guidance: push a conditional model's next-token distribution away from its
unconditional one (Ho & Salimans 2022; for token models, e.g. Make-A-Scene, Parti).

One model is trained both with the caption and, a fraction of the time, with a *null* caption,
so it gives the conditional logits ``ℓ_c = log p(· | c_<t, x)`` and the unconditional
``ℓ_u = log p(· | c_<t, ∅)``. Sampling then uses

    ℓ_w = ℓ_u + w (ℓ_c − ℓ_u),        c_t ~ softmax(ℓ_w / τ)

``w = 1`` is plain conditional sampling, ``w = 0`` ignores the caption, and ``w > 1``
extrapolates: tokens the caption makes *more* likely than they are a priori get a further boost
(sharper, more faithful samples, at a cost in diversity). Because softmax is shift-invariant,
``softmax(ℓ_w) ∝ p_u^{1-w} p_c^w``: a geometric interpolation (extrapolation) of the two.

The boost ``(p_c / p_u)^{w-1}`` is largest where both models think a token unlikely but the
unconditional one more so: tokens in the tail, whose ratio is mostly noise, can win at large
``w`` (a stray patch, a broken outline). The **plausibility constraint** (``plausible``; as in
contrastive decoding, Li et al. 2023) samples only among the tokens the conditional model itself
finds plausible,

    V_α = {v : p_c(v) >= α max_u p_c(u)},        ℓ_w(v) = −∞ for v ∉ V_α,

so guidance re-weights the conditional model's candidates instead of inventing new ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.models.decoding import filter_logits

__all__ = ["guided_logits", "plausible", "sample_next"]


def guided_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """``ℓ_u + w (ℓ_c − ℓ_u)`` for conditional and unconditional logits of the same shape."""
    if not isinstance(cond, Tensor) or not isinstance(uncond, Tensor) or cond.shape != uncond.shape:
        raise ValueError(f"guided_logits expects conditional and unconditional logits of one shape, got "
                         f"{tuple(getattr(cond, 'shape', ()))} and {tuple(getattr(uncond, 'shape', ()))}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
        raise ValueError(f"the guidance scale w must be a number >= 0, got {scale!r}")
    return uncond + scale * (cond - uncond)


def plausible(logits: Tensor, cond: Tensor, alpha: float) -> Tensor:
    """``logits`` with ``−∞`` outside ``V_α = {v : p_c(v) >= α max p_c}`` (``p_c = softmax(cond)``,
    same shape); ``alpha = 0`` keeps every token. The conditional model's favourite always stays."""
    if not isinstance(logits, Tensor) or not isinstance(cond, Tensor) or logits.shape != cond.shape:
        raise ValueError(f"plausible expects logits and conditional logits of one shape, got "
                         f"{tuple(getattr(logits, 'shape', ()))} and {tuple(getattr(cond, 'shape', ()))}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"the plausibility threshold alpha must be a number in [0, 1], got {alpha!r}")
    if alpha == 0:
        return logits
    # p_c(v) >= α max p_c  <=>  ℓ_c(v) − max ℓ_c >= log α
    drop = cond.float() - cond.float().amax(-1, keepdim=True) < torch.log(torch.tensor(float(alpha)))
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """One token per row of ``logits`` ``(B, V)``: ``argmax`` at ``temperature = 0``, else a
    draw from ``softmax(filter(logits / τ))`` (``top_k``: ``decoding.filter_logits``)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float() / temperature, top_k).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
