# %% [markdown]
# # Exercise 05 — The joint softmax $P(y \mid x_1, x_2)$ and its cross-entropy
#
# A joint classifier scores every class from both modalities at once, $s(y, x_1, x_2)$, and
# turns the scores of a sample into a distribution with a softmax at temperature $T$:
#
# $$P(y \mid x_1, x_2) = \frac{\exp(s_y / T)}{\sum_{c} \exp(s_c / T)},
# \qquad \mathcal{L} = -\frac{1}{N} \sum_i \log P(y_i \mid x_{1,i}, x_{2,i}).$$
#
# Scores can be large (±1000): a naive `exp` overflows. Subtract each row's maximum first, and
# compute the log-probability as $s_y - \operatorname{logsumexp}(s)$.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# with `torch.softmax` and `F.cross_entropy` on *hidden* cases, large scores included. Only
# `import`s, `def`s and constants are taken from your notebook; using `softmax`,
# `log_softmax`, `cross_entropy` or `nll_loss` scores 0 for that part (`torch.logsumexp`,
# `exp`, `max` are fine).

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("05_joint_classification")

# %% [markdown]
# ## q1 (3 points): `joint_probabilities(scores, temperature=1.0)`
#
# `scores: (B, C)` → `(B, C)` probabilities, each row summing to 1.

# %%
def joint_probabilities(scores, temperature=1.0):
    """P(y | x1, x2) = softmax(scores / T) over the classes, computed stably."""
    ### BEGIN SOLUTION
    z = scores / temperature
    z = z - z.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %%
check("q1", joint_probabilities)

# %% [markdown]
# ## q2 (2 points): `joint_cross_entropy(scores, labels)`
#
# `scores: (B, C)`, `labels: (B,)` long → the mean cross-entropy, a scalar tensor.

# %%
def joint_cross_entropy(scores, labels):
    """-(1/B) Σ_i log P(y_i | x_i) = mean(logsumexp(s_i) - s_i[y_i])."""
    ### BEGIN SOLUTION
    picked = scores.gather(1, labels[:, None]).squeeze(1)
    return (torch.logsumexp(scores, dim=-1) - picked).mean()
    ### END SOLUTION


# %%
check("q2", joint_cross_entropy)

# %% summary
check.summary()
