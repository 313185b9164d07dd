"""Prefix captioning: a frozen language model reads an image as ``k`` "visual words" first.

A causal language model pretrained on text alone gives ``p(x) = ∏_t p(x_t | x_<t)``. Keep it
(and an image encoder) frozen, and learn only a small **mapping network** ``M`` that turns the
image's region features ``G = grid(I)`` into ``k`` prefix embeddings ``P = M(G) ∈ R^{k × d}``
(ClipCap, Mokady et al. 2021; LLaVA's projector; the "visual tokens" of today's
vision-language models). At the input, the language model reads

    z = [P_1 .. P_k ; E x_0 + q_0 .. E x_{T-1} + q_{T-1}]            (k + T vectors, x_0 = <bos>)

under the attention mask ``A`` (``A_ij = 1``: position ``i`` may read position ``j``)

    A_ij = 1  if j < k                 (every position reads the whole prefix)
           1  if k <= j <= i           (a word reads the words before it: causal)
           0  otherwise                (the prefix never reads the caption)

and the loss is the next-token cross-entropy on the caption positions only,

    L = -(1/#) Σ_{t : x_{t+1} ≠ <pad>} log p(x_{t+1} | P, x_≤t),

the prefix positions having no target (``IGNORE``). The caption keeps the positions
``q_0 ..`` it had in pretraining; the prefix carries no position embedding.

``depth="input"`` is exactly that (``assemble_prefix``). A language model this small, trained on
captions where nothing but grammar depends on the context, barely learns to *read* a prefix at
its input; so by default (``depth="every_layer"``, *prefix tuning*, Li & Liang 2021) every
layer ``l`` gets its own ``k`` visual words ``P^l`` and its self-attention reads their keys and
values ``W_K^l P^l``, ``W_V^l P^l`` (the frozen projections) before the words', under the same
mask. Two mappers: ``PrefixMapper`` pools the ``8 × 8`` grid to ``k`` cells and maps each with
one linear layer per depth; ``QueryMapper`` (``mapper="query"``) lets ``k`` learned queries read
the regions by cross-attention (BLIP-2's Q-former in one layer). Only ``M`` is trained:
``count_parameters(model)`` counts its parameters alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import check_batch
from mmcourse.data.text import Vocab
from mmcourse.models.captioning import CaptionModel, Memory
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.language_model import TinyCausalDecoder
from mmcourse.models.output import ModelOutput

__all__ = ["IGNORE", "PrefixCaptioner", "PrefixMapper", "QueryMapper", "assemble_prefix",
           "prefix_attention_mask", "prefix_targets"]

#: The target of a position that has none (the prefix): ``F.cross_entropy(ignore_index=IGNORE)``.
IGNORE = -100


def prefix_attention_mask(k: int, length: int, device=None) -> Tensor:
    """The bool mask ``A`` ``(k + length, k + length)`` of the module docstring: ``True`` where
    position ``i`` may attend to position ``j`` (prefix: all of it; words: the prefix and the
    words up to themselves; the prefix never reads a word)."""
    for name, v in (("k", k), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"prefix_attention_mask expects {name} to be an int >= 0, got {v!r}")
    n = k + length
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return (j < k) | ((j >= k) & (j <= i))


def assemble_prefix(prefix: Tensor, token_embeddings: Tensor) -> tuple[Tensor, Tensor]:
    """The language model's input ``z = [P ; E x]`` ``(B, k + T, d)`` and its attention mask
    ``(k + T, k + T)`` (``prefix_attention_mask``), from the prefix ``P`` ``(B, k, d)`` and the
    caption's token (+ position) embeddings ``(B, T, d)``."""
    if not isinstance(prefix, Tensor) or not isinstance(token_embeddings, Tensor):
        raise TypeError("assemble_prefix expects two tensors: prefix (B, k, d) and "
                        "token_embeddings (B, T, d)")
    if prefix.dim() != 3 or token_embeddings.dim() != 3 or prefix.shape[0] != token_embeddings.shape[0] \
            or prefix.shape[2] != token_embeddings.shape[2]:
        raise ValueError(f"assemble_prefix expects prefix (B, k, d) and token_embeddings (B, T, d) with "
                         f"the same B and d, got {tuple(prefix.shape)} and {tuple(token_embeddings.shape)}")
    z = torch.cat([prefix.to(token_embeddings.dtype), token_embeddings], dim=1)
    return z, prefix_attention_mask(prefix.shape[1], token_embeddings.shape[1], device=z.device)


