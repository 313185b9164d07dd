# %% [markdown]
# # Exercise 04 — Masked attention, multi-head attention, and what attention pooling buys
#
# For queries `q: (..., L_q, d_k)`, keys `k: (..., L_k, d_k)` and values `v: (..., L_k, d_v)`
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V .$$
#
# A boolean `mask`, broadcastable to the scores `(..., L_q, L_k)`, says which keys each query
# **may attend** (`True`), as in `F.scaled_dot_product_attention`. A forbidden key gets weight
# exactly 0; a query that may attend no key at all gets all-zero weights and a zero output (not
# NaN). Leading dimensions (batch, heads) broadcast. Chapter 04 then ran $h$ such attentions in
# parallel on learned projections (multi-head attention) and used attention to *pool* a
# sequence.
#
# **How you are graded.** `check(...)` runs a few *public* cases; the grader calls your
# functions on *hidden* cases (several batch/head shapes, padding and causal masks, queries
# with no allowed key, large scores) and compares them with the course's tested
# `mmcourse.models.scaled_dot_product_attention` and `MultiHeadAttention` (q1, q2), or with the
# instructor's run of the protocol (q3, within the stated margin). Only `import`s, `def`s and
# constants are taken from your notebook; calling a library attention (`F.scaled_dot_product_attention`,
# `nn.MultiheadAttention`, the course's `MultiHeadAttention`) in q1 or q2 scores 0 for that part.
# A free-response question at the end is graded by your instructor.

# %%
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("04_attention")

# %% [markdown]
# ## q1 (6 points): `attention(q, k, v, mask=None)`
#
# Return the tuple `(output, weights)`: `(..., L_q, d_v)` and `(..., L_q, L_k)`. Two traps the
# public check contains:
#
# - **a query with no allowed key.** Filling forbidden scores with `-inf` makes that row
#   `exp(-inf) / Σ exp(-inf) = 0 / 0 = NaN`. Fill with a very negative *finite* number
#   (`torch.finfo(scores.dtype).min`) and set the forbidden weights to 0 after the softmax;
# - **large scores** (≈ 1000 here): if you write the softmax yourself, `exp(1000)` overflows
#   to `inf` and `inf / inf = NaN`. Subtract each row's maximum first (`torch.softmax` does).

# %%
def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v with a boolean mask (True = may attend)."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = torch.exp(scores)
    weights = e / e.sum(dim=-1, keepdim=True)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights
    ### END SOLUTION


# %%
check("q1", attention)

# %% [markdown]
# ## q2 (6 points): `multi_head_attention(x, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, heads, mask=None)`
#
# Self-attention with `heads` heads on `x: (B, L, D)` (`D` divisible by `heads`, `d = D / heads`):
#
# $$Q = x W_q^\top + b_q,\; K = x W_k^\top + b_k,\; V = x W_v^\top + b_v,\quad
#   \mathrm{head}_i = \mathrm{Attention}(Q_i, K_i, V_i),\quad
#   \mathrm{out} = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_o^\top + b_o,$$
#
# where $Q_i$ is columns $i d \dots (i + 1) d - 1$ of $Q$. All weights are `(D, D)`, biases
# `(D,)`. `mask` is `None` or a key padding mask `(B, L)` (`True` = a real step). Return `out`,
# `(B, L, D)`. Split the heads with `.view(B, L, heads, d).transpose(1, 2)` — a plain
# `.view(B, heads, L, d)` mixes positions into the heads (the public check has `L ≠ d`). Your
# q1 `attention` does the rest (a `(B, 1, 1, L)` mask broadcasts over heads and queries).

# %%
def multi_head_attention(x, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, heads, mask=None):
    """Multi-head self-attention: (B, L, D) -> (B, L, D)."""
    ### BEGIN SOLUTION
    B, L, D = x.shape
    d = D // heads

    def split(t):
        return t.view(B, L, heads, d).transpose(1, 2)          # (B, heads, L, d)

    q, k, v = split(x @ W_q.T + b_q), split(x @ W_k.T + b_k), split(x @ W_v.T + b_v)
    out, _ = attention(q, k, v, None if mask is None else mask[:, None, None, :])
    return out.transpose(1, 2).reshape(B, L, D) @ W_o.T + b_o
    ### END SOLUTION


# %%
check("q2", multi_head_attention)

