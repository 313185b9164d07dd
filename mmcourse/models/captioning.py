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

**Decoding** searches for a likely caption, one token at a time, until ``<eos>``:

* ``greedy``: ``x_t = argmax p(· | x_<t, I)``;
* ``beam_search``: keeps the ``K`` best prefixes, ranked by ``log p(x) / |x|^α`` (``α = 0``: the
  raw log-probability; ``α > 0`` favours longer captions);
* ``sample``: ``x_t ~ softmax(logits / τ)`` (temperature ``τ``), optionally restricted to the
  ``k`` most likely tokens (top-k) or to the smallest set holding probability ``p`` (top-p,
  nucleus), see ``filter_logits``.

Each returns a ``Decoded``: the token ids (``<bos>`` ... ``<eos>``, pad after), their log-
probability under the model, per token and summed, and the attention maps ``α_t`` for plots.
``caption_report`` scores decoded captions against the references: exact match, BLEU-4, CIDEr-D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset, check_batch
from mmcourse.data.text import Vocab, tokenize
from mmcourse.metrics import bleu, cider_d
from mmcourse.models.attention import AdditiveAttention
from mmcourse.models.cnn import ConvEncoder

__all__ = [
    "Captioner",
    "Decoded",
    "Memory",
    "caption_report",
    "encode_captions",
    "filter_logits",
]

PAD, BOS, EOS, UNK = Vocab.pad_id, Vocab.bos_id, Vocab.eos_id, Vocab.unk_id
#: Default limit on generated tokens (``<eos>`` included); Shapes captions need at most 17.
MAX_LEN = 20


class Memory(NamedTuple):
    """What the decoder attends to, computed once per image: the regions ``k`` ``(B, N, D)``
    and their projections ``W_k k`` ``(B, N, attention_dim)``."""

    keys: Tensor
    keys_proj: Tensor


class Decoded(NamedTuple):
    """The output of a decoding method for ``B`` images and ``T`` decoding steps.

    * ``tokens`` ``(B, 1 + T)`` int64: ``<bos>`` caption ``<eos>``, then ``<pad>`` (the layout of
      the dataset's ``tokens``, so ``model.log_prob(images, out.tokens)`` re-scores it);
    * ``log_prob`` ``(B,)``: ``Σ_t log p(x_t | x_<t, I)`` under the model, up to and including
      ``<eos>`` (the raw sum: no length normalisation, temperature or top-k/top-p);
    * ``token_log_probs`` ``(B, T)``: the terms of that sum, 0 after ``<eos>``;
    * ``attention`` ``(B, T, N)``: ``α_t`` over the ``N`` regions at each step, 0 after ``<eos>``.
    """

    tokens: Tensor
    log_prob: Tensor
    token_log_probs: Tensor
    attention: Tensor


# --------------------------------------------------------------------------------------------
# Filtering a next-token distribution
# --------------------------------------------------------------------------------------------
def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """``logits`` ``(..., V)`` with every token outside the allowed set set to ``-inf``.

    * ``top_k``: keep the ``k`` largest logits of each row (exactly ``k``, even with ties);
    * ``top_p`` (nucleus): sort the tokens by probability ``p_(1) >= p_(2) >= ...`` and keep the
      shortest prefix whose mass reaches ``top_p``: token ``(j)`` stays iff
      ``Σ_{i<j} p_(i) < top_p`` (so the most likely token always stays).

    With both, top-k is applied first and top-p to the renormalised survivors. ``None`` (or
    ``top_k >= V``, ``top_p = 1``) keeps everything.
    """
    if not isinstance(logits, Tensor) or logits.dim() < 1 or not logits.is_floating_point():
        got = (f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, Tensor)
               else type(logits).__name__)
        raise ValueError(f"filter_logits expects float logits (..., vocab), got {got}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        if top_k < logits.shape[-1]:
            keep_idx = logits.topk(top_k, dim=-1).indices
            keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, keep_idx, True)
            logits = logits.masked_fill(~keep, float("-inf"))
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs          # Σ_{i<j} p_(i)
        keep_sorted = mass_before < top_p
        keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits


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


def _pad_steps(out: Decoded, steps: int) -> Decoded:
    """``out`` with its step dimension padded (pad tokens, zeros) to ``steps``."""
    extra = steps - out.token_log_probs.shape[1]
    return Decoded(F.pad(out.tokens, (0, extra), value=PAD), out.log_prob,
                   F.pad(out.token_log_probs, (0, extra)), F.pad(out.attention, (0, 0, 0, extra)))


