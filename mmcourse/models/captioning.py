"""Image captioning as autoregressive language modelling conditioned on an image.

A caption ``x = (x_1 .. x_T)``, ending in ``<eos>``, gets the probability

    p(x | I) = ∏_t p(x_t | x_<t, I),        log p(x | I) = Σ_t log p(x_t | x_<t, I).

``Captioner`` (Show, Attend and Tell, Xu et al. 2015) computes each factor with a recurrent
decoder that, at every step, *attends* over the regions ``k_1 .. k_N`` of a CNN feature map:

    k_i       = LayerNorm(ConvEncoder.grid(I)_i + p_i)                 (N = (S/4)² regions)
    h_0       = tanh(W_0 · (1/N) Σ_i k_i + b_0)                        (the mean region)
    c_t, α_t  = AdditiveAttention(h_{t-1}, k)    e_i = v^T tanh(W_q h_{t-1} + W_k k_i), α = softmax(e)
    h_t       = GRUCell([E x_{t-1}; c_t], h_{t-1})                     (or an LSTMCell)
    p(x_t | x_<t, I) = softmax(W_o [h_t; c_t] + b_o)

``p_i`` is a learned embedding of region ``i``'s position: a CNN feature says *what* is in a
region, not *where*, and "above" / "left of" need the where. The LayerNorm puts every region on
the same scale (on Shapes, 90 % exact match came at epoch 4 instead of 9).
``<pad>`` and ``<bos>`` never follow anything, so their probability is fixed at 0 (their
logits are -inf): the softmax runs over the words, ``<eos>`` and ``<unk>``.

**Training** is teacher forcing: the decoder reads the true caption shifted by one
(``tokens[:, :-1]``) and is scored on predicting ``tokens[:, 1:]``, the mean cross-entropy
``-(1/#) Σ log p(x_t | x_<t, I)`` over the non-pad targets.

**Decoding** (greedy, beam search, sampling) lives in ``mmcourse.models.decoding``: functions over
the ``start`` / ``step`` interface that every captioner here implements; ``model.decode(images,
"beam")`` and ``model.caption(images)`` call them. ``mmcourse.reports.caption_report`` scores
decoded captions against the references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import check_batch
from mmcourse.data.text import Vocab, tokenize
from mmcourse.models import decoding
from mmcourse.models.attention import AdditiveAttention
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.decoding import MAX_LEN, Decoded, filter_logits
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import check_float, check_token_ids

__all__ = ["CaptionModel", "Captioner", "Decoded", "MAX_LEN", "Memory", "encode_captions", "filter_logits"]

PAD, BOS, EOS, UNK = Vocab.pad_id, Vocab.bos_id, Vocab.eos_id, Vocab.unk_id


class Memory(NamedTuple):
    """What the decoder attends to, computed once per image: the regions ``k`` ``(B, N, D)``
    and their projections ``W_k k`` ``(B, N, attention_dim)``."""

    keys: Tensor
    keys_proj: Tensor


# --------------------------------------------------------------------------------------------
# Captions as token ids
# --------------------------------------------------------------------------------------------
def encode_captions(captions: str | Sequence[str], vocab: Vocab) -> Tensor:
    """Captions → ``(N, L)`` token ids ``<bos>`` caption ``<eos>``, padded with 0.

    Every word must be in ``vocab``: an unknown word is an error that names it (all of them)
    and lists the vocabulary, rather than a silent ``<unk>``.
    """
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, Sequence) or not all(isinstance(c, str) for c in captions):
        raise TypeError(f"captions must be a str or a list of str, got {type(captions).__name__}")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a mmcourse.data.text.Vocab, got {type(vocab).__name__}")
    unknown = sorted({w for c in captions for w in tokenize(c) if w not in vocab})
    if unknown:
        words = [w for w in vocab.itos if w not in (vocab.itos[PAD], vocab.itos[BOS],
                                                     vocab.itos[EOS], vocab.itos[UNK])]
        raise ValueError(f"unknown words {unknown} in the caption(s); the vocabulary is {words}")
    return vocab.encode_batch(list(captions), bos=True, eos=True)[0]


def _caption_mask(targets: Tensor) -> Tensor:
    """``True`` for the targets that count in ``log p(x)``: up to and including the first
    ``<eos>`` of each row, and never a pad."""
    eos_before = (targets == EOS).long().cumsum(dim=1) - (targets == EOS).long()
    return (eos_before == 0) & (targets != PAD)


# --------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------
class CaptionModel(nn.Module):
    """What every captioner shares: the grid CNN, input checks, teacher-forced training
    (``forward``), scoring (``log_prob``) and decoding through ``mmcourse.models.decoding``. A
    subclass defines the decoder: ``start(images)``, ``step(tokens, state, memory)`` and
    ``teacher_forcing(images, inputs)``."""

    modalities = ("image", "text")

    def __init__(self, vocab_size: int, image_size: int, width: int, vocab: Vocab | None) -> None:
        """What every captioner has: checked sizes, the vocabulary, the grid-only CNN encoder,
        ``num_regions`` and the ``never`` mask of ``<pad>`` and ``<bos>`` (logits -inf)."""
        super().__init__()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 5:
            raise ValueError(f"vocab_size must be an int >= 5 (4 specials + words), got {vocab_size!r}")
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} tokens but vocab_size is {vocab_size}")
        self.vocab_size, self.image_size, self.vocab = vocab_size, image_size, vocab
        self.encoder = ConvEncoder(3, (image_size, image_size), width=width, out_dim=None)  # grid only
        self.num_regions = self.encoder.grid_size[0] * self.encoder.grid_size[1]
        never = torch.zeros(vocab_size, dtype=torch.bool)
        never[[PAD, BOS]] = True
        self.register_buffer("never", never, persistent=False)

    # -- input checks ------------------------------------------------------------------------
    def _check_images(self, images: Tensor) -> None:
        want = (3, self.image_size, self.image_size)
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != want:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{type(self).__name__} expects images "
                             f"(batch, {', '.join(map(str, want))}), got {got}")
        check_float(images, f"{type(self).__name__} (images in [0, 1])", like=self.encoder.features[0].weight)

    def _check_tokens(self, tokens: Tensor, batch: int) -> None:
        check_token_ids(tokens, self.vocab_size, type(self).__name__)
        if tokens.shape[0] != batch or tokens.shape[1] < 2:
            raise ValueError(
                f"{type(self).__name__} expects text ({batch}, length >= 2) for {batch} images "
                f"(<bos> caption <eos>), got {tuple(tokens.shape)}"
            )
        if tokens.device.type == "cpu":  # a check here would be a host sync on an accelerator
            if not bool((tokens[:, 0] == BOS).all()):
                raise ValueError(f"every caption must start with <bos> (id {BOS}); got first ids "
                                 f"{tokens[:, 0].unique().tolist()}")

    def start(self, images: Tensor):
        raise NotImplementedError

    def step(self, tokens: Tensor, state, memory):
        raise NotImplementedError

    def teacher_forcing(self, images: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # -- training ----------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Teacher forcing on ``batch["image"]`` and the caption ids ``batch["text"]``: a
        ``ModelOutput`` with ``loss`` (mean CE over the non-pad targets), ``logits`` ``(B, T, V)``
        and ``extras["attention"]`` ``(B, T, N)``, where ``T = L - 1``."""
        check_batch(batch, {"image": (3, self.image_size, self.image_size), "text": (None,)},
                    type(self).__name__)
        images, tokens = batch["image"], batch["text"]
        self._check_images(images)
        self._check_tokens(tokens, images.shape[0])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits, attention = self.teacher_forcing(images, inputs)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), targets.reshape(-1),
                               ignore_index=PAD)
        return ModelOutput(logits=logits, loss=loss, extras={"attention": attention})

    # -- scoring -----------------------------------------------------------------------------
    def log_prob(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``log p(x | I) = Σ_t log p(x_t | x_<t, I)`` of each caption ``tokens`` ``(B, L)``
        (``<bos>`` caption ``<eos>`` pad...), summed up to and including the first ``<eos>``
        (pads excluded), and the per-token terms ``(B, L - 1)`` (0 where not counted).
        Differentiable; wrap it in ``torch.no_grad()`` to only score."""
        self._check_images(images)
        self._check_tokens(tokens, images.shape[0])
        targets = tokens[:, 1:]
        logits, _ = self.teacher_forcing(images, tokens[:, :-1])
        token_lp = logits.float().log_softmax(dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        token_lp = torch.where(_caption_mask(targets), token_lp, torch.zeros_like(token_lp))
        return token_lp.sum(dim=1), token_lp

    def _vocab(self, vocab: Vocab | None) -> Vocab:
        vocab = vocab if vocab is not None else self.vocab
        if vocab is None:
            raise ValueError("this Captioner has no vocabulary: pass vocab=... (e.g. shapes_vocab()) "
                             "here or to Captioner(..., vocab=...)")
        if len(vocab) != self.vocab_size:
            raise ValueError(f"vocab has {len(vocab)} tokens but the model has {self.vocab_size}")
        return vocab

    def log_prob_of_caption(self, images: Tensor, captions: str | Sequence[str],
                            vocab: Vocab | None = None) -> Tensor:
        """``log p(caption | I)`` ``(B,)`` of caption strings: one string for every image, or one
        per image. An unknown word is an error naming it."""
        self._check_images(images)
        tokens = encode_captions(captions, self._vocab(vocab)).to(images.device)
        if len(tokens) == 1:
            tokens = tokens.expand(images.shape[0], -1)
        elif len(tokens) != images.shape[0]:
            raise ValueError(f"got {len(tokens)} captions for {images.shape[0]} images; give one "
                             "caption for all or one per image")
        return self.log_prob(images, tokens)[0]

    # -- decoding (mmcourse.models.decoding) ---------------------------------------------------
    def greedy(self, images: Tensor, max_len: int = MAX_LEN) -> Decoded:
        """``x_t = argmax_w p(w | x_<t, I)`` until ``<eos>`` (``decoding.greedy``)."""
        return decoding.greedy(self, images, max_len)

    def sample(self, images: Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, max_len: int = MAX_LEN,
               generator: torch.Generator | None = None) -> Decoded:
        """``x_t ~ softmax(filter(logits / τ))`` until ``<eos>`` (``decoding.sample``)."""
        return decoding.sample(self, images, temperature, top_k, top_p, max_len, generator)

    def beam_search(self, images: Tensor, beam: int = 5, max_len: int = MAX_LEN,
                    length_penalty: float = 0.0, keep_greedy: bool = True) -> Decoded:
        """The ``beam`` best hypotheses by ``log p(x) / |x|^α`` (``decoding.beam_search``)."""
        return decoding.beam_search(self, images, beam, max_len, length_penalty, keep_greedy)

    def decode(self, images: Tensor, method: str = "greedy", **kwargs) -> Decoded:
        """``greedy``, ``beam_search`` or ``sample`` by name (``"greedy"``, ``"beam"``, ``"sample"``)."""
        methods = {"greedy": self.greedy, "beam": self.beam_search, "sample": self.sample}
        if method not in methods:
            raise ValueError(f"method must be one of {list(methods)}, got {method!r}")
        return methods[method](images, **kwargs)

    def caption(self, images: Tensor, method: str = "greedy", vocab: Vocab | None = None,
                **kwargs) -> list[str]:
        """Decoded captions as strings (``kwargs`` go to the decoding method)."""
        vocab = self._vocab(vocab)
        out = self.decode(images, method, **kwargs)
        return [vocab.decode(row) for row in out.tokens.tolist()]


class Captioner(CaptionModel):
    """CNN grid encoder + additive attention + GRU/LSTM decoder:
    ``p(x | I) = ∏_t p(x_t | x_<t, I)``, ``p(x_t | x_<t, I) = softmax(W_o [h_t; c_t] + b_o)``,
    ``h_t = GRUCell([E x_{t-1}; c_t], h_{t-1})``, ``c_t = Σ_i α_ti k_i``,
    ``k_i = LayerNorm(grid(I)_i + p_i)`` (see the module docstring).

    ``vocab_size`` counts the four specials (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3);
    ``vocab`` (optional) lets ``caption`` and ``log_prob_of_caption`` work with strings.
    ``width`` is the ConvEncoder's width: the regions have ``grid_dim = 2 · width`` features.
    """

    CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}

    def __init__(self, vocab_size: int, image_size: int = 32, embed_dim: int = 32, hidden: int = 64,
                 cell: str = "gru", *, width: int = 32, attention_dim: int = 64,
                 vocab: Vocab | None = None):
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {list(self.CELLS)}, got {cell!r}")
        super().__init__(vocab_size, image_size, width, vocab)
        self.hidden, self.cell_type = hidden, cell
        key_dim = self.encoder.grid_dim
        n_states = 2 if cell == "lstm" else 1  # an LSTM starts from (h_0, c_0)
        self.position = nn.Parameter(0.02 * torch.randn(1, self.num_regions, key_dim))  # p_i
        self.key_norm = nn.LayerNorm(key_dim)
        self.init_state = nn.Linear(key_dim, n_states * hidden)
        self.attention = AdditiveAttention(hidden, key_dim, attention_dim)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.cell = self.CELLS[cell](embed_dim + key_dim, hidden)
        self.out = nn.Linear(hidden + key_dim, vocab_size)

    # -- the decoder, one step at a time ---------------------------------------------------
    def start(self, images: Tensor) -> tuple[Memory, Tensor | tuple[Tensor, Tensor]]:
        """Encode images once: the ``Memory`` to attend to and the initial state
        ``h_0 = tanh(W_0 mean_i k_i + b_0)`` (``(h_0, c_0)`` for an LSTM)."""
        self._check_images(images)
        keys = self.key_norm(self.encoder.grid(images) + self.position)     # (B, N, D)
        memory = Memory(keys, self.attention.project_keys(keys))
        init = torch.tanh(self.init_state(keys.mean(dim=1)))
        state = tuple(init.chunk(2, dim=-1)) if self.cell_type == "lstm" else init
        return memory, state

    def _hidden(self, state) -> Tensor:
        return state[0] if self.cell_type == "lstm" else state

    def step(self, tokens: Tensor, state, memory: Memory) -> tuple[Tensor, object, Tensor]:
        """One decoder step from the previous tokens ``x_{t-1}`` ``(B,)``: the logits of
        ``p(x_t | x_<t, I)`` ``(B, V)``, the new state and the attention ``α_t`` ``(B, N)``.
        Training, scoring and every decoding method go through this one function."""
        context, alpha = self.attention(self._hidden(state), memory.keys, keys_proj=memory.keys_proj)
        state = self.cell(torch.cat([self.embed(tokens), context], dim=-1), state)
        logits = self.out(torch.cat([self._hidden(state), context], dim=-1))
        return logits.masked_fill(self.never, float("-inf")), state, alpha

    def teacher_forcing(self, images: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` and attention ``(B, T, N)`` of the decoder reading ``inputs``
        ``(B, T)``: step ``t`` sees ``inputs[:, :t+1]`` only (causal by construction)."""
        memory, state = self.start(images)
        logits, attention = [], []
        for t in range(inputs.shape[1]):
            step_logits, state, alpha = self.step(inputs[:, t], state, memory)
            logits.append(step_logits)
            attention.append(alpha)
        return torch.stack(logits, dim=1), torch.stack(attention, dim=1)
