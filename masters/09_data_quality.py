# %% [markdown]
# # Exercise 09 — Missing modalities, imbalanced labels, and modality dropout
#
# Three remedies from chapter 09, then an experiment.
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
# **Modality dropout.** A model trained with every modality always present leans on whichever
# is easiest and breaks when it goes missing. Dropping modalities at random during training
# (never all of a sample's) teaches it to use each one alone.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with scikit-learn (`SimpleImputer`, `compute_class_weight`),
# `F.cross_entropy(weight=...)` and a reference of the rule in q4, and q5 with the instructor's
# run of the protocol within the stated margin. Only `import`s, `def`s and constants are taken
# from your notebook; calling those (or `nll_loss`, or the course's `ModalityDropout`) in the
# part that asks you to write them scores 0 for that part (q5 trains with the package, whose
# loss is `F.cross_entropy`: that is allowed there). A free-response question at the end is
# graded by your instructor.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("09_data_quality")

# %% [markdown]
# ## q1 (4 points): `mean_impute(features, present)`
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
# ## q2 (3 points): `balanced_class_weights(labels, num_classes)`
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
# ## q3 (4 points): `weighted_cross_entropy(scores, labels, weights)`
#
# `scores: (N, C)`, `labels: (N,)`, `weights: (C,)` → the weighted mean above, a scalar tensor.
# It is a *weighted mean*: divide by $\sum_i w_{y_i}$, not by $N$ — the two agree only when the
# weights used happen to average to 1 (the public check's weights sum to 5.5 over 4 samples).
# Scores can be large (±300 in the public check): use `logsumexp`, not `log(softmax)`.

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

# %% [markdown]
# ## q4 (5 points): `modality_dropout(features, present, p, u)`
#
# `features: (M, B, D)` (modality `m`'s features of sample `b`), `present: (M, B)` bool,
# `p` the drop probability and `u: (M, B)` uniform random numbers in `[0, 1)` (passed in, so
# that the result is checkable). The rule:
#
# - a present modality is dropped where `u < p`;
# - a sample that would lose **every** present modality keeps the present one with the
#   **largest** `u` (a sample with no modality present to begin with stays empty);
#
# Return `(dropped_features, kept)`: `kept: (M, B)` bool, and the features with the rows of
# modalities not kept set to zero. The public check has a sample that loses both modalities.

# %%
def modality_dropout(features, present, p, u):
    """Drop present modalities where u < p, never all of a sample's; zero the dropped rows."""
    ### BEGIN SOLUTION
    keep = present & (u >= p)
    lost = present.any(0) & ~keep.any(0)                          # (B,) samples left with nothing
    best = torch.where(present, u, torch.full_like(u, -1.0)).argmax(0)
    rescue = torch.zeros_like(keep)
    rescue[best, torch.arange(u.shape[1])] = True
    keep = keep | (rescue & lost[None, :])
    return features * keep[..., None].to(features.dtype), keep
    ### END SOLUTION


# %%
check("q4", modality_dropout)

# %% [markdown]
# ## q5 (6 points): an experiment — `dropout_experiment(seed)`
#
# Does modality dropout make a fusion model robust to a missing modality? On the
# modality-competition data (`mmcourse.data.synergy.load_competition`: `x1` is fast to learn
# but unreliable, `x2` faint but reliable), follow this protocol exactly:
#
# 1. `data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)` and
#    `without_x1 = remove_modality(data.test, modality="x1")` (`mmcourse.data.quality.missing`);
# 2. for `name, p` in `("plain", 0.0)`, `("dropout", 0.5)`: `model = make_fusion("early", data,
#    dim=32, seed=seed)`; if `p > 0`, wrap it: `model = ModalityDropout(model, p=p)`
#    (`mmcourse.robustness.missing`); `fit(model, data.train, epochs=10, lr=3e-3, batch_size=64,
#    seed=seed, progress=False)`; then test accuracy `evaluate(model, split)["accuracy"]` on
#    `data.test` and on `without_x1`;
# 3. return `{"plain_full", "plain_without_x1", "dropout_full", "dropout_without_x1"}` → floats.
#
# The grader repeats the protocol on hidden seeds and accepts each accuracy within **±0.05**.

# %%
from mmcourse.data.quality.missing import remove_modality
from mmcourse.data.synergy import load_competition
from mmcourse.models import make_fusion
from mmcourse.robustness.missing import ModalityDropout
from mmcourse.train import evaluate, fit


def dropout_experiment(seed):
    """Early fusion with and without modality dropout, tested with and without x1."""
    ### BEGIN SOLUTION
    data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)  # the call the instructions give
    without_x1 = remove_modality(data.test, modality="x1")  # the call the instructions give
    out = {}
    for name, p in (("plain", 0.0), ("dropout", 0.5)):
        model = make_fusion("early", data, dim=32, seed=seed)  # the call the instructions give
        if p:
            model = ModalityDropout(model, p=p)  # the call the instructions give
        fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)  # the call the instructions give
        out[f"{name}_full"] = float(evaluate(model, data.test)["accuracy"])
        out[f"{name}_without_x1"] = float(evaluate(model, without_x1)["accuracy"])
    return out
    ### END SOLUTION


# %%
check("q5", dropout_experiment)
try:
    print(dropout_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# In your q5 run, modality dropout raises the accuracy without `x1` by several points and does
# not hurt (here even helps) the accuracy with both modalities. (a) Explain both effects with
# what `x1` and `x2` are in this data set. (b) At test time a deployed model will miss `x1` for
# 20 % of the users: which model do you ship, and which *one* number would you add to the
# comparison before deciding?

# %% [markdown] answer fr1
# (a) `x1` is high-dimensional and well separated, so the plain model fits it within a few
# steps and the loss gives `x2` (faint) little reason to be learned — modality competition.
# Without `x1` at test time the plain model has only a weakly trained `x2` pathway. Dropping
# `x1` in half of the training samples forces the model to classify from `x2` alone, so the
# `x2` pathway is trained properly; since `x1` is unreliable (the wrong class ~30 % of the
# time) and `x2` is conditionally independent evidence, a better-trained `x2` also helps when
# both are present. (b) The dropout model: its expected accuracy is
# $0.8 \cdot 	ext{full} + 0.2 \cdot 	ext{without } x_1$, higher on both terms. Before deciding
# I would add the variance across seeds (a few runs) — or the accuracy with `x2` missing, if
# that can also happen — so that the few-point gap is known to be larger than run-to-run noise.

# %% [markdown] rubric fr1
# - 1 point: the plain model relies on the easy modality x1 (competition), leaving x2 undertrained.
# - 1 point: dropout forces the x2 pathway to be learned, which also helps with both present
#   (x1 unreliable / complementary evidence).
# - 1 point: ships the dropout model with a mixture argument (0.8 / 0.2 weighting).
# - 1 point: a sensible extra number (seed variance / confidence interval, x2-missing accuracy,
#   calibration under missingness).

# %% summary
check.summary()
