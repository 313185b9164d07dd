"""A transformer captioner: the same ``p(x | I) = ∏_t p(x_t | x_<t, I)``, with a causal
transformer decoder that cross-attends to the image regions instead of a GRU.

    k_i       = LayerNorm(W_k ConvEncoder.grid(I)_i + p_i)            (N regions, width d)
    h⁰_t      = E x_t + q_t                                         (token + position embedding)
    hˡ        = TransformerBlock_l(hˡ⁻¹, context = k, causal)      l = 1..layers:
                  hˡ ← h + MHA(LN(h)) [causal],  h ← h + MHA(LN(h), LN(k)),  h ← h + MLP(LN(h))
    p(x_{t+1} | x_≤t, I) = softmax(W_o LN(h^L_t) + b_o)             (<pad>, <bos>: probability 0)

Position ``t`` sees ``x_1..x_t`` only (causal self-attention), so teacher forcing scores a whole
caption in one parallel pass -- what makes it fast on a GPU -- while decoding runs the same
network on the growing prefix. The decoder's "state" is that prefix ``(B, t)``: it implements
the same ``start`` / ``step`` interface as ``Captioner``, so greedy, beam search, sampling
(``mmcourse.models.decoding``), ``log_prob`` and ``caption_report`` work on it unchanged.
The attention map ``α_t`` reported for plots is the last layer's cross-attention at step ``t``,
averaged over heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse import config
from mmcourse.data.text import Vocab
from mmcourse.models.attention import TransformerBlock
from mmcourse.models.captioning import MAX_LEN, Captioner, CaptionModel, Memory

__all__ = ["TransformerCaptioner", "captioner_for"]


class TransformerCaptioner(CaptionModel):
    """CNN regions + causal transformer decoder with cross-attention (see the module docstring).

    ``dim``: the decoder's width (and the regions'); ``heads``, ``layers``: of the
    ``TransformerBlock`` stack; ``width``: the ConvEncoder's; ``max_positions``: the longest
    token prefix the decoder reads (``<bos>`` + ``MAX_LEN`` generated tokens by default);
    ``dropout`` (off by default: decoding after ``fit()`` runs in training mode).
    """

    def __init__(self, vocab_size: int, image_size: int = 32, dim: int = 128, heads: int = 4,
                 layers: int = 2, *, width: int = 32, max_positions: int = MAX_LEN + 1,
                 dropout: float = 0.0, vocab: Vocab | None = None):
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be a positive int, got {layers!r}")
        super().__init__(vocab_size, image_size, width, vocab)
        self.dim, self.max_positions = dim, max_positions
        self.key_proj = nn.Linear(self.encoder.grid_dim, dim)                     # W_k
        self.position = nn.Parameter(0.02 * torch.randn(1, self.num_regions, dim))  # p_i
        self.key_norm = nn.LayerNorm(dim)
        self.embed = nn.Embedding(vocab_size, dim)                                  # E
        self.token_position = nn.Parameter(0.02 * torch.randn(max_positions, dim))  # q_t
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, heads, dropout=dropout, cross=True) for _ in range(layers)]
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)                                       # W_o

    def start(self, images: Tensor) -> tuple[Memory, Tensor]:
        """The regions ``k`` ``(B, N, dim)`` (as ``Memory(k, k)``: there is no separate key
        projection) and the empty prefix ``(B, 0)``, the decoder's initial "state"."""
        self._check_images(images)
        keys = self.key_norm(self.key_proj(self.encoder.grid(images)) + self.position)
        prefix = torch.empty(images.shape[0], 0, dtype=torch.long, device=images.device)
        return Memory(keys, keys), prefix

    def decode_prefix(self, inputs: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` of every next token after the prefixes ``inputs[:, :t+1]``, and
        the last layer's head-averaged cross-attention ``(B, T, N)``, in one causal pass."""
        steps = inputs.shape[1]
        if steps > self.max_positions:
            raise ValueError(f"TransformerCaptioner reads at most max_positions={self.max_positions} "
                             f"tokens, got a prefix of {steps}; build it with a larger max_positions")
        x = self.drop(self.embed(inputs) + self.token_position[:steps])
        for block in self.blocks:
            x, weights = block(x, context=memory.keys, causal=True)
        logits = self.out(self.norm(x)).masked_fill(self.never, float("-inf"))
        return logits, weights["cross"].mean(dim=1)

    def step(self, tokens: Tensor, state: Tensor, memory: Memory) -> tuple[Tensor, Tensor, Tensor]:
        """Append ``x_{t-1}`` ``(B,)`` to the prefix ``state`` ``(B, t-1)`` and score ``x_t``:
        ``(logits (B, V), prefix (B, t), α_t (B, N))``."""
        prefix = torch.cat([state, tokens[:, None]], dim=1)
        logits, attention = self.decode_prefix(prefix, memory)
        return logits[:, -1], prefix, attention[:, -1]

    def teacher_forcing(self, images: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` and attention ``(B, T, N)`` for ``inputs`` ``(B, T)``, all steps
        at once (causal: step ``t`` sees ``inputs[:, :t+1]`` only)."""
        memory, _ = self.start(images)
        return self.decode_prefix(inputs, memory)


def captioner_for(vocab: Vocab, image_size: int, profile: str | config.Profile | None = None) -> CaptionModel:
    """The run profile's captioner (``profile().captioner``), widths scaled by ``model_scale``:
    ``"gru"`` gives ``Captioner(hidden=64·s, width=32·s)`` (the defaults at ``s = 1``),
    ``"transformer"`` a 2-layer, 4-head ``TransformerCaptioner(dim=64·s, width=16·s)``."""
    p = profile if isinstance(profile, config.Profile) else config.profile(profile)
    s = p.model_scale
    if p.captioner == "transformer":
        return TransformerCaptioner(len(vocab), image_size, dim=64 * s, heads=4, layers=2,
                                    width=16 * s, vocab=vocab)
    return Captioner(len(vocab), image_size, hidden=64 * s, width=32 * s, vocab=vocab)
