# %% [markdown]
# # Exercise 07 — Retrieval sets, Recall@K, InfoNCE, and training a dual encoder
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
# `mmcourse.metrics.recall_at_k` and `mmcourse.models.info_nce` (q1–q3), and q4 with the
# instructor's run of the protocol within the stated margin. Only `import`s, `def`s and
# constants are taken from your notebook; calling those functions in the part that asks you to
# write them scores 0 for that part (`F.normalize` and `F.cross_entropy` are fine; in q4 you
# train with the package's `info_nce` and measure with its `recall_at_k`). A free-response
# question at the end is graded by your instructor.

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("07_cross_modal_retrieval")

# %% [markdown]
# ## q1 (4 points): `retrieval_set(query, database, theta)`
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
# ## q2 (4 points): `recall_at_k(similarity, relevant, k)`
#
# `similarity: (Q, N)`, `relevant: (Q, N)` bool (each query has at least one relevant item),
# `k` an int → the fraction of queries (a float) with a relevant item in their top `k`. Ties
# are broken *pessimistically*: an irrelevant item with the same similarity as the best
# relevant one counts as ranked above it (so a constant model does not score well by luck).
# `torch.topk` breaks ties its own way; the public check has exact ties.

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
# ## q3 (5 points): `info_nce(image_emb, text_emb, scale)`
#
# `image_emb, text_emb: (B, d)` unit rows, pair `i` matching pair `i`; `scale` a float → the
# symmetric loss, a scalar tensor: the mean of the image→text cross-entropy (rows of $Z$) and
# the text→image one (columns). Only one direction is a different number whenever $Z$ is not
# symmetric (the public check's second case).

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

# %% [markdown]
# ## q4 (6 points): an experiment — `retrieval_experiment(seed)`
#
# Train a (linear) dual encoder with InfoNCE and measure retrieval in both directions. The
# helper below makes matching (image, text) feature pairs that share a latent cause. Follow
# this protocol exactly:
#
# 1. training pairs `make_pairs(512, seed)`, test pairs `make_pairs(500, seed + 1)`;
# 2. `torch.manual_seed(seed)`, then `f_image = nn.Linear(16, 8)` and `f_text = nn.Linear(12, 8)`;
# 3. 80 full-batch steps of `torch.optim.Adam(both encoders' parameters, lr=0.01)` on
#    `info_nce(F.normalize(f_image(images), dim=-1), F.normalize(f_text(texts), dim=-1), 10.0)`
#    (the package's `mmcourse.models.info_nce`);
# 4. on the test pairs, `sim` = normalised image embeddings @ normalised text embeddings`.T`;
#    image→text R@1 and R@5 from `mmcourse.metrics.recall_at_k(sim, (1, 5))`, text→image from
#    `recall_at_k(sim.T, (1, 5))` (it returns `{K: R@K}`);
# 5. return `{"i2t_r1": ..., "i2t_r5": ..., "t2i_r1": ..., "t2i_r5": ...}` as Python floats.
#
# The grader repeats the protocol on hidden seeds and accepts each value within **±0.04**.

# %%
def make_pairs(n: int, seed: int, noise: float = 1.0):
    """``n`` matching (image, text) feature pairs: a shared latent ``z ~ N(0, I_8)`` seen through
    two fixed linear maps (16 image and 12 text features) plus noise. Returns ``(images, texts)``."""
    g = torch.Generator().manual_seed(seed)
    to_image = torch.randn(8, 16, generator=torch.Generator().manual_seed(1234))
    to_text = torch.randn(8, 12, generator=torch.Generator().manual_seed(4321))
    z = torch.randn(n, 8, generator=g)
    return (z @ to_image + noise * torch.randn(n, 16, generator=g),
            z @ to_text + noise * torch.randn(n, 12, generator=g))


# %%
from mmcourse.metrics import recall_at_k as course_recall_at_k
from mmcourse.models import info_nce as course_info_nce


def retrieval_experiment(seed):
    """Train a linear dual encoder with InfoNCE; test Recall@1/5 in both directions."""
    ### BEGIN SOLUTION
    images, texts = make_pairs(512, seed)
    test_images, test_texts = make_pairs(500, seed + 1)
    torch.manual_seed(seed)
    f_image, f_text = nn.Linear(16, 8), nn.Linear(12, 8)
    opt = torch.optim.Adam([*f_image.parameters(), *f_text.parameters()], lr=0.01)
    for _ in range(80):
        loss = course_info_nce(F.normalize(f_image(images), dim=-1), F.normalize(f_text(texts), dim=-1), 10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        sim = F.normalize(f_image(test_images), dim=-1) @ F.normalize(f_text(test_texts), dim=-1).T
    i2t, t2i = course_recall_at_k(sim, (1, 5)), course_recall_at_k(sim.T, (1, 5))
    return {"i2t_r1": i2t[1], "i2t_r5": i2t[5], "t2i_r1": t2i[1], "t2i_r5": t2i[5]}
    ### END SOLUTION


# %%
check("q4", retrieval_experiment)
try:
    print(retrieval_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# Your q4 R@1 is around 0.55 while R@5 is above 0.8. (a) What does that gap say about the
# learned space? (b) The latent has 8 dimensions and the noise is as large as the signal:
# what R@1 would you expect from a *perfect* encoder on 500 test pairs — 1.0 or less — and why?
# (c) Give one reason to report both directions (image→text and text→image) even when, as
# here, they come out close.

# %% [markdown] answer fr1
# (a) The right caption is usually *near* the top but often beaten by a few neighbours: the
# space has learned the shared latent coarsely, and nearby latents (similar pairs) are
# confusable; R@5 forgives those near-misses. (b) Less than 1.0: the noise is irreducible. Even
# the ideal encoder (the posterior mean of $z$ from each side) sees each pair through noise as
# large as the signal, and among 500 test latents in 8 dimensions some are closer to the
# noisy estimate than the true partner, so the Bayes-optimal R@1 is well below 1 and grows with
# less noise or a smaller database. (c) The two directions rank different things (texts for an
# image vs images for a text), so they differ when one modality is noisier, when there are
# duplicate captions or hubs (items that are everyone's nearest neighbour); the symmetric loss
# trains both, and an application usually needs one specific direction.

# %% [markdown] rubric fr1
# - 1 point: (a) near-misses: the right item is close but not first; a coarse / noisy space.
# - 1 point: (b) below 1.0 because of irreducible noise (Bayes limit), depends on database size.
# - 1 point: (b) a justification mentioning crowding among 500 items / noise as large as signal.
# - 1 point: (c) a valid reason (asymmetric noise, duplicates/hubs, the application's direction).

# %% summary
check.summary()
