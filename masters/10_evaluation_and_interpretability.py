# %% [markdown]
# # Exercise 10 — Macro-F1 and a modality-ablation study
#
# **Macro-F1** averages the per-class F1 over all $C$ classes, so a rare class counts as much as
# a frequent one. From a confusion matrix $M$ (rows: true class, columns: prediction):
#
# $$TP_c = M_{cc},\quad FP_c = \sum_t M_{tc} - TP_c,\quad FN_c = \sum_p M_{cp} - TP_c,\quad
# F1_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}\ (0 \text{ if } 0/0).$$
#
# **Modality ablation** asks how much each modality contributes: remove it, re-predict, and
# measure the drop in accuracy. With late fusion (predict the argmax of the mean of the
# modalities' logits):
#
# $$\Delta_m = \mathrm{acc}(\text{all modalities}) - \mathrm{acc}(\text{all but } m).$$
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with scikit-learn's `f1_score(average="macro", zero_division=0)` and a
# reference built on `mmcourse.metrics.accuracy`. Only `import`s, `def`s and constants are taken
# from your notebook; calling `f1_score` or the course's `precision_recall_f1` scores 0.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("10_evaluation_and_interpretability")

# %% [markdown]
# ## q1 (3 points): `macro_f1(confusion)`
#
# `confusion: (C, C)` integer tensor → a float.

# %%
def macro_f1(confusion):
    """Mean over the C classes of F1_c = 2TP / (2TP + FP + FN), 0 when that is 0/0."""
    ### BEGIN SOLUTION
    m = confusion.double()
    tp = m.diag()
    fp = m.sum(dim=0) - tp
    fn = m.sum(dim=1) - tp
    den = 2 * tp + fp + fn
    f1 = torch.where(den > 0, 2 * tp / den.clamp(min=1e-12), torch.zeros_like(den))
    return float(f1.mean())
    ### END SOLUTION


# %%
check("q1", macro_f1)

# %% [markdown]
# ## q2 (2 points): `modality_ablation(logits, labels)`
#
# `logits: (M, B, C)` (one slice per modality, M ≥ 2), `labels: (B,)` → `(M,)` float tensor of
# the drops $\Delta_m$. A positive $\Delta_m$ means the modality helps.

# %%
def modality_ablation(logits, labels):
    """Δ_m = acc(argmax of the mean logits) - acc(same without modality m)."""
    ### BEGIN SOLUTION
    def acc(subset):
        return (subset.mean(0).argmax(-1) == labels).float().mean()

    full = acc(logits)
    keep = torch.ones(len(logits), dtype=torch.bool)
    drops = []
    for m in range(len(logits)):
        keep[m] = False
        drops.append(full - acc(logits[keep]))
        keep[m] = True
    return torch.stack(drops)
    ### END SOLUTION


# %%
check("q2", modality_ablation)

# %% summary
check.summary()
