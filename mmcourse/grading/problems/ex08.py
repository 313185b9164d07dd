"""Exercise 08 (generation): the sequence log-probability of a bigram model, beam search (greedy
is beam 1), and an experiment: estimate a bigram model from a corpus, its held-out perplexity,
and greedy against beam decoding."""


from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded


def _logprob_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 4), torch.tensor([2, 1, 3]), 0),
                (randn(g, 5, 5) * 300, torch.tensor([4, 0, 2, 2]), 1)]    # log(softmax) = log 0 here
    cases = []
    for v, n in [(3, 1), (6, 5), (10, 12), (8, 4)]:
        cases.append((randn(g, v, v) * 2, torch.randint(0, v, (n,), generator=g), randint(g, 0, v - 1)))
    cases.append((randn(g, 5, 5) * 300, torch.randint(0, 5, (6,), generator=g), 2))  # stable?
    return cases


def beam_search(table, bos: int, eos: int, beam: int, max_len: int) -> tuple[list[int], float]:
    """Beam search over a bigram table; the reference of q2 (the rules the master states).

    A hypothesis is ``(tokens, log p)``. Each step every unfinished hypothesis is extended by every
    token (``log p += log_softmax(table[last])[token]``, ``last = bos`` for the empty one);
    finished ones (ending in ``eos``) are carried over unchanged; the ``beam`` best by ``log p``
    are kept (ties: the lexicographically smaller token list first). Stop when all kept
    hypotheses are finished or have ``max_len`` tokens; return the best one."""
    logp = F.log_softmax(table.double(), dim=-1)
    hyps: list[tuple[list[int], float]] = [([], 0.0)]
    for _ in range(max_len):
        if all(h and h[-1] == eos for h, _ in hyps):
            break
        grown = []
        for tokens, score in hyps:
            if tokens and tokens[-1] == eos:
                grown.append((tokens, score))
                continue
            row = logp[tokens[-1] if tokens else bos]
            grown += [(tokens + [v], score + float(row[v])) for v in range(len(row))]
        hyps = sorted(grown, key=lambda h: (-h[1], h[0]))[:beam]
    tokens, score = hyps[0]
    return tokens, score


def _beam_cases(g: torch.Generator, public: bool) -> Cases:
    def table(v, eos_boost=0.0, scale=1.5):
        t = randn(g, v, v) * scale
        t[:, v - 1] += eos_boost
        return t
    if public:
        return [(table(5, 0.5), 0, 4, 1, 6),          # beam 1 = greedy
                (table(5, 0.5), 0, 4, 3, 6),
                (table(4, -1.0), 1, 3, 2, 4)]
    return [(table(6, 0.3), 0, 5, 1, 8), (table(6, 0.3), 2, 5, 4, 7), (table(8, 1.0), 0, 7, 3, 6),
            (table(4, -3.0), 0, 3, 2, 5), (table(7, 0.0, 3.0), 1, 6, 5, 6), (table(5, 2.0), 0, 4, 10, 4)]


def make_corpus(n: int, seed: int, vocab: int = 8, max_len: int = 12):
    """``n`` token sequences from a random bigram source (token 0 is ``bos``, ``vocab - 1`` is
    ``eos``; the source never emits ``bos``), each ``y_1 ..`` up to ``eos`` or ``max_len``
    tokens. The source's table depends only on ``vocab``; ``seed`` draws the sequences."""
    source = 2.0 * torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(2024))
    source[:, 0] = -1e9
    probs = torch.softmax(source, dim=-1)
    g = torch.Generator().manual_seed(seed)
    out = [[] for _ in range(n)]
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


def estimate_bigram(corpus: list[list[int]], vocab: int, alpha: float = 1.0) -> torch.Tensor:
    """Log-probabilities ``log p(b | a) = log (count(a, b) + α) / (count(a) + α V)`` as a table."""
    counts = torch.zeros(vocab, vocab, dtype=torch.float64)
    for seq in corpus:
        prev = 0
        for tok in seq:
            counts[prev, tok] += 1
            prev = tok
    return torch.log((counts + alpha) / (counts.sum(1, keepdim=True) + alpha * vocab))


@single_threaded
def bigram_experiment(seed: int) -> dict:
    """The reference of q3 (the protocol the master states)."""
    table = estimate_bigram(make_corpus(300, seed), 8)
    held_out = make_corpus(200, seed + 1)
    total = sum(ref.sequence_log_prob(table, torch.tensor(s), 0) for s in held_out)
    tokens = sum(len(s) for s in held_out)
    greedy, greedy_logp = beam_search(table, 0, 7, 1, 12)
    best, beam_logp = beam_search(table, 0, 7, 4, 12)
    return {"perplexity": math.exp(-total / tokens), "greedy_logp": greedy_logp, "beam_logp": beam_logp,
            "greedy_len": len(greedy), "beam_len": len(best)}


def _bigram_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


EX08 = Exercise("08_autoregressive_generation", "Sequence log-probability, beam search, and a bigram model", (
    Part("q1", "sequence_log_prob", 4, ref.sequence_log_prob, _logprob_cases,
         forbidden=("log_prob", "log_prob_of_caption", "sequence_log_prob"),
         hint="sum over t of log softmax(table[y_{t-1}])[y_t], with y_0 = bos; log(softmax(...)) "
              "underflows to log 0 = -inf for large logits: use log_softmax (or s_y - logsumexp(s))",
         atol=1e-4),
    Part("q2", "beam_search", 7, beam_search, _beam_cases,
         forbidden=("beam_search", "greedy", "generate", "decoding"), atol=1e-4,
         hint="extend every unfinished hypothesis by every token, carry finished ones (ending in eos) "
              "over unchanged, keep the `beam` best by log p (ties: smaller token list first); stop "
              "when all kept are finished or max_len long; return (tokens, log p) of the best"),
    Part("q3", "bigram_experiment", 8, bigram_experiment, _bigram_cases, atol=1e-3, rtol=1e-3,
         case_timeout=30.0,
         hint="estimate with add-one smoothing from make_corpus(300, seed); perplexity "
              "exp(-Σ log p / Σ tokens) on make_corpus(200, seed + 1); decode from bos = 0 to eos = 7"),
))
