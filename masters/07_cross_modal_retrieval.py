# %% [markdown]
# # Exercise 07 — The retrieval set $R(q, D)$, Recall@K and InfoNCE
#
# A dual encoder maps images and captions into one space; a query $q$ retrieves every database
# item whose cosine similarity exceeds a threshold $\theta$:
#
# $$R(q, D) = \{\, d \in D : \cos(q, d) > \theta \,\}.$$
#
# Recall@K asks, for each query, whether one of its relevant items is among its $K$ most similar
# (an irrelevant item tied with the best relevant one counts as ranked above it). The model is
# trained with the symmetric InfoNCE loss on a batch of $B$ matching pairs with unit embeddings
# $I, T \in \mathbb{R}^{B \times d}$ and scale $s$:
#
# $$Z = s\, I T^\top, \qquad \mathcal{L} = \tfrac12 \left[\mathrm{CE}(Z, \mathrm{diag}) + \mathrm{CE}(Z^\top, \mathrm{diag})\right].$$
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with the course's tested `mmcourse.models.retrieve`,
# `mmcourse.metrics.recall_at_k` and `mmcourse.models.info_nce`. Only `import`s, `def`s and
# constants are taken from your notebook; calling those functions scores 0 for that part
# (`F.normalize` and `F.cross_entropy` are fine).

# %%
import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("07_cross_modal_retrieval")

# %% [markdown]
# ## q1 (3 points): `retrieval_set(query, database, theta)`
#
# `query: (d,)`, `database: (N, d)` (not necessarily unit vectors), `theta` a float → a
# `LongTensor` of the indices in $R(q, D)$ (strictly greater than θ), sorted by decreasing
# similarity. It may be empty.

# %%
def retrieval_set(query, database, theta):
    """Indices of the database items with cos(query, item) > theta, most similar first."""
    ### BEGIN SOLUTION
    sims = F.normalize(database, dim=-1) @ F.normalize(query, dim=-1)
    hits = (sims > theta).nonzero().flatten()
    order = torch.sort(sims[hits], descending=True, stable=True).indices
    return hits[order]
    ### END SOLUTION


# %%
check("q1", retrieval_set)

# %% [markdown]
# ## q2 (2 points): `recall_at_k(similarity, relevant, k)`
#
# `similarity: (Q, N)`, `relevant: (Q, N)` bool (each query has at least one relevant item),
# `k` an int → the fraction of queries (a float) with a relevant item in their top `k`.

# %%
def recall_at_k(similarity, relevant, k):
    """R@K = (1/Q) Σ_i 1[rank_i <= K], rank_i = 1 + #{irrelevant j : S_ij >= best relevant}."""
    ### BEGIN SOLUTION
    best = similarity.masked_fill(~relevant, float("-inf")).max(dim=1, keepdim=True).values
    rank = 1 + ((similarity >= best) & ~relevant).sum(dim=1)
    return float((rank <= k).float().mean())
    ### END SOLUTION


# %%
check("q2", recall_at_k)

# %% [markdown]
# ## q3 (3 points): `info_nce(image_emb, text_emb, scale)`
#
# `image_emb, text_emb: (B, d)` unit rows, pair `i` matching pair `i`; `scale` a float → the
# symmetric loss, a scalar tensor.

# %%
def info_nce(image_emb, text_emb, scale):
    """Symmetric InfoNCE: the mean of the row-wise and column-wise cross-entropies of s I T^T."""
    ### BEGIN SOLUTION
    logits = scale * image_emb @ text_emb.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    ### END SOLUTION


# %%
check("q3", info_nce)

# %% summary
check.summary()
