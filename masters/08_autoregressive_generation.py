# %% [markdown]
# # Exercise 08 — Sequence log-probability, beam search, and a bigram model
#
# An autoregressive model factorises a sequence's probability into next-token predictions,
# $p(y_1 \dots y_T) = \prod_t p(y_t \mid y_{<t})$. To keep the exercise small the "model" here is
# a bigram table: `table[a]` holds the logits of the token that follows token `a`, so
# $p(y_t \mid y_{<t}) = \mathrm{softmax}(\texttt{table}[y_{t-1}])_{y_t}$, starting from
# $y_0 = $ `bos`. (The captioner of chapter 08 works the same way, with a GRU state instead of
# the previous token.)
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases (tables that reach `eos`, tables that never do, large logits) with
# references written on PyTorch (q1, q2) and q3 with the instructor's run of the protocol
# within the stated margin. Only `import`s, `def`s and constants are taken from your notebook;
# the course's decoding functions score 0 in q2. A free-response question at the end is graded
# by your instructor.

# %%
import math

import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("08_autoregressive_generation")

# %% [markdown]
# ## q1 (4 points): `sequence_log_prob(table, tokens, bos)`
#
# `tokens: (T,)` long → $\log p(y_1 \dots y_T) = \sum_t \log \mathrm{softmax}(\texttt{table}[y_{t-1}])_{y_t}$,
# a float. Do not take `torch.log(torch.softmax(...))`: with logits a few hundred apart (the
# public check's second case) an unlikely token's probability underflows to 0 and its log is
# `-inf`. `F.log_softmax` (or $s_y - \operatorname{logsumexp}(s)$) stays finite; sum in float64.

# %%
def sequence_log_prob(table, tokens, bos):
    """Σ_t log softmax(table[y_{t-1}])[y_t] with y_0 = bos."""
    ### BEGIN SOLUTION
    prev = torch.cat([torch.tensor([bos]), tokens[:-1]])
    logp = F.log_softmax(table[prev].double(), dim=-1)
    return float(logp[torch.arange(len(tokens)), tokens].sum())
    ### END SOLUTION


# %%
check("q1", sequence_log_prob)

# %% [markdown]
# ## q2 (7 points): `beam_search(table, bos, eos, beam, max_len)`
#
# Greedy decoding takes the single most likely next token; beam search keeps the `beam` most
# likely *prefixes*. The rules (the grader's, exactly):
#
# - a hypothesis is a token list (without `bos`) and its $\log p$; start from the empty one;
# - at each step, extend every **unfinished** hypothesis by **every** token `v`
#   (`log p += log_softmax(table[last])[v]`, `last = bos` for the empty hypothesis); a
#   **finished** hypothesis (ending in `eos`) is carried over unchanged, never extended;
# - keep the `beam` best by $\log p$ (on an exact tie, the lexicographically smaller token list);
# - stop when all kept hypotheses are finished or `max_len` steps have been made;
# - return `(tokens, log_p)` of the best kept hypothesis: a list of ints and a float.
#
# `beam=1` is greedy decoding (the public check's first case).

# %%
def beam_search(table, bos, eos, beam, max_len):
    """Beam search over a bigram table -> (best tokens, their log-probability)."""
    ### BEGIN SOLUTION
    logp = F.log_softmax(table.double(), dim=-1)
    hyps = [([], 0.0)]
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
    return hyps[0]
    ### END SOLUTION


# %%
check("q2", beam_search)

