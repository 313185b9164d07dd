# %% [markdown]
# # Exercise 09 — A missing modality and an imbalanced label set
#
# Two remedies from chapter 09.
#
# **Mean imputation.** When a sample's modality is missing, a fusion model still needs a
# feature vector there. The simplest stand-in is the mean of that modality's features over the
# samples that have it (what `SimpleImputer(strategy="mean")` does column by column).
#
# **Class weighting.** With imbalanced labels, a classifier can ignore the rare classes. The
# "balanced" weights $w_c = N / (K\, n_c)$ ($n_c$ the number of samples of class $c$, $K$ the
# number of classes that occur) make every class contribute equally to the weighted
# cross-entropy
#
# $$\mathcal{L} = \frac{\sum_i w_{y_i}\, \mathrm{CE}_i}{\sum_i w_{y_i}}, \qquad
# \mathrm{CE}_i = \operatorname{logsumexp}(s_i) - s_{i, y_i}.$$
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with scikit-learn (`SimpleImputer`, `compute_class_weight`) and
# `F.cross_entropy(weight=...)`. Only `import`s, `def`s and constants are taken from your
# notebook; calling those (or `nll_loss`) scores 0 for that part.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("09_data_quality")

# %% [markdown]
# ## q1 (3 points): `mean_impute(features, present)`
#
# `features: (N, D)`, `present: (N,)` bool → `(N, D)`: present rows unchanged, absent rows
# replaced by the mean of the present rows. If no row is present, return zeros.

# %%
def mean_impute(features, present):
    """Absent rows := the column means of the present rows (zeros if none is present)."""
    ### BEGIN SOLUTION
    if not present.any():
        return torch.zeros_like(features)
    mean = features[present].mean(dim=0)
    return torch.where(present[:, None], features, mean)
    ### END SOLUTION


# %%
check("q1", mean_impute)

# %% [markdown]
# ## q2 (2 points): `balanced_class_weights(labels, num_classes)`
#
# `labels: (N,)` long → `(num_classes,)` float weights $N / (K n_c)$, and 0 for a class that
# does not occur.

# %%
def balanced_class_weights(labels, num_classes):
    """w_c = N / (K n_c) for the K classes that occur, 0 for the others."""
    ### BEGIN SOLUTION
    counts = torch.bincount(labels, minlength=num_classes).float()
    k = int((counts > 0).sum())
    weights = len(labels) / (k * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))
    ### END SOLUTION


# %%
check("q2", balanced_class_weights)

# %% [markdown]
# ## q3 (2 points): `weighted_cross_entropy(scores, labels, weights)`
#
# `scores: (N, C)`, `labels: (N,)`, `weights: (C,)` → the weighted mean above, a scalar tensor.

# %%
def weighted_cross_entropy(scores, labels, weights):
    """Σ_i w_{y_i} CE_i / Σ_i w_{y_i}."""
    ### BEGIN SOLUTION
    ce = torch.logsumexp(scores, dim=1) - scores.gather(1, labels[:, None]).squeeze(1)
    w = weights[labels]
    return (w * ce).sum() / w.sum()
    ### END SOLUTION


# %%
check("q3", weighted_cross_entropy)

# %% summary
check.summary()
