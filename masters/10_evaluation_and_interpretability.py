# %% [markdown]
# # Exercise 10 — Macro-F1, ablation, saliency: do they agree?
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
# **Saliency** asks which *input features* a prediction is sensitive to: the magnitude of the
# gradient of the predicted (or a given) class score with respect to the input,
# $|\partial s_c(x) / \partial x|$.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with scikit-learn's `f1_score(average="macro", zero_division=0)`, a
# reference built on `mmcourse.metrics.accuracy` and autograd (q1–q3), and q4 with the
# instructor's run of the protocol within the stated margin. Only `import`s, `def`s and
# constants are taken from your notebook; calling `f1_score`, the course's
# `precision_recall_f1` or its `saliency` in the part that asks you to write them scores 0. A
# free-response question at the end is graded by your instructor.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("10_evaluation_and_interpretability")

# %% [markdown]
# ## q1 (5 points): `macro_f1(confusion)`
#
# `confusion: (C, C)` integer tensor → a float. A class that is never true and never predicted
# has $TP = FP = FN = 0$: its precision, recall and F1 are all $0/0$. Computing F1 as
# $2PR/(P + R)$ from NaN precision and recall makes the whole average NaN; use the counts and
# count that class as 0 (scikit-learn's `zero_division=0`). The public check has such a class.

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
# ## q2 (4 points): `modality_ablation(logits, labels)`
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

# %% [markdown]
# ## q3 (6 points): `saliency(x, W1, b1, W2, b2, target=None)`
#
# A two-layer MLP scores classes as $s = W_2\, \mathrm{relu}(W_1 x + b_1) + b_2$
# (`x: (B, D)`, `W1: (H, D)`, `b1: (H,)`, `W2: (C, H)`, `b2: (C,)`). Return
# $|\partial s_{c_i}(x_i) / \partial x_i|$ for every sample, shape `(B, D)`, where
# $c_i$ = `target[i]` (a `(B,)` long tensor) or, when `target` is `None`, the sample's
# predicted class $\arg\max_c s_c(x_i)$. Either write the gradient out,
# $\partial s_c / \partial x = (W_2[c] \odot \mathbb{1}[W_1 x + b_1 > 0])\, W_1$, or use
# autograd — then backpropagate each sample's *own* target score (e.g. the sum over the batch
# of `scores[i, c_i]`; samples do not interact), not the sum of all scores.

# %%
def saliency(x, W1, b1, W2, b2, target=None):
    """|d s_c / d x| for every sample of a two-layer ReLU MLP."""
    ### BEGIN SOLUTION
    pre = x @ W1.T + b1
    scores = torch.relu(pre) @ W2.T + b2
    c = scores.argmax(1) if target is None else target
    grad = (W2[c] * (pre > 0).to(x.dtype)) @ W1                 # (B, D)
    return grad.abs()
    ### END SOLUTION


# %%
check("q3", saliency)

# %% [markdown]
# ## q4 (6 points): an experiment — `attribution_experiment(seed)`
#
# Train a fusion model and ask, in two ways, how much it relies on each modality. On the
# modality-competition data (`x1`: 256 features, fast to learn but unreliable; `x2`: 64 faint
# but reliable features), follow this protocol exactly:
#
# 1. `data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)`;
#    `model = make_fusion("early", data, dim=32, seed=seed)`;
#    `fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)`;
# 2. `ablation = modality_ablation(model, data.test)` (`mmcourse.interpret`);
# 3. on the first 200 test samples, `batch = {k: v[:200] for k, v in data.test.tensors.items()}`,
#    the total saliency of each modality, `saliency(model, batch, modality=m).sum(1).mean()`
#    (the course's `mmcourse.interpret.saliency`: gradient of the predicted class);
# 4. return `{"accuracy": ablation["all"], "alone_x1": ablation["alone"]["x1"],
#    "alone_x2": ablation["alone"]["x2"], "saliency_x1": ..., "saliency_x2": ...}` (floats).
#
# The grader repeats the protocol on hidden seeds and accepts each value within **±0.05**
# (plus 5 %).

# %%
from mmcourse.data.synergy import load_competition
from mmcourse.interpret import modality_ablation as course_ablation
from mmcourse.interpret import saliency as course_saliency
from mmcourse.models import make_fusion
from mmcourse.train import fit


def attribution_experiment(seed):
    """Ablation and saliency of a trained early-fusion model on the competition data."""
    ### BEGIN SOLUTION
    data = load_competition(n_train=500, n_val=100, n_test=1000, seed=seed)  # the call the instructions give
    model = make_fusion("early", data, dim=32, seed=seed)  # the call the instructions give
    fit(model, data.train, epochs=10, lr=3e-3, batch_size=64, seed=seed, progress=False)  # the call the instructions give
    ablation = course_ablation(model, data.test)
    batch = {k: v[:200] for k, v in data.test.tensors.items()}  # the call the instructions give
    out = {"accuracy": ablation["all"]}
    for m in ("x1", "x2"):
        out[f"alone_{m}"] = ablation["alone"][m]
        out[f"saliency_{m}"] = float(course_saliency(model, batch, modality=m).sum(1).mean())
    return out
    ### END SOLUTION


# %%
check("q4", attribution_experiment)
try:
    print(attribution_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 5
# ### fr1 (5 points, graded by your instructor)
#
# In your q4 run `x1` alone gives a higher accuracy than `x2` alone, yet the total saliency of
# `x2` is as large as or larger than that of `x1`. (a) Give two reasons why a gradient-based
# attribution and an ablation can rank modalities differently (think of what each one
# measures, and of the number of features). (b) A colleague reports "the model uses `x2`
# more" from the saliency alone. Write the two-sentence reply you would send, including which
# measurement you would trust for a deployment decision about dropping a sensor, and why.

# %% [markdown] answer fr1
# (a) Saliency is a *local, first-order* sensitivity: it says how much the score would move
# for an infinitesimal change of each feature at this input, not how much the prediction
# depends on the feature's presence; ablation measures the effect of removing the whole
# modality (a large, non-local change, with the absent modality replaced by the model's
# "missing" input). Summing $|\partial s / \partial x|$ over features also depends on the
# number and scale of the features: `x2` has 64 features of small amplitude (faint signal), so
# the network needs large weights on them, which makes their gradients large even though their
# information is weaker; `x1` has 256 well-separated features where the decision is saturated
# (gradients small), and redundancy across many features spreads the attribution thin.
# (b) "Saliency measures local sensitivity per unit of input, not reliance: `x2`'s faint
# features get large gradients because they need large weights. For dropping a sensor I would
# trust the ablation (accuracy without each modality on held-out data, over a few seeds),
# because it measures exactly the decision we are making."

# %% [markdown] rubric fr1
# - 1 point: saliency is local / first-order sensitivity, ablation is a global removal effect.
# - 1 point: the scale / number of features (faint x2 needs large weights → large gradients;
#   saturation on x1) affects summed saliency.
# - 1 point: a second valid reason (redundancy, saturation, gradient of the predicted class only).
# - 1 point: (b) a clear, correct reply that saliency ≠ reliance.
# - 1 point: (b) trusts the ablation for the sensor decision, with the reason that it measures
#   that intervention (and ideally across seeds).

# %% summary
check.summary()
