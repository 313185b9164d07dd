"""Multimodal transformers for VQA: image patches and question words read *together*.

Both models embed the image as patch tokens ``z_n = W x_n + b + e_n`` (``PatchEmbedding``) and
the question as word tokens ``t_j = E[q_j] + p_j`` (word plus position embedding), then:

* **single-stream** (one sequence, as VisualBERT / ViLT): a learned ``[CLS]`` token, the words
  and the patches, each tagged with a modality embedding ``m``, go through ``K`` pre-norm
  transformer blocks of *self*-attention over the joint sequence,

      X = [c; t_1 + m_t; ..; t_L + m_t; z_1 + m_v; ..; z_N + m_v],   X ← Block_k(X),
      s(a, v, q) = W_o LN(X_[CLS]),

  so any word can attend to any patch and any patch to any word at every layer;
* **dual-stream** (co-attention, as ViLBERT / LXMERT): each modality first has its own
  self-attention blocks; then each co-attention layer lets each stream attend to the other,

      T ← T + MHA(LN(T), LN(Z)),   Z ← Z + MHA(LN(Z), LN(T))     (each inside a block),
      s(a, v, q) = W_o [LN(T_[CLS]); mean_n LN(Z_n)].

Padding words (id 0) are masked out as keys everywhere. ``extras["attention"]`` is the
question-to-image attention of the last layer, ``(B, L, N)`` averaged over heads (a padding
word's row is zero), and ``extras["cls_attention"]`` the ``[CLS]`` token's attention over the
patches ``(B, N)``: what the explorer and the chapter's figures show.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmcourse.models.attention import TransformerBlock
from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_embedding import PatchEmbedding
from mmcourse.models.vqa import VQAModel


class QuestionEmbedding(nn.Module):
    """``(B, L)`` word ids → ``(B, L, dim)`` tokens ``E[q_j] + p_j`` (learned positions)."""

    def __init__(self, vocab_size: int, length: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))

    def forward(self, text: Tensor) -> Tensor:
        return self.embed(text) + self.pos


def _image_tokens(image_size: int, patch: int, dim: int, stem_width: int | None,
                  stem_norm: bool, stem_depth: int, tagged=None) -> nn.Module:
    if tagged is None:
        return PatchEmbedding(image_size, patch, dim, stem_width=stem_width, stem_norm=stem_norm,
                              stem_depth=stem_depth)
    from mmcourse.models.patch_tagging import PatchTagger, TaggedPatches

    factors = tuple(tagged)
    tagger = PatchTagger(1 + math.prod(factors), image_size, patch=patch, dim=dim, stem_width=stem_width,
                         stem_norm=stem_norm, stem_depth=stem_depth)
    return TaggedPatches(tagger, dim, factors)


class SingleStreamVQA(VQAModel):
    """One transformer over ``[CLS] + words + patches`` (see the module docstring).

    ``patch``: patch side (in stem feature-map cells when ``stem_width`` is set; a stem divides
    the image side by 4; ``stem_norm``: BatchNorm in it; ``stem_depth``: its convolutions, two
    strided and ``stem_depth - 2`` of stride 1 between them); ``dim``, ``heads``, ``layers``,
    ``dropout``: the transformer's. ``tagged``: the attribute sizes of a patch tagger's object
    codes (Shapes: ``(4, 6, 2)``); the patches are then ``TaggedPatches`` over a frozen
    ``PatchTagger`` of those sizes (fill it with ``load_tagger``), and patches it calls empty are
    masked out.
    """

    def __init__(self, num_answers: int, vocab_size: int, image_size: int, question_len: int, *,
                 patch: int = 8, dim: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.0,
                 stem_width: int | None = None, stem_norm: bool = False,
                 stem_depth: int = 2, tagged: tuple[int, ...] | list[int] | None = None):
        super().__init__(num_answers, vocab_size, image_size, question_len)
        self.patches = _image_tokens(image_size, patch, dim, stem_width, stem_norm, stem_depth, tagged)
        self.words = QuestionEmbedding(vocab_size, question_len, dim)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.modality = nn.Parameter(0.02 * torch.randn(2, dim))            # m_t, m_v
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_answers)

    def forward(self, batch) -> ModelOutput:
        image, text = self._inputs(batch)
        z = self.patches(image)                                              # (B, N, dim)
        if isinstance(z, tuple):                                             # TaggedPatches: + object mask
            z, keep = z
        else:
            keep = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        z = z + self.modality[1]
        t = self.words(text) + self.modality[0]                              # (B, L, dim)
        b, n_words = len(text), text.shape[1]
        x = torch.cat([self.cls.expand(b, -1, -1), t, z], dim=1)
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), text != 0, keep], dim=1)
        for block in self.blocks:
            x, weights = block(x, mask=valid)
        w = weights["self"].mean(dim=1)                                      # (B, 1+L+N, 1+L+N)
        words_to_image = w[:, 1:1 + n_words, 1 + n_words:] * (text != 0)[:, :, None]
        return ModelOutput(logits=self.head(self.norm(x[:, 0])),
                           extras={"attention": words_to_image,
                                   "cls_attention": w[:, 0, 1 + n_words:]})


class DualStreamVQA(VQAModel):
    """Two streams, words and patches, each with ``self_layers`` blocks of its own, then
    ``co_layers`` co-attention layers in which each stream attends to the other (see the module
    docstring)."""

    def __init__(self, num_answers: int, vocab_size: int, image_size: int, question_len: int, *,
                 patch: int = 8, dim: int = 64, heads: int = 4, self_layers: int = 1, co_layers: int = 1,
                 dropout: float = 0.0, stem_width: int | None = None, stem_norm: bool = False,
                 stem_depth: int = 2):
        super().__init__(num_answers, vocab_size, image_size, question_len)
        self.patches = _image_tokens(image_size, patch, dim, stem_width, stem_norm, stem_depth)
        self.words = QuestionEmbedding(vocab_size, question_len, dim)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.text_self = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout) for _ in range(self_layers))
        self.image_self = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout) for _ in range(self_layers))
        self.text_co = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout, cross=True)
                                     for _ in range(co_layers))
        self.image_co = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout, cross=True)
                                      for _ in range(co_layers))
        self.norm_t, self.norm_v = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.head = nn.Linear(2 * dim, num_answers)

    def forward(self, batch) -> ModelOutput:
        image, text = self._inputs(batch)
        b = len(text)
        z = self.patches(image)                                              # (B, N, dim)
        t = torch.cat([self.cls.expand(b, -1, -1), self.words(text)], dim=1)  # (B, 1+L, dim)
        t_valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=t.device), text != 0], dim=1)
        for text_block, image_block in zip(self.text_self, self.image_self):
            t, _ = text_block(t, mask=t_valid)
            z, _ = image_block(z)
        cross = None
        for text_block, image_block in zip(self.text_co, self.image_co):
            t_new, weights = text_block(t, context=z, mask=t_valid)          # words read patches
            z, _ = image_block(z, context=t, context_mask=t_valid)           # patches read words
            t, cross = t_new, weights["cross"].mean(dim=1)                   # (B, 1+L, N)
        pooled = torch.cat([self.norm_t(t[:, 0]), self.norm_v(z).mean(dim=1)], dim=-1)
        extras = {}
        if cross is not None:
            extras = {"attention": cross[:, 1:] * (text != 0)[:, :, None], "cls_attention": cross[:, 0]}
        return ModelOutput(logits=self.head(pooled), extras=extras)




#: the chapter's models by name, and their default sizes for easy-VQA (64 px images)
VQA_KINDS = ("question", "image", "product", "single", "dual")
BEST = {"patch": 4, "stem_width": 16, "dim": 64, "heads": 4}


def model_kwargs(kind: str, info: dict, **overrides) -> dict:
    """The constructor arguments ``make_vqa_model(kind, info, **overrides)`` uses (plain ints and
    floats: what a shipped checkpoint records to rebuild the model)."""
    c, v, s, length = len(info["answers"]), len(info["vocab"]), info["image_size"], info["max_len"]
    if kind == "question":
        return {"num_answers": c, "vocab_size": v, "question_len": length, **overrides}
    if kind == "image":
        return {"num_answers": c, "image_size": s, **overrides}
    base = {"num_answers": c, "vocab_size": v, "image_size": s, "question_len": length}
    return {**base, **overrides} if kind == "product" else {**base, **BEST, **overrides}


def make_vqa_model(kind: str, info: dict, **overrides) -> VQAModel:
    """One of the chapter's VQA models, sized from a dataset's ``info`` (``answers``, ``vocab``,
    ``image_size``, ``max_len``): ``"question"`` (``QuestionOnly``), ``"image"`` (``ImageOnly``),
    ``"product"`` (``ProductFusionVQA``), ``"single"`` (``SingleStreamVQA``, 2 layers) or
    ``"dual"`` (``DualStreamVQA``, 1 + 1 layers); the transformers default to ``BEST`` (a conv
    stem of width 16, 4×4 patches of its feature map, width 64, 4 heads). ``overrides`` go to
    the constructor."""
    from mmcourse.models.vqa import ImageOnly, ProductFusionVQA, QuestionOnly

    if kind not in VQA_KINDS:
        raise ValueError(f"unknown VQA model {kind!r}; expected one of {list(VQA_KINDS)}")
    missing = [k for k in ("answers", "vocab", "image_size", "max_len") if k not in info]
    if missing:
        raise KeyError(f"make_vqa_model needs info with {missing} (from load_easy_vqa / load_shapes_qa)")
    classes = {"question": QuestionOnly, "image": ImageOnly, "product": ProductFusionVQA,
               "single": SingleStreamVQA, "dual": DualStreamVQA}
    return classes[kind](**model_kwargs(kind, info, **overrides))


__all__ = ["BEST", "DualStreamVQA", "QuestionEmbedding", "SingleStreamVQA", "VQA_KINDS", "make_vqa_model",
           "model_kwargs"]
