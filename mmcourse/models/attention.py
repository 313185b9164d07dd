"""Attention: a query reads a weighted average of values, weighted by query-key similarity.

Scaled dot-product attention (the transformer's), for queries ``Q: (.., L_q, d_k)``, keys
``K: (.., L_k, d_k)`` and values ``V: (.., L_k, d_v)``:

    Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V,

the softmax taken over the keys of each query (each row of weights sums to 1). A boolean mask
(``True`` = may attend) sets the scores of forbidden keys to ``-∞`` before the softmax, so their
weight is exactly 0; a causal mask lets position ``i`` attend to ``j ≤ i`` only.

Multi-head attention runs ``h`` attentions on learned projections of width ``d_k = dim / h``
and mixes them:

    head_i = Attention(X W_i^Q, C W_i^K, C W_i^V),    MHA(X, C) = [head_1; ..; head_h] W^O,

with ``C = X`` for self-attention and ``C`` another sequence (a context) for cross-attention.
A pre-norm transformer block adds each sub-layer to a residual stream,

    x ← x + MHA(LN(x)),   [x ← x + MHA(LN(x), LN(c))],   x ← x + MLP(LN(x)),

and a causal decoder stacks such blocks over token embeddings to model
``p(x) = ∏_t p(x_t | x_<t)`` (``mmcourse.models.language_model``).

Additive (Bahdanau) attention (the captioner's), for one query ``q`` and keys ``k_i``:

    e_i = v^T tanh(W_q q + W_k k_i),    α = softmax(e),    c = Σ_i α_i k_i.

Masks everywhere: ``True`` = may attend (the convention of ``F.scaled_dot_product_attention``'s
boolean ``attn_mask``; note that ``nn.MultiheadAttention``'s ``key_padding_mask`` is the
opposite). A query row with no allowed key gets all-zero weights and a zero output, never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.tensors import check_float


# --------------------------------------------------------------------------------------------
# Scaled dot-product attention from scratch
# --------------------------------------------------------------------------------------------
def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths → ``(B, max_len)`` bool, ``True`` at the first ``lengths[b]`` positions.

    As a key padding mask for ``scaled_dot_product_attention`` pass ``mask[:, None, :]``
    (scores ``(B, L_q, L_k)``) or ``mask[:, None, None, :]`` (with heads, ``(B, h, L_q, L_k)``);
    ``MultiHeadAttention`` takes the ``(B, L_k)`` mask as it is.
    """
    if lengths.dim() != 1 or lengths.is_floating_point():
        raise ValueError(
            f"lengths must be a (batch,) integer tensor, got {tuple(lengths.shape)} {lengths.dtype}"
        )
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _check_mask(mask: Tensor, scores_shape: torch.Size, where: str) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"{where}: mask must be a bool tensor (True = may attend), got {mask.dtype}")
    try:
        fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{where}: mask {tuple(mask.shape)} does not broadcast to the scores (..., L_q, L_k) = "
            f"{tuple(scores_shape)}; a key padding mask (B, L_k) goes in as mask[:, None, :] "
            f"(or mask[:, None, None, :] with heads)"
        )


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 causal: bool = False, *, dropout_p: float = 0.0
                                 ) -> tuple[Tensor, Tensor]:
    """``softmax(QK^T / sqrt(d_k)) V`` from scratch → ``(output (.., L_q, d_v), weights (.., L_q, L_k))``.

    ``q: (.., L_q, d_k)``, ``k: (.., L_k, d_k)``, ``v: (.., L_k, d_v)``; leading dimensions
    broadcast. ``mask``: bool, broadcastable to ``(.., L_q, L_k)``, ``True`` = may attend (as in
    ``F.scaled_dot_product_attention``); see ``padding_mask`` for key padding. ``causal``: query
    ``i`` sees keys ``j ≤ i`` (the lower triangle, aligned top-left as in PyTorch when
    ``L_q ≠ L_k``); combined with ``mask`` by AND. Forbidden keys get weight exactly 0; a query
    with no allowed key gets zero weights and a zero output (as
    ``F.scaled_dot_product_attention`` does in the torch versions this course supports, which the
    tests check; ``nn.MultiheadAttention`` gives NaN).
    ``dropout_p`` drops weights (and rescales) for the output only; the returned weights are the
    attention probabilities before dropout.
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"attention expects q (.., L_q, d_k), k (.., L_k, d_k), v (.., L_k, d_v), got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: queries and keys must share d_k, got q {tuple(q.shape)} (d_k={q.shape[-1]}) "
            f"and k {tuple(k.shape)} (d_k={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"attention: keys and values must have the same length L_k, got k {tuple(k.shape)} "
            f"and v {tuple(v.shape)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"attention: batch dimensions of q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
            "do not broadcast"
        ) from None
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_float(x, f"scaled_dot_product_attention ({name})", like=q)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])          # (.., L_q, L_k)
    allowed = None
    if mask is not None:
        _check_mask(mask, scores.shape, "scaled_dot_product_attention")
        allowed = mask
    if causal:
        l_q, l_k = scores.shape[-2:]
        lower = torch.ones(l_q, l_k, dtype=torch.bool, device=scores.device).tril()
        allowed = lower if allowed is None else allowed & lower
    if allowed is not None:
        # the most negative finite number rather than -inf: exp underflows to exactly 0 for a
        # forbidden key, and a row with no allowed key is uniform (then zeroed) instead of NaN
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if allowed is not None:
        weights = weights.masked_fill(~allowed, 0.0)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


# --------------------------------------------------------------------------------------------
# Multi-head attention and the transformer block
# --------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """``MHA(X, C) = [head_1; ..; head_h] W^O``, ``head_i = Attention(X W_i^Q, C W_i^K, C W_i^V)``.

    ``forward(x (B, L_q, dim), context=None, mask=None, causal=False)`` →
    ``(out (B, L_q, dim), weights (B, heads, L_q, L_k))``. Self-attention when ``context`` is
    ``None`` (``C = X``), cross-attention to ``context (B, L_k, context_dim)`` otherwise.

    ``mask`` (bool, ``True`` = may attend), by its number of dimensions:
    ``(B, L_k)`` a key padding mask; ``(B, L_q, L_k)`` per query; 4-D: broadcastable to
    ``(B, heads, L_q, L_k)`` (so a shared ``(L_q, L_k)`` mask goes in as ``mask[None, None]``).
    ``dropout`` drops attention weights while training, as ``nn.MultiheadAttention`` does.
    ``copy_from_torch(nn.MultiheadAttention)`` loads PyTorch's weights for comparison.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, *, context_dim: int | None = None):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"dim must be divisible by heads, got dim={dim}, heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.context_dim = context_dim or dim
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)                      # W^Q for all heads, stacked
        self.k_proj = nn.Linear(self.context_dim, dim)         # W^K
        self.v_proj = nn.Linear(self.context_dim, dim)         # W^V
        self.out_proj = nn.Linear(dim, dim)                    # W^O

    def _split(self, x: Tensor) -> Tensor:
        """``(B, L, dim)`` → ``(B, heads, L, head_dim)``."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def _mask(self, mask: Tensor, batch: int, l_q: int, l_k: int) -> Tensor:
        name = type(self).__name__
        if mask.dim() == 2:
            if tuple(mask.shape) != (batch, l_k):
                raise ValueError(
                    f"{name}: a 2-D mask is a key padding mask (batch, L_k) = ({batch}, {l_k}), "
                    f"got {tuple(mask.shape)}; for a shared (L_q, L_k) mask pass mask[None, None]"
                )
            return mask[:, None, None, :]
        if mask.dim() == 3:
            if tuple(mask.shape) != (batch, l_q, l_k):
                raise ValueError(
                    f"{name}: a 3-D mask is (batch, L_q, L_k) = ({batch}, {l_q}, {l_k}), "
                    f"got {tuple(mask.shape)}"
                )
            return mask[:, None]
        if mask.dim() == 4:
            return mask
        raise ValueError(
            f"{name}: mask must be (batch, L_k), (batch, L_q, L_k) or 4-D broadcastable to "
            f"(batch, heads, L_q, L_k), got {tuple(mask.shape)}"
        )

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None,
                causal: bool = False) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{name} expects x (batch, length, {self.dim}), got {tuple(x.shape)}")
        if context is None:
            if self.context_dim != self.dim:
                raise ValueError(f"{name} was built with context_dim={self.context_dim}: pass a context")
            context = x
        elif context.dim() != 3 or context.shape[-1] != self.context_dim or len(context) != len(x):
            raise ValueError(
                f"{name} expects a context (batch={len(x)}, length, {self.context_dim}), "
                f"got {tuple(context.shape)}"
            )
        check_float(x, name, like=self.q_proj.weight)
        check_float(context, f"{name} (context)", like=self.k_proj.weight)
        batch, l_q, l_k = x.shape[0], x.shape[1], context.shape[1]
        if mask is not None:
            mask = self._mask(mask, batch, l_q, l_k)
        q = self._split(self.q_proj(x))                              # (B, h, L_q, d_k)
        k, v = self._split(self.k_proj(context)), self._split(self.v_proj(context))  # (B, h, L_k, d_k)
        out, weights = scaled_dot_product_attention(q, k, v, mask, causal,
                                                    dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, l_q, self.dim)   # concatenate the heads
        return self.out_proj(out), weights

    @torch.no_grad()
    def copy_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Load the weights of an ``nn.MultiheadAttention(dim, heads[, kdim=vdim=context_dim])``
        (with biases) into this module; returns ``self``."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"copy_from_torch expects an nn.MultiheadAttention, got {type(mha).__name__}")
        if (mha.embed_dim, mha.num_heads, mha.kdim, mha.vdim) != (
                self.dim, self.heads, self.context_dim, self.context_dim):
            raise ValueError(
                f"nn.MultiheadAttention(embed_dim={mha.embed_dim}, num_heads={mha.num_heads}, "
                f"kdim={mha.kdim}, vdim={mha.vdim}) does not match MultiHeadAttention(dim={self.dim}, "
                f"heads={self.heads}, context_dim={self.context_dim})"
            )
        if mha.in_proj_bias is None or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("copy_from_torch needs nn.MultiheadAttention(bias=True) without "
                             "add_bias_kv or add_zero_attn")
        if mha.in_proj_weight is not None:
            w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        for layer, w, b in [(self.q_proj, w_q, b_q), (self.k_proj, w_k, b_k), (self.v_proj, w_v, b_v),
                            (self.out_proj, mha.out_proj.weight, mha.out_proj.bias)]:
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        return self


class TransformerBlock(nn.Module):
    """A pre-norm transformer block on a residual stream ``x (B, L, dim)``:

        x ← x + MHA(LN(x))                      self-attention (``causal`` optional)
        x ← x + MHA(LN(x), LN(c))               cross-attention to ``context`` (if ``cross``)
        x ← x + W_2 GELU(W_1 LN(x))             MLP of width ``mlp_ratio · dim``

    ``forward(x, context=None, mask=None, causal=False, context_mask=None)`` →
    ``(x, {"self": (B, heads, L, L), "cross": (B, heads, L, L_c)})`` (``"cross"`` only when
    ``cross``). ``mask`` is the self-attention mask and ``context_mask`` the cross-attention
    mask, each in any form ``MultiHeadAttention`` takes -- typically ``(B, L)`` / ``(B, L_c)``
    bool, ``True`` at real tokens. The context is layer-normalised, and may have its own width
    ``context_dim``. ``dropout`` applies to the attention weights and to each sub-layer's output.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0,
                 cross: bool = False, *, context_dim: int | None = None):
        super().__init__()
        self.dim, self.cross = dim, cross
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, heads, dropout)
        if cross:
            self.norm_cross = nn.LayerNorm(dim)
            self.norm_context = nn.LayerNorm(context_dim or dim)
            self.cross_attn = MultiHeadAttention(dim, heads, dropout, context_dim=context_dim)
        elif context_dim is not None:
            raise ValueError("context_dim is only used with cross=True")
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None,
                causal: bool = False, context_mask: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if self.cross and context is None:
            raise ValueError("TransformerBlock(cross=True) needs a context (batch, length, context_dim)")
        if not self.cross and (context is not None or context_mask is not None):
            raise ValueError("this TransformerBlock was built with cross=False: it takes no context")
        attended, w_self = self.self_attn(self.norm_self(x), mask=mask, causal=causal)
        x = x + self.drop(attended)
        weights = {"self": w_self}
        if self.cross:
            attended, weights["cross"] = self.cross_attn(self.norm_cross(x), self.norm_context(context),
                                                         mask=context_mask)
            x = x + self.drop(attended)
        x = x + self.drop(self.mlp(self.norm_mlp(x)))
        return x, weights