def prefix_targets(tokens: Tensor, k: int, pad_id: int = Vocab.pad_id) -> Tensor:
    """Targets ``(B, k + L - 1)`` aligned with ``z = [P ; E tokens[:, :-1]]``: ``IGNORE`` at the
    ``k`` prefix positions, then the next token ``tokens[:, 1:]`` with ``IGNORE`` at pads."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[1] < 2 \
            or tokens.is_floating_point():
        got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"prefix_targets expects token ids (B, L >= 2), got {got}")
    nxt = tokens[:, 1:].masked_fill(tokens[:, 1:] == pad_id, IGNORE)
    return torch.cat([torch.full((tokens.shape[0], k), IGNORE, dtype=nxt.dtype, device=nxt.device), nxt], 1)


def _check_regions(name: str, grid: Tensor, grid_size: tuple[int, int], in_dim: int) -> None:
    """Region features must be ``(batch, h·w, in_dim)``; say so, naming the mapper, if not."""
    h, w = grid_size
    if grid.dim() != 3 or grid.shape[1:] != (h * w, in_dim):
        raise ValueError(f"{name} expects region features (batch, {h * w}, {in_dim}), "
                         f"got {tuple(grid.shape)}")


def _centres(h: int, w: int) -> Tensor:
    """The centres ``(x, y) ∈ [-1, 1]²`` of an ``h × w`` grid's cells, row by row: ``(h·w, 2)``."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1) * 2 - 1


class PrefixMapper(nn.Module):
    """Region features ``G`` ``(B, N, C)`` on an ``h × w`` grid → ``k`` visual words per
    layer, ``(B, layers · k, dim)`` (layer-major): the grid is average-pooled to ``k`` cells
    (``k`` a square dividing ``h · w``: 64, 16, 4 or 1 on an 8 × 8 grid), each cell's features
    are concatenated with its centre ``(x, y)`` ∈ [-1, 1]² and layer-normalised, and each layer
    ``l`` maps them with its own linear map (LLaVA's projector, one per layer):

        P^l_i = W_l LN([pool(G)_i ; x_i ; y_i]) + b_l,     i = 1..k.

    Its size does not depend on ``k``: ``layers · (dim · (C + 2) + dim) + 2 (C + 2)``. With
    ``hidden = h > 0`` a shared hidden layer comes first (ClipCap's MLP, LLaVA-1.5's projector):
    ``P^l_i = W_l GELU(U LN([..]) + c) + b_l``."""

    def __init__(self, in_dim: int, dim: int, k: int, grid_size: tuple[int, int], layers: int = 1,
                 hidden: int = 0):
        super().__init__()
        h, w = grid_size
        side = round(k ** 0.5) if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 0
        if side * side != k or h % side or w % side:
            raise ValueError(f"k (visual words) must be a square that divides the {h}×{w} grid "
                             f"(e.g. 1, 4, 16, 64), got {k!r}")
        self.in_dim, self.dim, self.k, self.layers, self.grid_size = in_dim, dim, k, layers, (h, w)
        self.cells = (side, side)
        self.register_buffer("xy", _centres(side, side), persistent=False)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0 (0: one linear map per layer), got {hidden!r}")
        self.hidden = hidden
        self.norm = nn.LayerNorm(in_dim + 2)
        self.lift = nn.Sequential(nn.Linear(in_dim + 2, hidden), nn.GELU()) if hidden else nn.Identity()
        self.maps = nn.ModuleList([nn.Linear(hidden or in_dim + 2, dim) for _ in range(layers)])

    def forward(self, grid: Tensor) -> Tensor:
        _check_regions("PrefixMapper", grid, self.grid_size, self.in_dim)
        h, w = self.grid_size
        b = grid.shape[0]
        cells = F.adaptive_avg_pool2d(grid.transpose(1, 2).reshape(b, self.in_dim, h, w), self.cells)
        g = torch.cat([cells.flatten(2).transpose(1, 2), self.xy.to(grid.dtype).expand(b, self.k, 2)], -1)
        g = self.lift(self.norm(g))
        return torch.cat([m(g) for m in self.maps], dim=1)


