"""Text to image with the chain rule: an autoregressive model over image tokens.

Chapter 08 wrote a caption ``x`` for an image with ``p(x | I) = ∏_t p(x_t | x_<t, I)``. Turn
it around: tokenize the image into ``n = g²`` codes ``c = (c_1 .. c_n)`` (``image_tokenizer``,
raster order) and generate *them* from the caption,

    p(c | x) = ∏_{t=1}^{n} p(c_t | c_<t, x),        p(c_t | c_<t, x) = softmax(W_o LN(h^L_t)),

with a causal transformer over ``<bos>, c_1 .. c_{n-1}`` (code + position embeddings) that
cross-attends, in every layer, to the caption encoded by one bidirectional transformer block
over its word + position embeddings (pads masked). Training is teacher forcing with the mean
cross-entropy over the ``n`` codes; the decoder of ``image_tokenizer`` turns sampled codes into
pixels.

For classifier-free guidance (``guidance``) the caption is replaced, with probability
``p_uncond`` per training example, by the *null caption* ``<bos> <eos>``, so the same network
also models ``p(c | ∅)``; ``generate(..., guidance=w)`` samples from ``ℓ_u + w (ℓ_c − ℓ_u)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset, check_batch
from mmcourse.data.text import Vocab
from mmcourse.models.attention import TransformerBlock
from mmcourse.models.guidance import guided_logits, plausible, sample_next
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import check_token_ids

__all__ = ["FactorisedTextToImage", "TextToImage", "null_captions", "token_dataset"]


def null_captions(batch: int, length: int, device=None) -> Tensor:
    """``(batch, length)`` copies of the null caption ``<bos> <eos> <pad> ...``."""
    tokens = torch.zeros(batch, length, dtype=torch.long, device=device)
    tokens[:, 0], tokens[:, 1] = Vocab.bos_id, Vocab.eos_id
    return tokens


def token_dataset(tokenizer, split: ModalDataset) -> ModalDataset:
    """A split's captions ``text`` with its images' tokens ``codes`` ``(N, g²)`` (from a
    ``VQAutoencoder``), ready for ``fit(TextToImage)``; meta ``caption`` and ``scene`` kept."""
    codes = tokenizer.encode(split.tensors["image"])
    return ModalDataset({"text": split.tensors["text"], "codes": codes}, name=split.name,
                        meta={k: split.meta[k] for k in ("caption", "scene") if k in split.meta})


class TextToImage(nn.Module):
    """``p(c | x) = ∏_t p(c_t | c_<t, x)`` over ``grid²`` image tokens (see the module docstring).

    ``forward(batch)`` reads ``batch["text"]`` ``(B, L)`` caption ids and ``batch["codes"]``
    ``(B, grid²)`` and returns ``ModelOutput(logits (B, grid², codebook_size), loss)``;
    ``generate(captions, guidance, temperature, top_k, generator)`` samples codes.
    """

    def __init__(self, vocab_size: int, codebook_size: int, grid: int = 8, dim: int = 96, heads: int = 4,
                 layers: int = 3, text_len: int = 12, p_uncond: float = 0.15, dropout: float = 0.0):
        super().__init__()
        if not 0 <= p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond!r}")
        self.vocab_size, self.codebook_size, self.grid = vocab_size, codebook_size, grid
        self.n_codes, self.text_len, self.p_uncond = grid * grid, text_len, p_uncond
        self.bos = codebook_size                                  # the image's <bos> code
        self.text_embed = nn.Embedding(vocab_size, dim)
        self.text_pos = nn.Parameter(0.02 * torch.randn(text_len, dim))
        self.text_block = TransformerBlock(dim, heads, dropout=dropout)
        self.code_embed = nn.Embedding(codebook_size + 1, dim)
        self.code_pos = nn.Parameter(0.02 * torch.randn(self.n_codes, dim))
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, dropout=dropout, cross=True)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, codebook_size)

    def _check_text(self, tokens: Tensor) -> None:
        check_token_ids(tokens, self.vocab_size, "TextToImage")
        if tokens.dim() != 2 or tokens.shape[1] > self.text_len or tokens.shape[1] < 2:
            raise ValueError(f"TextToImage expects captions (batch, 2..{self.text_len}) token ids, "
                             f"got {tuple(tokens.shape)}")

    def encode_text(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Caption states ``(B, L, dim)`` and their key mask ``(B, L)`` (``True`` at non-pads)."""
        self._check_text(tokens)
        mask = tokens != Vocab.pad_id
        x, _ = self.text_block(self.text_embed(tokens) + self.text_pos[: tokens.shape[1]], mask=mask)
        return x, mask

    def code_states(self, inputs: Tensor, text: tuple[Tensor, Tensor]) -> Tensor:
        """The final normalised states ``(B, T, dim)`` after each prefix of ``inputs`` ``(B, T)``
        (``<bos>`` first), given ``encode_text``'s output; ``head`` turns them into logits."""
        states, mask = text
        x = self.code_embed(inputs) + self.code_pos[: inputs.shape[1]]
        for block in self.blocks:
            x, _ = block(x, context=states, causal=True, context_mask=mask)
        return self.norm(x)

    def code_logits(self, inputs: Tensor, text: tuple[Tensor, Tensor]) -> Tensor:
        """Logits ``(B, T, codebook_size)`` of the next code after each prefix of ``inputs``
        ``(B, T)`` (``<bos>`` first), given ``encode_text``'s output."""
        return self.head(self.code_states(inputs, text))

    def _inputs_and_text(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(tokens, inputs, codes)``: the captions (the null caption for a ``p_uncond`` share of
        them while training) and the shifted input ``<bos>, c_1 .. c_{n-1}`` of the codes."""
        check_batch(batch, {"text": (None,), "codes": (self.n_codes,)}, type(self).__name__)
        tokens, codes = batch["text"], batch["codes"]
        check_token_ids(codes, self.codebook_size, f"{type(self).__name__} (codes)")
        if self.training and self.p_uncond > 0:                   # caption dropout for guidance
            drop = torch.rand(len(tokens), device=tokens.device) < self.p_uncond
            tokens = torch.where(drop[:, None], null_captions(*tokens.shape, device=tokens.device), tokens)
        inputs = torch.cat([torch.full_like(codes[:, :1], self.bos), codes[:, :-1]], dim=1)
        return tokens, inputs, codes

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        tokens, inputs, codes = self._inputs_and_text(batch)
        logits = self.code_logits(inputs, self.encode_text(tokens))
        loss = F.cross_entropy(logits.flatten(0, 1).float(), codes.flatten())
        return ModelOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def generate(self, captions: Tensor, guidance: float = 1.0, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 plausibility: float = 0.0) -> Tensor:
        """Codes ``(B, grid²)`` sampled for caption ids ``(B, L)``: ``c_t ~ softmax(ℓ_w / τ)``
        with ``ℓ_w = ℓ_u + w (ℓ_c − ℓ_u)`` (``guidance = w``; 1: no guidance, the
        unconditional pass is skipped). ``temperature = 0`` takes the argmax. ``plausibility =
        α > 0``: only codes with ``p_c >= α max p_c`` may be drawn (``guidance.plausible``)."""
        self._check_text(captions)
        guided = guidance != 1
        b = len(captions)
        text = captions
        if guided:
            text = torch.cat([captions, null_captions(b, captions.shape[1], device=captions.device)])
        step = self.incremental(self.encode_text(text))
        codes = torch.full((len(text), 1), self.bos, dtype=torch.long, device=captions.device)
        for _ in range(self.n_codes):
            logits = step(codes[:, -1]).float()
            cond = logits[:b]
            if guided:
                logits = guided_logits(cond, logits[b:], guidance)
            logits = plausible(logits, cond, plausibility)
            nxt = sample_next(logits, temperature, top_k, generator)
            codes = torch.cat([codes, nxt.repeat(2 if guided else 1)[:, None]], dim=1)
        return codes[:b, 1:]

    def incremental(self, text: tuple[Tensor, Tensor]):
        """A function ``step(c (B,)) -> logits (B, codebook_size)`` that feeds one code at a time
        and remembers every layer's keys and values (a KV cache), so generating ``n`` codes costs
        ``n`` token passes instead of ``n²/2``; ``step`` at call ``t`` equals
        ``code_logits(c_≤t, text)[:, -1]``."""
        states, mask = text
        layers = []
        for block in self.blocks:                    # the captions' keys/values, computed once
            ctx = block.norm_context(states)
            att = block.cross_attn
            layers.append({"ck": att._split(att.k_proj(ctx)), "cv": att._split(att.v_proj(ctx)),
                           "k": [], "v": []})
        key_mask = mask[:, None, None, :]
        position = [0]

        def attend(att, x, k, v, kmask=None):
            q = att._split(att.q_proj(x))                               # (B, h, 1, d_h)
            scores = q @ k.transpose(-1, -2) / att.head_dim ** 0.5
            if kmask is not None:
                scores = scores.masked_fill(~kmask, float("-inf"))
            out = scores.softmax(-1) @ v
            return att.out_proj(out.transpose(1, 2).flatten(2))

        def step(code: Tensor) -> Tensor:
            t = position[0]
            if t >= self.n_codes:
                raise ValueError(f"TextToImage generates {self.n_codes} codes; the cache is full")
            x = self.code_embed(code[:, None]) + self.code_pos[t]
            for block, cache in zip(self.blocks, layers):
                h = block.norm_self(x)
                att = block.self_attn
                cache["k"].append(att._split(att.k_proj(h)))
                cache["v"].append(att._split(att.v_proj(h)))
                x = x + attend(att, h, torch.cat(cache["k"], 2), torch.cat(cache["v"], 2))
                x = x + attend(block.cross_attn, block.norm_cross(x), cache["ck"], cache["cv"], key_mask)
                x = x + block.mlp(block.norm_mlp(x))
            position[0] += 1
            return self.head(self.norm(x))[:, 0]

        return step


class _FactorisedCodes(nn.Module):
    """Embedding of code ``c = 1 + K · colour + pattern`` as ``E_col[1 + colour] + E_pat[pattern]``
    (``c = 0``, the background: ``E_col[0]``; the ``<bos>`` code ``1 + C K``: its own vector)."""

    def __init__(self, colours: int, patterns: int, dim: int):
        super().__init__()
        self.colours, self.patterns = colours, patterns
        self.colour = nn.Embedding(colours + 2, dim)     # background, C colours, <bos>
        self.pattern = nn.Embedding(patterns, dim)

    def forward(self, codes: Tensor) -> Tensor:
        bos = 1 + self.colours * self.patterns
        shape = (codes - 1).clamp(0, self.colours * self.patterns - 1)
        colour = torch.where(codes == 0, 0, torch.where(codes == bos, self.colours + 1,
                                                        1 + shape // self.patterns))
        pattern = self.pattern(shape % self.patterns) * ((codes > 0) & (codes < bos))[..., None]
        return self.colour(colour) + pattern


class _FactorisedHead(nn.Module):
    """Log-probabilities of every code from two heads: ``log p(c) = log p_col(colour(c)) +
    log p_pat(pattern(c))`` (the background: ``log p_col(0)``); they sum to one over the codes."""

    def __init__(self, dim: int, colours: int, patterns: int):
        super().__init__()
        self.colours, self.patterns = colours, patterns
        self.colour = nn.Linear(dim, colours + 1)
        self.pattern = nn.Linear(dim, patterns)

    def parts(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(log p_col (…, C + 1), log p_pat (…, K))``."""
        return self.colour(h).float().log_softmax(-1), self.pattern(h).float().log_softmax(-1)

    @staticmethod
    def combine(col: Tensor, pat: Tensor) -> Tensor:
        """The ``1 + C K`` code log-probabilities from the two heads' log-probabilities."""
        shapes = (col[..., 1:, None] + pat[..., None, :]).flatten(-2)     # 1 + K · colour + pattern
        return torch.cat([col[..., :1], shapes], -1)

    def forward(self, h: Tensor) -> Tensor:
        return self.combine(*self.parts(h))


class FactorisedTextToImage(TextToImage):
    """``TextToImage`` over ``PatchTokenizer`` codes ``c = 1 + K · colour + pattern`` with a
    factorised output and input: ``p(c_t | ·) = p(colour_t | ·) p(pattern_t | ·)`` from two heads
    (``C + 1`` and ``K`` classes instead of ``1 + C K``), the code's embedding the sum of its
    colour's and its pattern's. Every colour shares what the model learns about a pattern, so the
    finer tokenizer needs far fewer scenes to learn. Loss, sampling and guidance are unchanged:
    ``logits`` are the ``1 + C K`` log-probabilities."""

    def __init__(self, vocab_size: int, colours: int, patterns: int, grid: int = 8, dim: int = 96,
                 heads: int = 4, layers: int = 3, text_len: int = 12, p_uncond: float = 0.15,
                 dropout: float = 0.0):
        super().__init__(vocab_size, 1 + colours * patterns, grid, dim, heads, layers, text_len, p_uncond,
                         dropout)
        self.colours, self.patterns = colours, patterns
        self.code_embed = _FactorisedCodes(colours, patterns, dim)
        self.head = _FactorisedHead(dim, colours, patterns)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """The same loss as ``TextToImage``'s, ``mean_t −log p(c_t | ·)``, computed from the two heads:
        ``−log p(c) = −log p_col(colour(c)) − [c ≠ 0] log p_pat(pattern(c))`` (the ``1 + C K``
        outer sum is built for ``logits`` only, without gradient: far cheaper to train)."""
        tokens, inputs, codes = self._inputs_and_text(batch)
        col, pat = self.head.parts(self.code_states(inputs, self.encode_text(tokens)))
        fg = codes > 0
        colour = torch.where(fg, 1 + (codes - 1) // self.patterns, 0)
        pattern = torch.where(fg, (codes - 1) % self.patterns, -100)
        loss = (F.cross_entropy(col.flatten(0, 1), colour.flatten(), reduction="sum")
                + F.cross_entropy(pat.flatten(0, 1), pattern.flatten(), reduction="sum", ignore_index=-100)
                ) / codes.numel()
        with torch.no_grad():
            logits = self.head.combine(col, pat)
        return ModelOutput(logits=logits, loss=loss)
