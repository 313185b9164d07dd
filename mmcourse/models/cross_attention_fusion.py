"""End-to-end (intermediate) fusion: modalities meet *inside* the network, by cross-attention.

Each modality becomes a sequence of tokens (image or spectrogram regions, words, or one vector
token), and each modality's tokens attend to the other modalities' tokens,

    X_m ← X_m + softmax(Q_m K_{-m}^T / sqrt(d_k)) V_{-m},

before pooling and one classifier head. See ``mmcourse.models.fusion`` for the feature-level and
model-level strategies on the same interface.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.models.attention import TransformerBlock
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.joint import Batch, JointClassifier, classifier_head
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import check_token_ids


class Tokenizer(nn.Module):
    """A modality as a sequence of ``dim``-vectors and a validity mask ``(B, N)``:

    images/spectrograms → the regions of a ``ConvEncoder`` grid, average-pooled ``pool × pool``
    (``H/4 · W/4`` regions when ``pool=1``) and projected;
    token ids → word embeddings (``<pad>`` = 0 is invalid); ``(B, F)`` vectors → one token.
    A learned position embedding is added to every token.
    """

    def __init__(self, example: Tensor, dim: int, *, vocab_size: int | None = None, width: int = 16,
                 pool: int = 2):
        super().__init__()
        self.pool = pool
        if example.dim() == 4 and example.is_floating_point():
            _, c, h, w = example.shape
            self.kind, self.conv = "grid", ConvEncoder(c, (h, w), width=width, out_dim=None)
            gh, gw = self.conv.grid_size
            self.proj, length = nn.Linear(self.conv.grid_dim, dim), (gh // pool) * (gw // pool)
        elif example.dim() == 2 and example.dtype == torch.long:
            if vocab_size is None:
                raise ValueError("a token-id modality needs vocab_size to build its tokenizer")
            self.kind, length = "tokens", example.shape[1]
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        elif example.dim() == 2 and example.is_floating_point():
            self.kind, self.proj, length = "vector", nn.Linear(example.shape[1], dim), 1
        else:
            raise ValueError(
                f"no tokenizer for a modality of shape {tuple(example.shape)} {example.dtype}; expected "
                "(B, C, H, W) float images, (B, L) int64 tokens or (B, F) float vectors"
            )
        self.length = length
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "grid":
            self.conv._check(x)  # shape and dtype
            fmap = F.avg_pool2d(self.conv.features(x), self.pool)
            tokens = self.proj(fmap.flatten(2).transpose(1, 2))
            valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)
        elif self.kind == "tokens":
            check_token_ids(x, self.embed.num_embeddings, "Tokenizer")
            if x.shape[1] != self.length:
                raise ValueError(f"Tokenizer expects (batch, {self.length}) token ids, got {tuple(x.shape)}")
            tokens, valid = self.embed(x), x != 0
        else:
            tokens = self.proj(x)[:, None, :]
            valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)
        return tokens + self.pos, valid


class CrossAttentionFusion(JointClassifier):
    """End-to-end fusion: each modality's tokens attend to every *other* modality's tokens.

    Per layer and modality ``m`` (a pre-norm transformer block with cross-attention):

        X_m ← X_m + SelfAttn(X_m),   X_m ← X_m + softmax(Q_m K_{-m}^T / sqrt(d_k)) V_{-m},
        X_m ← X_m + MLP(X_m),

    where ``K_{-m}, V_{-m}`` come from the concatenated tokens of the other modalities. Then
    each modality's tokens are mean-pooled over valid positions and ``s = h([pool_1; ...; p])``.
    Absent modalities are masked out of every attention and pooling. The output's
    ``extras["attention"]`` holds the cross-attention weights, ``{(layer, m): (B, heads, N_m, N_{-m})}``.
    """

    def __init__(self, example: Mapping[str, Tensor], num_classes: int, *, dim: int = 64,
                 width: int = 16, heads: int = 4, layers: int = 1, hidden: int = 128,
                 dropout: float = 0.1, vocab_sizes: Mapping[str, int | None] | None = None):
        super().__init__(list(example), num_classes)
        vocab_sizes = vocab_sizes or {}
        self.tokenizers = nn.ModuleDict({
            m: Tokenizer(x, dim, vocab_size=vocab_sizes.get(m), width=width) for m, x in example.items()
        })
        self.blocks = nn.ModuleList([
            nn.ModuleDict({m: TransformerBlock(dim, heads, dropout=dropout, cross=True) for m in example})
            for _ in range(layers)
        ])
        self.norm = nn.LayerNorm(dim)
        self.head = classifier_head(dim * len(example) + len(example), num_classes, hidden)
        self.dim = dim

    def forward(self, batch: Batch) -> ModelOutput:
        size = self._check(batch)
        dev = self._device()
        tokens, valid, present = {}, {}, {}
        for m, tok in self.tokenizers.items():
            present[m] = self.present(batch, m, size, dev)
            if batch[m] is None:
                tokens[m] = torch.zeros(size, tok.length, self.dim, device=dev)
                valid[m] = torch.zeros(size, tok.length, dtype=torch.bool, device=dev)
            else:
                tokens[m], valid[m] = tok(batch[m])
                valid[m] = valid[m] & (present[m][:, None] > 0)
        attention = {}
        for layer, blocks in enumerate(self.blocks):
            updated = {}
            for m, block in blocks.items():
                others = [o for o in self.modalities if o != m]
                context = torch.cat([tokens[o] for o in others], dim=1)
                context_valid = torch.cat([valid[o] for o in others], dim=1)
                updated[m], weights = block(tokens[m], context=context, mask=valid[m],
                                            context_mask=context_valid)
                attention[(layer, m)] = weights.get("cross").detach()
            tokens = updated
        pooled = []
        for m in self.modalities:
            v = valid[m].to(tokens[m].dtype)[..., None]
            pooled.append((self.norm(tokens[m]) * v).sum(1) / v.sum(1).clamp(min=1))
        flags = torch.stack([present[m] for m in self.modalities], dim=1)
        return ModelOutput(logits=self.head(torch.cat([*pooled, flags], dim=1)),
                           extras={"attention": attention})