# --------------------------------------------------------------------------------------------
# Additive attention
# --------------------------------------------------------------------------------------------
class AdditiveAttention(nn.Module):
    """Bahdanau attention ``e_i = v^T tanh(W_q q + W_k k_i + b)``, ``α = softmax(e)``,
    ``c = Σ_i α_i k_i``: a ``(B, query_dim)`` query over ``(B, N, key_dim)`` keys → the context
    ``(B, key_dim)`` and the weights ``α`` ``(B, N)``.

    ``mask``: optional ``(B, N)`` bool, ``True`` = may attend; masked keys get weight exactly 0
    and the other weights of the row sum to 1 (a row with no valid key gets zeros and a zero
    context, not NaN). ``W_k k_i`` does not depend on the query, so a decoder that attends to
    the same keys at every step computes it once with ``project_keys`` and passes it as
    ``keys_proj`` (``(B, N, hidden)``); the result is the same.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden: int = 64):
        super().__init__()
        self.query_dim, self.key_dim, self.hidden = query_dim, key_dim, hidden
        self.w_q = nn.Linear(query_dim, hidden, bias=False)
        self.w_k = nn.Linear(key_dim, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """``W_k k_i`` for every key: ``(B, N, key_dim)`` → ``(B, N, hidden)``."""
        if keys.dim() != 3 or keys.shape[-1] != self.key_dim:
            raise ValueError(
                f"AdditiveAttention expects keys (batch, n, {self.key_dim}), got {tuple(keys.shape)}"
            )
        return self.w_k(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                keys_proj: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if query.dim() != 2 or query.shape[-1] != self.query_dim:
            raise ValueError(
                f"AdditiveAttention expects a query (batch, {self.query_dim}), got {tuple(query.shape)}"
            )
        if keys.dim() != 3 or keys.shape[0] != query.shape[0] or keys.shape[-1] != self.key_dim:
            raise ValueError(
                f"AdditiveAttention expects keys (batch={query.shape[0]}, n, {self.key_dim}), "
                f"got {tuple(keys.shape)}"
            )
        check_float(query, "AdditiveAttention (query)", like=self.w_q.weight)
        check_float(keys, "AdditiveAttention (keys)", like=self.w_k.weight)
        if keys_proj is None:
            keys_proj = self.project_keys(keys)
        elif keys_proj.shape != (*keys.shape[:2], self.hidden):
            raise ValueError(
                f"keys_proj must be project_keys(keys) of shape {(*keys.shape[:2], self.hidden)}, "
                f"got {tuple(keys_proj.shape)}"
            )
        scores = self.v(torch.tanh(self.w_q(query)[:, None, :] + keys_proj)).squeeze(-1)  # e_i
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != scores.shape:
                raise ValueError(
                    f"AdditiveAttention expects a bool mask (batch, n) = {tuple(scores.shape)} "
                    f"(True = may attend), got {tuple(mask.shape)} {mask.dtype}"
                )
            # finite, so that a row with no valid key is uniform (then zeroed) rather than NaN
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)                                          # α
        if mask is not None:
            weights = weights.masked_fill(~mask, 0.0)
        context = torch.bmm(weights[:, None, :], keys).squeeze(1)                        # Σ α_i k_i
        return context, weights
