"""A language model in miniature: a causal transformer decoder (a tiny GPT).

    p(x) = ∏_t p(x_t | x_<t),    p(x_t | x_<t) = softmax(W_o LN(h^L_{t-1}))

where ``h^L`` is the residual stream after ``L`` pre-norm ``TransformerBlock`` layers with causal
self-attention over token + position embeddings: position ``t`` reads ``x_1 .. x_t`` only, so one
parallel pass scores every next token of a sentence. Trained by the next-token cross-entropy
``-(1/#) Σ_t log p(x_{t+1} | x_≤t)`` over the non-pad targets.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import check_batch
from mmcourse.models.attention import TransformerBlock
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import check_token_ids

__all__ = ["TinyCausalDecoder"]


class TinyCausalDecoder(nn.Module):
    """A GPT in miniature: ``p(x) = ∏_t p(x_t | x_<t)`` with causal
    ``TransformerBlock`` layers over token + position embeddings and a linear head.

    ``forward(batch)`` reads the token ids ``batch["text"]`` ``(B, L)`` (``<pad>`` = 0 after the
    sentence) and returns a ``ModelOutput``: ``logits`` ``(B, L-1, vocab_size)``, where position
    ``t`` scores the next token ``x_{t+1}`` from ``x_1..x_t`` only, the next-token cross-entropy
    ``loss`` ``-(1/#) Σ_t log p(x_{t+1} | x_≤t)`` over the non-pad targets, and
    ``extras["attention"]``: each layer's self-attention weights ``(B, heads, L-1, L-1)``.
    ``run(tokens)`` gives the same for any token sequence (no loss); ``generate`` extends a prefix
    greedily (or by sampling with ``temperature > 0``).
    """

    def __init__(self, vocab_size: int, dim: int, heads: int, layers: int, max_len: int, *,
                 mlp_ratio: int = 4, dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.max_len, self.pad_id = vocab_size, max_len, pad_id
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Token + position embeddings ``E x_t + q_{start+t}`` of ``tokens`` ``(B, L)``: the
        residual stream the blocks read (``start`` offsets the positions)."""
        check_token_ids(tokens, self.vocab_size, "TinyCausalDecoder")
        if start + tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {start + tokens.shape[1]} exceeds max_len={self.max_len}")
        return self.token_embed(tokens) + self.pos_embed[start:start + tokens.shape[1]]

    def run_embeddings(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """The blocks, final norm and head on a residual stream ``x`` ``(B, L, dim)`` that need not
        come from tokens (e.g. a visual prefix before the caption's embeddings). ``mask``: a bool
        ``(L, L)`` self-attention mask (``True`` = may attend); causal when ``None``. Returns the
        logits ``(B, L, vocab_size)`` and each layer's attention weights."""
        if x.dim() != 3 or x.shape[-1] != self.token_embed.embedding_dim:
            raise ValueError(f"TinyCausalDecoder.run_embeddings expects (batch, length, "
                             f"{self.token_embed.embedding_dim}), got {tuple(x.shape)}")
        x = self.drop(x)
        attention = []
        for block in self.blocks:
            if mask is None:
                x, weights = block(x, causal=True)
            else:
                x, weights = block(x, mask=mask[None, None])
            attention.append(weights["self"])
        return self.head(self.norm(x)), attention

    def run(self, tokens: Tensor) -> ModelOutput:
        """Logits ``(B, L, vocab_size)`` of the next token after each prefix of ``tokens``
        ``(B, L)``, and ``extras["attention"]``: a list of ``(B, heads, L, L)``, one per layer."""
        check_token_ids(tokens, self.vocab_size, "TinyCausalDecoder")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds max_len={self.max_len}")
        x = self.drop(self.token_embed(tokens) + self.pos_embed[: tokens.shape[1]])
        attention = []
        for block in self.blocks:
            x, weights = block(x, causal=True)
            attention.append(weights["self"].detach())
        return ModelOutput(logits=self.head(self.norm(x)), extras={"attention": attention})

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        check_batch(batch, {"text": (None,)}, "TinyCausalDecoder")
        tokens = batch["text"]
        if tokens.dim() != 2 or tokens.shape[1] < 2:
            raise ValueError(f"TinyCausalDecoder expects text (batch, length >= 2) token ids, got "
                             f"{tuple(tokens.shape)}")
        out = self.run(tokens[:, :-1])
        out.loss = F.cross_entropy(out.logits.flatten(0, 1).float(), tokens[:, 1:].flatten(),
                                   ignore_index=self.pad_id)
        return out

    @torch.no_grad()
    def generate(self, prefix: Tensor, steps: int, *, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """Append ``steps`` tokens to ``prefix (B, L0)``: ``x_{t+1} = argmax p(· | x_≤t)``, or a
        sample from ``softmax(logits / temperature)``. Returns ``(B, L0 + steps)``."""
        tokens = prefix
        for _ in range(steps):
            logits = self.run(tokens[:, -self.max_len:]).logits[:, -1]
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            else:
                nxt = logits.argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, nxt], dim=1)
        return tokens
