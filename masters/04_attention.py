# %% [markdown]
# # Exercise 04 — Masked scaled dot-product attention
#
# For queries `q: (..., L_q, d_k)`, keys `k: (..., L_k, d_k)` and values `v: (..., L_k, d_v)`
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V .$$
#
# A boolean `mask`, broadcastable to the scores `(..., L_q, L_k)`, says which keys each query
# **may attend** (`True`), as in `F.scaled_dot_product_attention`. A forbidden key gets weight
# exactly 0; a query that may attend no key at all gets all-zero weights and a zero output (not
# NaN). Leading dimensions (batch, heads) broadcast.
#
# **How you are graded.** `check(...)` runs a few *public* cases; the grader calls your
# functions on *hidden* cases (several batch/head shapes, padding and causal masks, a query
# with no allowed key) and compares them with the course's tested
# `mmcourse.models.scaled_dot_product_attention`. Only `import`s, `def`s and constants are taken
# from your notebook; calling a library attention scores 0 for that part.

# %%
import math

import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("04_attention")

# %% [markdown]
# ## q1 (4 points): `attention(q, k, v, mask=None)`
#
# Return the tuple `(output, weights)`: `(..., L_q, d_v)` and `(..., L_q, L_k)`.
# Hint: fill forbidden scores with a very negative *finite* number
# (`torch.finfo(scores.dtype).min`) before the softmax, then set their weights to 0.

# %%
def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v with a boolean mask (True = may attend)."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights
    ### END SOLUTION


# %%
check("q1", attention)

# %% [markdown]
# ## q2 (1 point): `causal_mask(n)`
#
# The `(n, n)` boolean mask that lets position `i` attend to positions `j ≤ i` only.

# %%
def causal_mask(n):
    """(n, n) bool, True on and below the diagonal."""
    ### BEGIN SOLUTION
    return torch.ones(n, n, dtype=torch.bool).tril()
    ### END SOLUTION


# %%
check("q2", causal_mask)

# %% [markdown]
# ## Try it: causal self-attention over 4 positions

# %%
x = torch.randn(4, 8)
try:
    _, w = attention(x, x, x, causal_mask(4))
    print(w.round(decimals=2))
except NotImplementedError:
    print("not implemented yet")

# %% summary
check.summary()
