# %% [markdown]
# # Exercise 08 — Greedy decoding and the sequence log-probability
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
# references written on PyTorch. Only `import`s, `def`s and constants are taken from your
# notebook.

# %%
import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("08_autoregressive_generation")

# %% [markdown]
# ## q1 (3 points): `greedy_decode(table, bos, eos, max_len)`
#
# `table: (V, V)`; start from `bos`; at each step choose the most probable next token; stop
# after producing `eos` or after `max_len` tokens. Return the list of generated token ids (ints,
# `bos` excluded, `eos` included when produced).

# %%
def greedy_decode(table, bos, eos, max_len):
    """y_t = argmax table[y_{t-1}] until eos or max_len tokens."""
    ### BEGIN SOLUTION
    out, prev = [], bos
    for _ in range(max_len):
        prev = int(table[prev].argmax())
        out.append(prev)
        if prev == eos:
            break
    return out
    ### END SOLUTION


# %%
check("q1", greedy_decode)

# %% [markdown]
# ## q2 (2 points): `sequence_log_prob(table, tokens, bos)`
#
# `tokens: (T,)` long → $\log p(y_1 \dots y_T) = \sum_t \log \mathrm{softmax}(\texttt{table}[y_{t-1}])_{y_t}$,
# a float (use `F.log_softmax`: it is stable for large logits).

# %%
def sequence_log_prob(table, tokens, bos):
    """Σ_t log softmax(table[y_{t-1}])[y_t] with y_0 = bos."""
    ### BEGIN SOLUTION
    prev = torch.cat([torch.tensor([bos]), tokens[:-1]])
    logp = F.log_softmax(table[prev].double(), dim=-1)
    return float(logp[torch.arange(len(tokens)), tokens].sum())
    ### END SOLUTION


# %%
check("q2", sequence_log_prob)

# %% summary
check.summary()
