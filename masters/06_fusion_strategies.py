# %% [markdown]
# # Exercise 06 — Late and early fusion heads
#
# **Late fusion** gives each modality $m$ its own classifier with logits $s_m$ and averages them
# over the modalities that are present ($p_m = 1$) for each sample:
#
# $$s = \frac{\sum_m p_m\, s_m}{\max(\sum_m p_m,\ 1)} .$$
#
# **Early fusion** concatenates the modalities' feature vectors and applies one head; here a
# linear one: $s = [f_1; f_2; \dots]\, W^\top + b$.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# with references on *hidden* cases (other numbers of modalities, samples where every modality
# is missing). Only `import`s, `def`s and constants are taken from your notebook; `F.linear`,
# `nn.Linear` and the course's fusion classes score 0 for the part that uses them.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("06_fusion_strategies")

# %% [markdown]
# ## q1 (3 points): `late_fusion(logits, present)`
#
# `logits: (M, B, C)` (one slice per modality), `present: (M, B)` bool → `(B, C)`. A sample
# with no modality present gets all-zero scores.

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
# ## q2 (2 points): `early_fusion(features, weight, bias)`
#
# `features`: a list of `(B, D_m)` tensors; `weight: (C, Σ D_m)`; `bias: (C,)` → `(B, C)`.

# %%
def early_fusion(features, weight, bias):
    """A linear head on the concatenated features."""
    ### BEGIN SOLUTION
    z = torch.cat(list(features), dim=1)
    return z @ weight.T + bias
    ### END SOLUTION


# %%
check("q2", early_fusion)

# %% summary
check.summary()
