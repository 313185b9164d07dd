"""Detecting mispaired samples: a pair whose two modalities disagree in a shared space.

``pair_scores`` is the cosine similarity of each pair's embeddings in a shared space
(e.g. a dual encoder's), ``sim_i = u_i · v_i / (||u_i|| ||v_i||)``; ``detect_mispaired`` flags
the ``fraction`` of pairs with the lowest scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pair_scores(emb_a: Tensor, emb_b: Tensor) -> Tensor:
    """``(N,)`` cosine similarity of each pair ``(a_i, b_i)`` in a shared embedding space."""
    if emb_a.shape != emb_b.shape or emb_a.dim() != 2:
        raise ValueError(f"pair_scores needs two (N, d) embeddings, got {tuple(emb_a.shape)} "
                         f"and {tuple(emb_b.shape)}")
    return F.cosine_similarity(emb_a.float(), emb_b.float(), dim=1)


def detect_mispaired(emb_a: Tensor, emb_b: Tensor, fraction: float) -> Tensor:
    """``(N,)`` bool: the ``fraction`` of pairs with the lowest ``pair_scores``, flagged as mispaired."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"detect_mispaired: fraction must be in [0, 1], got {fraction}")
    scores = pair_scores(emb_a, emb_b)
    flagged = torch.zeros(len(scores), dtype=torch.bool)
    flagged[torch.argsort(scores, stable=True)[: round(fraction * len(scores))]] = True
    return flagged
