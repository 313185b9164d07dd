"""A bigram corpus: token sequences sampled from a hidden bigram source -- a toy for decoding.

The source is a fixed table of next-token probabilities over a vocabulary of ``V`` tokens, token
0 being ``bos`` and token ``V - 1`` being ``eos``:

    p(y_t = b | y_{t-1} = a) = softmax(2 S_a)_b,    S ~ N(0, 1)^{V×V} (a fixed seed),

with column 0 masked out, so the source never emits ``bos``. A sequence starts after ``bos`` and
runs until it emits ``eos`` (included) or reaches ``max_len`` tokens. Estimating a bigram model
from such a corpus, its held-out perplexity and greedy against beam decoding are exercise 08.
"""

from __future__ import annotations

import torch


def source_probabilities(vocab: int = 8) -> torch.Tensor:
    """The hidden source ``(vocab, vocab)``: row ``a`` is ``p(· | a)``; column 0 (``bos``) is 0.
    It depends on ``vocab`` only."""
    source = 2.0 * torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(2024))
    source[:, 0] = -1e9
    return torch.softmax(source, dim=-1)


def make_corpus(n: int, seed: int, vocab: int = 8, max_len: int = 12) -> list[list[int]]:
    """``n`` token sequences from a random bigram source (token 0 is ``bos``, ``vocab - 1`` is
    ``eos``; the source never emits ``bos``), each ``y_1 ..`` up to ``eos`` or ``max_len``
    tokens. The source's table depends only on ``vocab``; ``seed`` draws the sequences."""
    for name, value, least in (("n", n, 1), ("vocab", vocab, 3), ("max_len", max_len, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"make_corpus: {name} must be an int >= {least}, got {value!r}")
    probs = source_probabilities(vocab)
    g = torch.Generator().manual_seed(int(seed))
    out: list[list[int]] = [[] for _ in range(n)]
    prev, done = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.bool)
    for _ in range(max_len):
        nxt = torch.multinomial(probs[prev], 1, generator=g)[:, 0]
        for i in (~done).nonzero().flatten().tolist():
            out[i].append(int(nxt[i]))
        done |= nxt == vocab - 1
        prev = nxt
        if done.all():
            break
    return out