def _choose(take_a: Tensor, a: Decoded, b: Decoded) -> Decoded:
    """Row-wise ``a`` where ``take_a`` (B,) is true, else ``b``."""
    steps = max(a.token_log_probs.shape[1], b.token_log_probs.shape[1])
    a, b = _pad_steps(a, steps), _pad_steps(b, steps)
    return Decoded(*(torch.where(take_a.view(-1, *[1] * (x.dim() - 1)), x, y) for x, y in zip(a, b)))


def _caption_mask(targets: Tensor) -> Tensor:
    """``True`` for the targets that count in ``log p(x)``: up to and including the first
    ``<eos>`` of each row, and never a pad."""
    eos_before = (targets == EOS).long().cumsum(dim=1) - (targets == EOS).long()
    return (eos_before == 0) & (targets != PAD)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class Captioner(nn.Module):
    """CNN grid encoder + additive attention + GRU/LSTM decoder:
    ``p(x | I) = ∏_t p(x_t | x_<t, I)``, ``p(x_t | x_<t, I) = softmax(W_o [h_t; c_t] + b_o)``,
    ``h_t = GRUCell([E x_{t-1}; c_t], h_{t-1})``, ``c_t = Σ_i α_ti k_i``,
    ``k_i = LayerNorm(grid(I)_i + p_i)`` (see the module docstring).

    ``vocab_size`` counts the four specials (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3);
    ``vocab`` (optional) lets ``caption`` and ``log_prob_of_caption`` work with strings.
    ``width`` is the ConvEncoder's width: the regions have ``grid_dim = 2 · width`` features.
    """

    modalities = ("image", "tokens")
    CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}

    def __init__(self, vocab_size: int, image_size: int = 32, embed_dim: int = 32, hidden: int = 64,
                 cell: str = "gru", *, width: int = 32, attention_dim: int = 64,
                 vocab: Vocab | None = None):
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {list(self.CELLS)}, got {cell!r}")
        self._init_common(vocab_size, image_size, width, vocab)
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

    def _init_common(self, vocab_size: int, image_size: int, width: int, vocab: Vocab | None) -> None:
        """What every captioner has: checked sizes, the vocabulary, the grid-only CNN encoder,
        ``num_regions`` and the ``never`` mask of ``<pad>`` and ``<bos>`` (logits -inf)."""
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
            raise ValueError(f"Captioner expects images (batch, {', '.join(map(str, want))}), got {got}")
        if not images.is_floating_point():
            raise ValueError(f"Captioner expects float images in [0, 1], got dtype {images.dtype}")

    def _check_tokens(self, tokens: Tensor, batch: int) -> None:
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
            got = (f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, Tensor)
                   else type(tokens).__name__)
            raise ValueError(f"Captioner expects tokens (batch, length) int64, got {got}")
        if tokens.shape[0] != batch or tokens.shape[1] < 2:
            raise ValueError(
                f"Captioner expects tokens ({batch}, length >= 2) for {batch} images "
                f"(<bos> caption <eos>), got {tuple(tokens.shape)}"
            )
        if tokens.device.type == "cpu":  # range checks would be a host sync on an accelerator
            if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
                raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got "
                                 f"min {int(tokens.min())} max {int(tokens.max())}")
            if not bool((tokens[:, 0] == BOS).all()):
                raise ValueError(f"every caption must start with <bos> (id {BOS}); got first ids "
                                 f"{tokens[:, 0].unique().tolist()}")

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

    # -- training ----------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Teacher forcing on ``batch["image"]`` and ``batch["tokens"]``: ``{"loss": mean CE over
        the non-pad targets, "logits": (B, T, V), "attention": (B, T, N)}`` with ``T = L - 1``."""
        check_batch(batch, {"image": (3, self.image_size, self.image_size), "tokens": (None,)},
                    "Captioner")
        images, tokens = batch["image"], batch["tokens"]
        self._check_images(images)
        self._check_tokens(tokens, images.shape[0])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits, attention = self.teacher_forcing(images, inputs)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), targets.reshape(-1),
                               ignore_index=PAD)
        return {"loss": loss, "logits": logits, "attention": attention}

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

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self, images: Tensor, max_len: int, choose) -> Decoded:
        """Shared loop of greedy decoding and sampling: ``choose(logits)`` picks the next ids."""
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        memory, state = self.start(images)
        batch, dev = images.shape[0], images.device
        token = torch.full((batch,), BOS, dtype=torch.long, device=dev)
        finished = torch.zeros(batch, dtype=torch.bool, device=dev)
        tokens, log_probs, attention = [token], [], []
        for _ in range(max_len):
            logits, state, alpha = self.step(token, state, memory)
            logits = logits.float()
            token = torch.where(finished, PAD, choose(logits))
            lp = logits.log_softmax(dim=-1).gather(1, token[:, None]).squeeze(1)
            log_probs.append(torch.where(finished, 0.0, lp))
            attention.append(alpha.float().masked_fill(finished[:, None], 0.0))
            tokens.append(token)
            finished = finished | (token == EOS)
            if bool(finished.all()):
                break
        token_lp = torch.stack(log_probs, dim=1)
        return Decoded(torch.stack(tokens, dim=1), token_lp.sum(dim=1), token_lp,
                       torch.stack(attention, dim=1))

    @torch.no_grad()
    def greedy(self, images: Tensor, max_len: int = MAX_LEN) -> Decoded:
        """``x_t = argmax_w p(w | x_<t, I)`` until ``<eos>`` (or ``max_len`` tokens)."""
        return self._decode(images, max_len, lambda logits: logits.argmax(dim=-1))

    @torch.no_grad()
    def sample(self, images: Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, max_len: int = MAX_LEN,
               generator: torch.Generator | None = None) -> Decoded:
        """``x_t ~ softmax(filter(logits / τ))`` until ``<eos>``. ``temperature = 0`` is greedy;
        ``top_k`` / ``top_p`` restrict the choice (``filter_logits``). Pass a seeded
        ``generator`` (on the images' device) to reproduce a draw. The reported log-probs are the
        model's own (τ = 1, unfiltered)."""
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        if generator is not None and generator.device.type != images.device.type:
            raise ValueError(f"the generator is on {generator.device} but the images on "
                             f"{images.device}; create it with torch.Generator(device=images.device)")

        def choose(logits: Tensor) -> Tensor:
            if temperature == 0:
                return logits.argmax(dim=-1)
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)

        filter_logits(torch.zeros(self.vocab_size), top_k, top_p)  # validate before decoding
        return self._decode(images, max_len, choose)

    @torch.no_grad()
    def beam_search(self, images: Tensor, beam: int = 5, max_len: int = MAX_LEN,
                    length_penalty: float = 0.0, keep_greedy: bool = True) -> Decoded:
        """Keep the ``beam`` best hypotheses at each step, ranked by ``log p(x) / |x|^α``
        (``α = length_penalty``; ``|x|`` counts the generated tokens, ``<eos>`` included); a
        finished hypothesis keeps its score and competes with the open ones. Returns the best
        hypothesis per image; ``log_prob`` is its raw ``log p(x)``. ``beam=1`` is greedy.

        Plain beam search can return a caption *less* likely than greedy's: greedy's prefix
        may be pushed out of the beam by prefixes that are better so far and worse in the end
        (``keep_greedy=False`` shows it; on an untrained model with ``beam=2`` it happens to a
        few images in a hundred). With ``keep_greedy=True`` the greedy caption is one more
        candidate for the final choice, so the result never ranks below greedy's.
        """
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam must be a positive int, got {beam!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        if not isinstance(length_penalty, (int, float)) or length_penalty < 0:
            raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
        memory, state = self.start(images)
        B, K, V, dev = images.shape[0], beam, self.vocab_size, images.device
        memory = Memory(*(m.repeat_interleave(K, dim=0) for m in memory))    # (B·K, ...)
        state = (tuple(s.repeat_interleave(K, dim=0) for s in state) if self.cell_type == "lstm"
                 else state.repeat_interleave(K, dim=0))
        scores = torch.full((B, K), float("-inf"), device=dev)
        scores[:, 0] = 0.0                        # at first only one hypothesis: <bos>
        lengths = torch.zeros(B, K, dtype=torch.long, device=dev)
        finished = torch.zeros(B, K, dtype=torch.bool, device=dev)
        tokens = torch.full((B, K, 1), BOS, dtype=torch.long, device=dev)
        token_lp = torch.zeros(B, K, 0, device=dev)
        attention = torch.zeros(B, K, 0, self.num_regions, device=dev)
        after_eos = torch.full((V,), float("-inf"), device=dev)
        after_eos[PAD] = 0.0                      # a finished hypothesis extends only by <pad>, free
        rows = torch.arange(B, device=dev)[:, None]
        for _ in range(max_len):
            logits, state, alpha = self.step(tokens[..., -1].reshape(B * K), state, memory)
            logp = logits.float().log_softmax(dim=-1).view(B, K, V)
            logp = torch.where(finished[..., None], after_eos, logp)
            candidates = scores[..., None] + logp                              # (B, K, V)
            new_len = (lengths + (~finished).long())[..., None].expand(B, K, V)
            rank = self._rank(candidates, new_len, length_penalty)
            idx = rank.reshape(B, K * V).topk(K, dim=1).indices                # (B, K)
            src, word = idx // V, idx % V                                      # parent beam, token
            scores = candidates.reshape(B, K * V).gather(1, idx)
            lengths = new_len.reshape(B, K * V).gather(1, idx)
            step_lp = logp.reshape(B, K * V).gather(1, idx)
            was_done = finished[rows, src]
            step_alpha = alpha.float().view(B, K, -1)[rows, src].masked_fill(was_done[..., None], 0.0)
            tokens = torch.cat([tokens[rows, src], word[..., None]], dim=-1)
            token_lp = torch.cat([token_lp[rows, src], step_lp[..., None]], dim=-1)
            attention = torch.cat([attention[rows, src], step_alpha[:, :, None]], dim=2)
            finished = was_done | (word == EOS)
            flat = (rows * K + src).reshape(-1)
            state = tuple(s[flat] for s in state) if self.cell_type == "lstm" else state[flat]
            # stop once no open hypothesis can still beat the best finished one: later tokens
            # only lower log p, so an open score s can reach at most s / max_len^α
            done_key = torch.where(finished, self._rank(scores, lengths, length_penalty), -math.inf)
            open_bound = torch.where(finished, -math.inf, self._rank(scores, max_len, length_penalty))
            if bool((done_key.max(1).values >= open_bound.max(1).values).all()):
                final = done_key  # an open hypothesis is no caption yet
                break
        else:
            final = self._rank(scores, lengths, length_penalty)  # open ones are cut at max_len
        best = final.argmax(dim=1)
        pick = torch.arange(B, device=dev)
        out = Decoded(tokens[pick, best], scores[pick, best], token_lp[pick, best], attention[pick, best])
        if not keep_greedy or K == 1:
            return out
        greedy = self.greedy(images, max_len)
        greedy_key = self._rank(greedy.log_prob, (greedy.tokens[:, 1:] != PAD).sum(dim=1), length_penalty)
        return _choose(greedy_key > final[pick, best], greedy, out)

    @staticmethod
    def _rank(scores: Tensor, lengths: Tensor | int, alpha: float) -> Tensor:
        """The beam-search ranking ``log p(x) / |x|^α`` (``α = 0``: the raw ``log p(x)``)."""
        if not alpha:
            return scores
        if isinstance(lengths, Tensor):
            lengths = lengths.clamp(min=1)
        return scores / lengths**alpha

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


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def caption_report(model: Captioner, split: ModalDataset, method: str = "greedy", *,
                   vocab: Vocab | None = None, batch_size: int = 250, return_captions: bool = False,
                   **kwargs) -> dict:
    """Caption every image of ``split`` and compare with its reference ``meta["caption"]``:

    * ``exact_match``: ``(1/N) Σ_i [ĉ_i = c_i]`` (Shapes captions are canonical: one is right);
    * ``bleu1`` .. ``bleu4``: corpus BLEU (``mmcourse.metrics.bleu``);
    * ``cider_d``: CIDEr-D (``mmcourse.metrics.cider_d``; at most 10);
    * ``mean_log_prob``: the mean ``log p(ĉ_i | I_i)`` of the decoded captions;
    * ``captions`` (with ``return_captions=True``): the decoded strings.
    """
    if not isinstance(split, ModalDataset) or "image" not in split or "caption" not in split.meta:
        raise ValueError("caption_report needs a ModalDataset with an 'image' tensor and a 'caption' "
                         f"meta list (a Shapes split), got {split!r}")
    vocab = model._vocab(vocab)
    dev = next(model.parameters()).device
    hypotheses, log_probs = [], []
    images = split.tensors["image"]
    for start in range(0, len(split), batch_size):
        out = model.decode(images[start:start + batch_size].to(dev), method, **kwargs)
        hypotheses += [vocab.decode(row) for row in out.tokens.tolist()]
        log_probs.append(out.log_prob.cpu())
    references = list(split.meta["caption"])
    report = {
        "n": len(references),
        "method": method,
        "exact_match": sum(h == r for h, r in zip(hypotheses, references)) / len(references),
        **bleu([[r] for r in references], hypotheses),
        "cider_d": float(cider_d([[r] for r in references], hypotheses)),
        "mean_log_prob": torch.cat(log_probs).mean().item(),
    }
    if return_captions:
        report["captions"] = hypotheses
    return report
