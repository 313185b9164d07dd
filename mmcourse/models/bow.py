"""Bag-of-words text encoder: a sentence is the mean of its word embeddings.

    g(x) = (1/|x|) Σ_{t : x_t ≠ <pad>} E[x_t],

with ``E`` a learned ``(vocab, dim)`` table. Word order is ignored -- enough for short hints
such as "an even number" and a baseline against the recurrent encoders of chapter 03.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmcourse.tensors import check_token_ids


class BagOfWords(nn.Module):
    """``(B, L)`` token ids (0 = padding) → ``(B, out_dim)`` features."""

    def __init__(self, vocab_size: int, dim: int = 64, out_dim: int | None = None,
                 padding_idx: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=padding_idx)
        self.out_dim = out_dim or dim
        self.proj = nn.Sequential(nn.Linear(dim, self.out_dim), nn.ReLU())

    def forward(self, tokens: Tensor) -> Tensor:
        check_token_ids(tokens, self.vocab_size, "BagOfWords")
        return self.proj(self.embed(tokens))