# %% [markdown]
# ## q3 (8 points): an experiment — `bigram_experiment(seed)`
#
# Fit a language model and decode with it. The helper below samples token sequences from a
# hidden bigram source (vocabulary of 8: token 0 is `bos`, token 7 is `eos`). Follow this
# protocol exactly:
#
# 1. estimate a bigram model from `make_corpus(300, seed)` with add-one smoothing: for every
#    sequence, count the transitions `bos → y_1 → y_2 → …` into an `(8, 8)` float64 table
#    `counts[a, b]`, then `table = log((counts + 1) / (counts.sum(1, keepdim=True) + 8))`
#    (its rows are log-probabilities, so `log_softmax` leaves them unchanged);
# 2. its per-token perplexity on `make_corpus(200, seed + 1)`:
#    `exp(-Σ_sequences sequence_log_prob(table, tokens, 0) / Σ_sequences len(tokens))`;
# 3. decode from `bos = 0` to `eos = 7` with your `beam_search(table, 0, 7, beam, 12)`, for
#    `beam = 1` (greedy) and `beam = 4`;
# 4. return `{"perplexity": ..., "greedy_logp": ..., "beam_logp": ..., "greedy_len": ...,
#    "beam_len": ...}` (floats; the two lengths are the numbers of tokens, ints).
#
# The grader repeats the protocol on hidden seeds (to within 0.1 %).

# %%
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


# %%
def bigram_experiment(seed):
    """Estimate a bigram LM, its held-out perplexity, and greedy vs beam decoding."""
    ### BEGIN SOLUTION
    counts = torch.zeros(8, 8, dtype=torch.float64)
    for seq in make_corpus(300, seed):
        prev = 0
        for tok in seq:
            counts[prev, tok] += 1
            prev = tok
    table = torch.log((counts + 1) / (counts.sum(1, keepdim=True) + 8))
    held_out = make_corpus(200, seed + 1)
    total = sum(sequence_log_prob(table, torch.tensor(s), 0) for s in held_out)
    greedy, greedy_logp = beam_search(table, 0, 7, 1, 12)
    best, beam_logp = beam_search(table, 0, 7, 4, 12)
    return {"perplexity": math.exp(-total / sum(len(s) for s in held_out)), "greedy_logp": greedy_logp,
            "beam_logp": beam_logp, "greedy_len": len(greedy), "beam_len": len(best)}
    ### END SOLUTION


# %%
check("q3", bigram_experiment)
try:
    print(bigram_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# In your q3 run greedy decoding produces a 12-token sequence with $\log p \approx -9$, while
# beam search with 4 beams finds a 3-token sequence with $\log p \approx -2$. (a) How can the
# locally best choice at every step lead to a much less likely sequence? (b) Beam search
# prefers *short* outputs here; why does ranking by raw $\log p$ favour short sequences, and
# what does chapter 08's length normalisation $\log p / |y|^{\alpha}$ change? (c) Is the
# most likely sequence the best caption? Give one reason why not.

# %% [markdown] answer fr1
# (a) Greedy commits to the most likely next token without looking ahead: a token that is
# likely now can lead into states from which `eos` is unlikely (here a loop among frequent
# tokens), so the sequence runs to `max_len` and pays a log-probability at every step. Beam
# search keeps alternatives whose first step is slightly less likely but which reach `eos`
# quickly. (b) Every token adds a negative log-probability, so under raw $\log p$ each extra
# token costs; short hypotheses that end early win. Dividing by $|y|^{\alpha}$ ($\alpha > 0$)
# compares the average cost per token, so longer, informative outputs are no longer penalised
# merely for being long ($\alpha = 1$: per-token average). (c) No: the mode of a model trained
# on many captions is often generic and short ("a shape") — safe but uninformative; what
# users want (specific, correct content) is measured by BLEU/CIDEr or humans, not by
# likelihood, and beam search with large beams is known to degrade such scores.

# %% [markdown] rubric fr1
# - 1 point: (a) greedy is myopic: a locally likely token leads to an unlikely continuation / no eos.
# - 1 point: (b) every token adds a negative term, so raw log p favours short sequences.
# - 1 point: (b) length normalisation compares per-token cost (effect of α).
# - 1 point: (c) the mode can be generic/short/uninformative; quality ≠ likelihood.

# %% summary
check.summary()