# %% [markdown]
# ## q3 (5 points): an experiment — `pooling_experiment(seed)`
#
# A classifier over a sequence must pool its steps into one vector. The helper below makes
# sequences of 10 noisy steps in which one step is *flagged*; the label depends on that step
# only. Compare mean pooling with attention pooling by a learned query, following this
# protocol exactly:
#
# 1. training data `make_flag_task(256, seed)`, test data `make_flag_task(512, seed + 1)`;
# 2. `torch.manual_seed(seed)`, then `mean_head = nn.Linear(8, 2)`; logits `mean_head(x.mean(1))`;
# 3. `torch.manual_seed(seed)` again, then in this order `query = nn.Parameter(torch.randn(1, 1, 8))`,
#    `mha = MultiHeadAttention(8, 1)` (from `mmcourse.models`) and `head = nn.Linear(8, 2)`;
#    logits `head(mha(query.expand(B, 1, 8), context=x)[0][:, 0])` (the query attends to the steps);
# 4. train each model (mean first) with `torch.optim.Adam(its parameters, lr=0.02)` for 80
#    full-batch steps of `F.cross_entropy`;
# 5. return `{"mean": test accuracy, "attention": test accuracy}` as Python floats.
#
# The grader repeats this on hidden seeds and accepts each accuracy within **±0.06**.

# %%
def make_flag_task(n: int, seed: int, length: int = 10, dim: int = 8):
    """``n`` sequences ``(n, length, dim)`` of noise; in each, one random step is *flagged*
    (feature 0 set to 3) and the label is whether that step's feature 1 is positive."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, dim, generator=g)
    x[:, :, 0] = 0.0
    where = torch.randint(0, length, (n,), generator=g)
    x[torch.arange(n), where, 0] = 3.0
    labels = (x[torch.arange(n), where, 1] > 0).long()
    return x, labels


# %%
from mmcourse.models import MultiHeadAttention


def pooling_experiment(seed):
    """Mean pooling vs attention pooling on the flag task: test accuracies."""
    ### BEGIN SOLUTION
    x, y = make_flag_task(256, seed)
    x_test, y_test = make_flag_task(512, seed + 1)
    torch.manual_seed(seed)
    mean_head = nn.Linear(8, 2)
    torch.manual_seed(seed)
    query, mha, head = nn.Parameter(torch.randn(1, 1, 8)), MultiHeadAttention(8, 1), nn.Linear(8, 2)

    def mean_pool(z):
        return mean_head(z.mean(1))

    def attend(z):
        return head(mha(query.expand(len(z), 1, 8), context=z)[0][:, 0])

    out = {}
    for name, forward, params in (("mean", mean_pool, list(mean_head.parameters())),
                                  ("attention", attend, [query, *mha.parameters(), *head.parameters()])):
        opt = torch.optim.Adam(params, lr=0.02)
        for _ in range(80):
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out[name] = float((forward(x_test).argmax(1) == y_test).float().mean())
    return out
    ### END SOLUTION


# %%
check("q3", pooling_experiment)
try:
    print(pooling_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# Explain your q3 result: why is mean pooling stuck near 0.6 while attention pooling is near
# perfect, although both models see the same sequences and the mean-pooled model is linear in a
# vector that *contains* the flagged step? Then say how you would check, on a few test
# sequences, that the attention model really found the flag (what would you plot or print?).

# %% [markdown] answer fr1
# The mean divides the flagged step's feature 1 by 10 and adds nine steps of unit noise to it:
# the signal-to-noise ratio of the pooled feature is about $1 : 3$, and no linear head can undo
# that mixing, so the mean model is barely above chance (≈ 0.6). The attention query learns to
# score the flag feature (feature 0 = 3) highly, so the softmax puts almost all its weight on
# the flagged step and the pooled vector *is* that step: the label is then read off feature 1
# without noise. To check, print or plot the attention weights `mha(...)[1]` for a few test
# sequences next to the flagged position: the weight on the flagged step should be close to 1
# (e.g. a heat map of weights over steps with the flag marked), and the accuracy should drop to
# chance if the flag is removed.

# %% [markdown] rubric fr1
# - 1 point: mean pooling dilutes the one informative step among nine noise steps (SNR argument).
# - 1 point: a linear head cannot recover what averaging destroyed.
# - 1 point: attention weights concentrate on the flagged step, so the pooled vector is that step.
# - 1 point: a concrete check: inspect/plot the returned attention weights against the flag
#   position (or an ablation that removes the flag).

# %% summary
check.summary()