class QueryMapper(nn.Module):
    """Region features ``G`` ``(B, N, C)`` on an ``h × w`` grid → ``k`` visual words per layer,
    ``(B, layers · k, dim)``, by **learned queries** (BLIP-2's Q-former, ClipCap's transformer
    mapper, in one cross-attention): each region keeps its place, ``R = W_in LN([G ; x ; y])``
    ``(N, h)``, and ``k`` learned queries ``Q ∈ R^{k × h}`` each read the regions they need,

        Z = Q + MHA(Q, R, R),        P^l_i = W_l GELU(LN(Z_i)) + b_l,     i = 1..k,

    so a slot may follow one object wherever it lies instead of a fixed cell's average. Any
    ``k >= 1``; its size is ``k h`` (the queries) plus a part that does not depend on ``k``."""

    def __init__(self, in_dim: int, dim: int, k: int, grid_size: tuple[int, int], layers: int = 1,
                 hidden: int = 32, heads: int = 4):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k (visual words) must be an int >= 1, got {k!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1 or hidden % heads:
            raise ValueError(f"hidden must be a positive int divisible by heads={heads}, got {hidden!r}")
        h, w = grid_size
        self.in_dim, self.dim, self.k, self.layers = in_dim, dim, k, layers
        self.grid_size, self.hidden = (h, w), hidden
        self.register_buffer("xy", _centres(h, w), persistent=False)
        self.norm = nn.LayerNorm(in_dim + 2)
        self.proj = nn.Linear(in_dim + 2, hidden)
        self.queries = nn.Parameter(torch.randn(k, hidden) * hidden ** -0.5)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.out_norm = nn.LayerNorm(hidden)
        self.maps = nn.ModuleList([nn.Linear(hidden, dim) for _ in range(layers)])

    def forward(self, grid: Tensor) -> Tensor:
        _check_regions("QueryMapper", grid, self.grid_size, self.in_dim)
        h, w = self.grid_size
        b = grid.shape[0]
        r = self.proj(self.norm(torch.cat([grid, self.xy.to(grid.dtype).expand(b, h * w, 2)], -1)))
        q = self.queries.to(grid.dtype).expand(b, self.k, self.hidden)
        z = F.gelu(self.out_norm(q + self.attn(q, r, r, need_weights=False)[0]))
        return torch.cat([m(z) for m in self.maps], dim=1)


class PrefixCaptioner(CaptionModel):
    """A frozen ``TinyCausalDecoder`` reading ``k`` prefix embeddings from a trained
    ``PrefixMapper`` over a frozen image encoder's regions (see the module docstring).

    ``image_encoder``: a ``ConvEncoder`` (e.g. the dual encoder's image tower) whose conv
    features are copied and frozen; ``lm``: the pretrained language model (frozen, kept in eval
    mode). Implements the captioner interface (``start``/``step``), so ``greedy``, ``beam_search``,
    ``sample``, ``caption`` and ``mmcourse.reports.caption_report`` work unchanged; the
    "attention" ``α_t`` they report is over the ``k`` prefix slots (the last layer's, head mean).
    """

    def __init__(self, lm: TinyCausalDecoder, image_encoder: ConvEncoder, k: int = 64, *,
                 depth: str = "every_layer", hidden: int = 0, mapper: str = "pool",
                 vocab: Vocab | None = None):
        if not isinstance(lm, TinyCausalDecoder):
            raise TypeError(f"lm must be a TinyCausalDecoder, got {type(lm).__name__}")
        if not isinstance(image_encoder, ConvEncoder) or image_encoder.in_channels != 3 \
                or image_encoder.input_size[0] != image_encoder.input_size[1]:
            raise TypeError("image_encoder must be a ConvEncoder of square RGB images (e.g. "
                            "DualEncoder.image_encoder)")
        width = image_encoder.features[0].out_channels
        super().__init__(lm.vocab_size, image_encoder.input_size[0], width, vocab)
        self.encoder.features.load_state_dict(image_encoder.features.state_dict())
        self.lm = lm
        for p in [*self.encoder.parameters(), *self.lm.parameters()]:
            p.requires_grad_(False)
        if depth not in ("input", "every_layer"):
            raise ValueError(f"depth must be 'input' or 'every_layer', got {depth!r}")
        if mapper not in ("pool", "query"):
            raise ValueError(f"mapper must be 'pool' (PrefixMapper) or 'query' (QueryMapper), got {mapper!r}")
        self.k, self.depth, self.hidden, self.mapper_kind = k, depth, hidden, mapper
        layers = len(lm.blocks) if depth == "every_layer" else 1
        if mapper == "pool":
            self.mapper = PrefixMapper(self.encoder.grid_dim, lm.token_embed.embedding_dim, k,
                                       self.encoder.grid_size, layers, hidden=hidden)
        else:
            self.mapper = QueryMapper(self.encoder.grid_dim, lm.token_embed.embedding_dim, k,
                                      self.encoder.grid_size, layers, hidden=hidden or 32)
        self.num_regions = k  # what decoding's attention maps run over: the prefix slots

    def train(self, mode: bool = True) -> PrefixCaptioner:
        super().train(mode)
        self.encoder.eval()
        self.lm.eval()  # frozen: no dropout either
        return self

    def prefix(self, images: Tensor) -> Tensor:
        """``P = M(grid(I))`` ``(B, k, d)``: the image as ``k`` visual words."""
        self._check_images(images)
        with torch.no_grad():
            grid = self.encoder.grid(images)
        return self.mapper(grid)

    def _run(self, prefix: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, k + T, V)`` of the LM over ``[P ; E inputs]`` (the ``k`` prefix rows are
        0 with ``depth="every_layer"``) and the last layer's head-mean attention of the words to
        the prefix slots ``(B, T, k)``."""
        if self.depth == "every_layer":
            return self._run_every_layer(prefix, inputs)
        z, mask = assemble_prefix(prefix, self.lm.embed(inputs))
        logits, attention = self.lm.run_embeddings(z, mask)
        logits = logits.masked_fill(self.never, float("-inf"))
        return logits, attention[-1].mean(dim=1)[:, self.k:, : self.k]

    def _run_every_layer(self, prefix: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Deep prefix (prefix tuning): layer ``l``'s self-attention reads the keys and values
        ``W_K^l P^l``, ``W_V^l P^l`` of its own ``k`` prefix vectors before the words' (the
        frozen LM's projections; ``P^l`` is not layer-normalised, so the mapper sets how loudly
        each slot speaks); the words' rows of ``prefix_attention_mask``."""
        k = self.k
        x = self.lm.embed(inputs)
        mask = prefix_attention_mask(k, x.shape[1], device=x.device)[k:][None, None]
        weights = None
        for layer, block in enumerate(self.lm.blocks):
            att, p = block.self_attn, prefix[:, layer * k:(layer + 1) * k].to(x.dtype)
            h = block.norm_self(x)
            keys = att._split(att.k_proj(torch.cat([p, h], dim=1)))
            values = att._split(att.v_proj(torch.cat([p, h], dim=1)))
            scores = att._split(att.q_proj(h)) @ keys.transpose(-1, -2) / att.head_dim ** 0.5
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            x = x + att.out_proj((weights @ values).transpose(1, 2).flatten(2))
            x = x + block.mlp(block.norm_mlp(x))
        logits = self.lm.head(self.lm.norm(x)).masked_fill(self.never, float("-inf"))
        logits = torch.cat([logits.new_zeros(x.shape[0], k, logits.shape[-1]), logits], dim=1)
        return logits, weights.mean(dim=1)[..., :k]

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """``loss`` = CE over the caption positions only (``prefix_targets``); ``logits`` are the
        caption positions' ``(B, L-1, V)``; ``extras["attention"]``: words → prefix slots."""
        check_batch(batch, {"image": (3, self.image_size, self.image_size), "text": (None,)},
                    type(self).__name__)
        images, tokens = batch["image"], batch["text"]
        self._check_images(images)
        self._check_tokens(tokens, images.shape[0])
        logits, attention = self._run(self.prefix(images), tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), prefix_targets(tokens, self.k).flatten(),
                               ignore_index=IGNORE)
        return ModelOutput(logits=logits[:, self.k:], loss=loss, extras={"attention": attention})

    # -- the captioner interface ---------------------------------------------------------------
    def start(self, images: Tensor) -> tuple[Memory, Tensor]:
        prefix = self.prefix(images)
        empty = torch.empty(images.shape[0], 0, dtype=torch.long, device=images.device)
        return Memory(prefix, prefix), empty

    def step(self, tokens: Tensor, state: Tensor, memory: Memory) -> tuple[Tensor, Tensor, Tensor]:
        words = torch.cat([state, tokens[:, None]], dim=1)
        logits, attention = self._run(memory.keys, words)
        return logits[:, -1], words, attention[:, -1]

    def teacher_forcing(self, images: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        logits, attention = self._run(self.prefix(images), inputs)
        return logits[:, self.k:], attention
