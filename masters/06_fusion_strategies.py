# %% [markdown]
# # Exercise 06 — Late fusion, tensor fusion, and when fusion must be early
#
# **Late fusion** gives each modality $m$ its own classifier with logits $s_m$ and averages them
# over the modalities that are present ($p_m = 1$) for each sample:
#
# $$s = \frac{\sum_m p_m\, s_m}{\max(\sum_m p_m,\ 1)} .$$
#
# **Tensor fusion** (Zadeh et al., 2017) models every interaction between modalities: append a
# 1 to each modality's features and take their outer product,
# $z = \mathrm{vec}\big([f_1; 1] \otimes [f_2; 1] \otimes \dots \otimes [f_M; 1]\big)$; the
# appended 1 keeps each modality's own features (and their pairs) among the products.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# with references on *hidden* cases (other numbers of modalities, samples where every modality
# is missing) for q1 and q2, and q3 with the instructor's run of the protocol within the stated
# margin. Only `import`s, `def`s and constants are taken from your notebook; the course's
# `LateFusion` / `TensorFusion` classes score 0 in the part that asks you to write them. A
# free-response question at the end is graded by your instructor.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("06_fusion_strategies")

# %% [markdown]
# ## q1 (5 points): `late_fusion(logits, present)`
#
# `logits: (M, B, C)` (one slice per modality), `present: (M, B)` bool → `(B, C)`. A sample
# with no modality present gets all-zero scores: dividing by the plain count there is
# `0 / 0 = NaN` (the public check has such a sample).

# %%
def late_fusion(logits, present):
    """Mean of the present modalities' logits for every sample."""
    ### BEGIN SOLUTION
    p = present.to(logits.dtype)[..., None]            # (M, B, 1)
    return (p * logits).sum(0) / p.sum(0).clamp(min=1)
    ### END SOLUTION


# %%
check("q1", late_fusion)

# %% [markdown]
# ## q2 (5 points): `tensor_fusion(features)`
#
# `features`: a list of `M ≥ 1` tensors `(B, d_m)` → `(B, Π_m (d_m + 1))`. For two modalities,
# entry `i · (d_2 + 1) + j` of a sample is $[f_1; 1]_i \cdot [f_2; 1]_j$ (modality 1 is the
# outermost index, as `torch.flatten` of the `(B, d_1 + 1, d_2 + 1)` outer product gives);
# with more modalities, fold them in one at a time. The last entry is always 1.

# %%
def tensor_fusion(features):
    """vec([f_1; 1] ⊗ ... ⊗ [f_M; 1]) for every sample."""
    ### BEGIN SOLUTION
    out = None
    for f in features:
        z = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], dim=1)
        out = z if out is None else (out[:, :, None] * z[:, None, :]).flatten(1)
    return out
    ### END SOLUTION


# %%
check("q2", tensor_fusion)

# %% [markdown]
# ## q3 (8 points): an experiment — `fusion_experiment(seed)`
#
# On XOR-Synergy (`mmcourse.data.load_xor`: each modality carries one bit, the label is their
# XOR, so neither modality alone says anything about it), compare three fusion strategies of
# the package, following this protocol exactly:
#
# 1. `data = load_xor(n_train=512, n_val=200, n_test=1000, seed=seed)`;
# 2. for `strategy` in `"early"`, `"late"`, `"tensor"`:
#    `model = make_fusion(strategy, data, dim=16, seed=seed)` (`mmcourse.models`), then
#    `fit(model, data.train, epochs=8, lr=1e-2, batch_size=64, seed=seed, progress=False)`
#    (`mmcourse.train`), and its test accuracy `evaluate(model, data.test)["accuracy"]`;
# 3. return `{"early": ..., "late": ..., "tensor": ...}` as Python floats.
#
# The grader repeats the protocol on hidden seeds and accepts each accuracy within **±0.05**.

# %%
from mmcourse.data import load_xor
from mmcourse.models import make_fusion
from mmcourse.train import evaluate, fit


def fusion_experiment(seed):
    """Test accuracy of early, late and tensor fusion on XOR-Synergy."""
    ### BEGIN SOLUTION
    data = load_xor(n_train=512, n_val=200, n_test=1000, seed=seed)  # the call the instructions give
    out = {}
    for strategy in ("early", "late", "tensor"):
        model = make_fusion(strategy, data, dim=16, seed=seed)  # the call the instructions give
        fit(model, data.train, epochs=8, lr=1e-2, batch_size=64, seed=seed, progress=False)  # the call the instructions give
        out[strategy] = float(evaluate(model, data.test)["accuracy"])
    return out
    ### END SOLUTION


# %%
check("q3", fusion_experiment)
try:
    print(fusion_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# Late fusion sits at chance on XOR-Synergy however long you train it, while early and tensor
# fusion solve it. Explain why from the form of the late-fusion score, and name one kind of
# real multimodal data where you would therefore *not* choose late fusion. Then give one
# situation where late fusion is the better choice despite this, and say why.

# %% [markdown] answer fr1
# Late fusion scores $s = \frac{1}{M}\sum_m s_m(x_m)$: a sum of functions of one modality each.
# Under XOR, $P(y \mid x_1) = P(y \mid x_2) = 1/2$, so each $s_m$ can only learn a constant, and
# their sum cannot express the interaction $y = a \oplus b$; early fusion (a hidden layer on
# $[g_1; g_2]$) and tensor fusion (explicit products $g_{1i} g_{2j}$) can. Data where meaning
# comes from the *combination*: sarcasm (positive words with a contemptuous tone), a VQA answer
# that depends on question and image together, "is the spoken digit the one shown?". Late
# fusion is preferable when modalities are often missing or unreliable at test time (it
# averages whatever is present and each expert stands alone), when modalities are
# conditionally independent given the label so their evidence simply adds, or with little
# data (fewer interaction parameters to fit).

# %% [markdown] rubric fr1
# - 1 point: the late score is a sum of per-modality terms (no interaction terms).
# - 1 point: under XOR each modality alone is uninformative, so each term is constant / chance.
# - 1 point: a plausible real example where information is synergistic.
# - 1 point: a sound case for late fusion (missing modalities, independent evidence, little data,
#   modular experts).

# %% summary
check.summary()
