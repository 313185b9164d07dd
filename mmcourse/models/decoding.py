"""Decoding: turning ``p(x_t | x_<t, I)`` into a caption, one token at a time, until ``<eos>``.

Every function here works for any captioner that offers the two-method interface

    memory, state = model.start(images)                  # encode the images once
    logits, state, α_t = model.step(x_{t-1}, state, memory)   # score x_t; α_t: attention (B, N)

(``Captioner``'s GRU/LSTM state, ``TransformerCaptioner``'s growing prefix), plus ``vocab_size`` and
``num_regions``. ``state`` and ``memory`` may be a tensor or a (named) tuple of tensors.

* ``greedy``: ``x_t = argmax p(· | x_<t, I)``;
* ``beam_search``: keeps the ``K`` best prefixes, ranked by ``log p(x) / |x|^α`` (``α = 0``: the
  raw log-probability; ``α > 0`` favours longer captions);
* ``sample``: ``x_t ~ softmax(logits / τ)`` (temperature ``τ``), optionally restricted to the
  ``k`` most likely tokens (top-k) or to the smallest set holding probability ``p`` (top-p,
  nucleus), see ``filter_logits``.

Each returns a ``Decoded``: the token ids (``<bos>`` ... ``<eos>``, pad after), their
log-probability under the model, per token and summed, and the attention maps ``α_t``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data.text import Vocab

PAD, BOS, EOS = Vocab.pad_id, Vocab.bos_id, Vocab.eos_id
#: Default limit on generated tokens (``<eos>`` included); Shapes captions need at most 17.
MAX_LEN = 20


class CaptionDecoder(Protocol):
    """What a decoding function needs of a model (see the module docstring)."""

    vocab_size: int
    num_regions: int

    def start(self, images: Tensor) -> tuple[object, object]: ...

    def step(self, tokens: Tensor, state, memory) -> tuple[Tensor, object, Tensor]: ...


def _map(fn, state):
    """Apply ``fn`` to every tensor of a state: a tensor, or a (named) tuple of tensors."""
    if isinstance(state, Tensor):
        return fn(state)
    values = [_map(fn, s) for s in state]
    return type(state)(*values) if hasattr(state, "_fields") else type(state)(values)


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


def _rank(scores: Tensor, lengths: Tensor | int, alpha: float) -> Tensor:
    """The beam-search ranking ``log p(x) / |x|^α`` (``α = 0``: the raw ``log p(x)``)."""
    if not alpha:
        return scores
    if isinstance(lengths, Tensor):
        lengths = lengths.clamp(min=1)
    return scores / lengths**alpha


def _decode(model, images: Tensor, max_len: int, choose) -> Decoded:
    """Shared loop of greedy decoding and sampling: ``choose(logits)`` picks the next ids."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    memory, state = model.start(images)
    batch, dev = images.shape[0], images.device
    token = torch.full((batch,), BOS, dtype=torch.long, device=dev)
    finished = torch.zeros(batch, dtype=torch.bool, device=dev)
    tokens, log_probs, attention = [token], [], []
    for _ in range(max_len):
        logits, state, alpha = model.step(token, state, memory)
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
def greedy(model: CaptionDecoder, images: Tensor, max_len: int = MAX_LEN) -> Decoded:
    """``x_t = argmax_w p(w | x_<t, I)`` until ``<eos>`` (or ``max_len`` tokens)."""
    return _decode(model, images, max_len, lambda logits: logits.argmax(dim=-1))


@torch.no_grad()
def sample(model: CaptionDecoder, images: Tensor, temperature: float = 1.0, top_k: int | None = None,
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

    filter_logits(torch.zeros(model.vocab_size), top_k, top_p)  # validate before decoding
    return _decode(model, images, max_len, choose)


@torch.no_grad()
def beam_search(model: CaptionDecoder, images: Tensor, beam: int = 5, max_len: int = MAX_LEN,
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
    memory, state = model.start(images)
    B, K, V, dev = images.shape[0], beam, model.vocab_size, images.device
    memory = _map(lambda m: m.repeat_interleave(K, dim=0), memory)      # (B·K, ...)
    state = _map(lambda s: s.repeat_interleave(K, dim=0), state)
    scores = torch.full((B, K), float("-inf"), device=dev)
    scores[:, 0] = 0.0                        # at first only one hypothesis: <bos>
    lengths = torch.zeros(B, K, dtype=torch.long, device=dev)
    finished = torch.zeros(B, K, dtype=torch.bool, device=dev)
    tokens = torch.full((B, K, 1), BOS, dtype=torch.long, device=dev)
    token_lp = torch.zeros(B, K, 0, device=dev)
    attention = torch.zeros(B, K, 0, model.num_regions, device=dev)
    after_eos = torch.full((V,), float("-inf"), device=dev)
    after_eos[PAD] = 0.0                      # a finished hypothesis extends only by <pad>, free
    rows = torch.arange(B, device=dev)[:, None]
    for _ in range(max_len):
        logits, state, alpha = model.step(tokens[..., -1].reshape(B * K), state, memory)
        logp = logits.float().log_softmax(dim=-1).view(B, K, V)
        logp = torch.where(finished[..., None], after_eos, logp)
        candidates = scores[..., None] + logp                              # (B, K, V)
        new_len = (lengths + (~finished).long())[..., None].expand(B, K, V)
        rank = _rank(candidates, new_len, length_penalty)
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
        state = _map(lambda s, rows=flat: s[rows], state)
        # stop once no open hypothesis can still beat the best finished one: later tokens
        # only lower log p, so an open score s can reach at most s / max_len^α
        done_key = torch.where(finished, _rank(scores, lengths, length_penalty), -math.inf)
        open_bound = torch.where(finished, -math.inf, _rank(scores, max_len, length_penalty))
        if bool((done_key.max(1).values >= open_bound.max(1).values).all()):
            final = done_key  # an open hypothesis is no caption yet
            break
    else:
        final = _rank(scores, lengths, length_penalty)  # open ones are cut at max_len
    best = final.argmax(dim=1)
    pick = torch.arange(B, device=dev)
    out = Decoded(tokens[pick, best], scores[pick, best], token_lp[pick, best], attention[pick, best])
    if not keep_greedy or K == 1:
        return out
    best_greedy = greedy(model, images, max_len)
    greedy_key = _rank(best_greedy.log_prob, (best_greedy.tokens[:, 1:] != PAD).sum(dim=1),
                       length_penalty)
    return _choose(greedy_key > final[pick, best], best_greedy, out)
