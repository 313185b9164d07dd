# %% [markdown]
# # Exercise 05 — The joint softmax, its cross-entropy, and calibration
#
# A joint classifier scores every class from both modalities at once, $s(y, x_1, x_2)$, and
# turns the scores of a sample into a distribution with a softmax at temperature $T$:
#
# $$P(y \mid x_1, x_2) = \frac{\exp(s_y / T)}{\sum_{c} \exp(s_c / T)},
# \qquad \mathcal{L} = -\frac{1}{N} \sum_i \log P(y_i \mid x_{1,i}, x_{2,i}).$$
#
# Scores can be large (±1000): a naive `exp` overflows. Subtract each row's maximum first, and
# compute the log-probability as $s_y - \operatorname{logsumexp}(s)$. Chapter 05 then asked
# whether the probabilities can be *trusted*: the expected calibration error (ECE) compares
# confidence with accuracy, and a single temperature fitted on validation data repairs an
# over-confident model.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# with `torch.softmax`, `F.cross_entropy`, `mmcourse.metrics.expected_calibration_error` and a
# golden-section search on *hidden* cases (q1–q4), and q5 with the instructor's run of the
# protocol within the stated margin. Only `import`s, `def`s and constants are taken from your
# notebook; `softmax`, `log_softmax`, `cross_entropy` and `nll_loss` are off limits in the whole
# notebook (a call scores 0 for that part; `torch.logsumexp`, `exp`, `max` are fine), and so is
# the course's ECE in q3. A free-response question at the end is graded by your instructor.

# %%
import math

import torch
import torch.nn as nn

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("05_joint_classification")

# %% [markdown]
# ## q1 (4 points): `joint_probabilities(scores, temperature=1.0)`
#
# `scores: (B, C)` → `(B, C)` probabilities, each row summing to 1. The public check has
# scores near ±1000: `exp(1000)` is `inf` in float32, and `inf / inf` is NaN.

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
# ## q2 (4 points): `joint_cross_entropy(scores, labels)`
#
# `scores: (B, C)`, `labels: (B,)` long → the mean cross-entropy, a scalar tensor. Do not take
# `log(joint_probabilities(...))`: when the label's probability is below ~1e-38 (scores 400
# apart, as in the public check) it underflows to 0 and `log 0 = -inf`. Use
# $-\log P(y) = \operatorname{logsumexp}(s) - s_y$.

# %%
def joint_cross_entropy(scores, labels):
    """-(1/B) Σ_i log P(y_i | x_i) = mean(logsumexp(s_i) - s_i[y_i])."""
    ### BEGIN SOLUTION
    picked = scores.gather(1, labels[:, None]).squeeze(1)
    return (torch.logsumexp(scores, dim=-1) - picked).mean()
    ### END SOLUTION


# %%
check("q2", joint_cross_entropy)

# %% [markdown]
# ## q3 (5 points): `expected_calibration_error(probs, labels, n_bins)`
#
# `probs: (N, C)` (rows sum to 1), `labels: (N,)`. With confidence $c_i = \max_k p_{ik}$,
# prediction $\hat y_i = \arg\max_k p_{ik}$ (the first index on a tie) and $M$ = `n_bins`
# equal-width bins $B_b = \{i : c_i \in (b/M, (b+1)/M]\}$ (upper edge **included**; a
# confidence of exactly 0 would go in the first bin),
#
# $$\mathrm{ECE} = \sum_{b:\,|B_b| > 0} \frac{|B_b|}{N}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big| .$$
#
# Return a Python float. Traps in the public check: confidences exactly on a bin edge (1.0 and
# 0.5: `floor(c · M)` puts them one bin too high, and 1.0 outside the range) and empty bins
# (their accuracy is 0/0: skip them, do not average over them).

# %%
def expected_calibration_error(probs, labels, n_bins):
    """ECE over n_bins equal-width confidence bins (b/M, (b+1)/M]."""
    ### BEGIN SOLUTION
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    which = (torch.ceil(conf.double() * n_bins).long() - 1).clamp(0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            gap = correct[inside].mean() - conf[inside].double().mean()
            ece += float(inside.sum()) / len(conf) * abs(float(gap))
    return ece
    ### END SOLUTION


# %%
check("q3", expected_calibration_error)

# %% [markdown]
# ## q4 (4 points): `fit_temperature(logits, labels)`
#
# Temperature scaling divides all logits by one $T > 0$, chosen on held-out data to minimise
# the mean negative log-likelihood $\frac{1}{N}\sum_i \big(\operatorname{logsumexp}(z_i / T) - z_{i, y_i} / T\big)$.
# Return that $T$ (a float) in $[0.05, 20]$ to within 1 %. The NLL is convex in $1/T$, so a
# golden-section search (or a fine grid) on $\log T$ finds it; compute in float64. $T > 1$
# softens an over-confident model, $T < 1$ sharpens an under-confident one: the public check
# has one of each.

# %%
def fit_temperature(logits, labels):
    """The temperature minimising the validation NLL of softmax(logits / T)."""
    ### BEGIN SOLUTION
    z, y = logits.double(), labels.long()

    def nll(log_t):
        zt = z / math.exp(log_t)
        return float((torch.logsumexp(zt, dim=1) - zt.gather(1, y[:, None])[:, 0]).mean())

    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(0.05), math.log(20.0)
    for _ in range(100):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(c) < nll(d):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)
    ### END SOLUTION


# %%
check("q4", fit_temperature)

# %% [markdown]
# ## q5 (5 points): an experiment — `calibration_experiment(seed)`
#
# An over-fitted joint model is over-confident; does temperature scaling fix it? On the
# modality-competition data of chapter 09's preview (`mmcourse.data.synergy.load_competition`:
# two modalities, 10 classes), follow this protocol exactly:
#
# 1. `data = load_competition(n_train=200, n_val=500, n_test=1000, seed=seed)`; for each split,
#    the input is `torch.cat([split.tensors["x1"], split.tensors["x2"]], 1)` (early fusion) and
#    the target `split.tensors["label"]`;
# 2. `torch.manual_seed(seed)`, then `model = nn.Sequential(nn.Linear(320, 64), nn.ReLU(), nn.Linear(64, 10))`;
# 3. 100 full-batch steps of `torch.optim.Adam(model.parameters(), lr=0.01)` on the training
#    split's mean cross-entropy (your `joint_cross_entropy`);
# 4. `T = fit_temperature(validation logits, validation labels)` (your q4);
# 5. return `{"temperature": T, "ece_before": ..., "ece_after": ...}`: the test ECE with 10
#    bins of `joint_probabilities(test logits)` and of `joint_probabilities(test logits, T)`.
#
# Softmax is off limits in this notebook: use your own functions (q1, q2, q4; the ECE may be
# yours or `mmcourse.metrics.expected_calibration_error`). The grader repeats the protocol on
# hidden seeds and accepts each value within **±0.03** (plus 10 %).

# %%
from mmcourse.data.synergy import load_competition
from mmcourse.metrics import expected_calibration_error as course_ece


def calibration_experiment(seed):
    """Test ECE of an over-fitted early-fusion MLP before and after temperature scaling."""
    ### BEGIN SOLUTION
    data = load_competition(n_train=200, n_val=500, n_test=1000, seed=seed)  # the call the instructions give

    def xy(split):
        return torch.cat([split.tensors["x1"], split.tensors["x2"]], 1), split.tensors["label"]

    (x, y), (x_val, y_val), (x_test, y_test) = xy(data.train), xy(data.val), xy(data.test)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        loss = joint_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z_val, z_test = model(x_val), model(x_test)
    t = fit_temperature(z_val, y_val)
    return {"temperature": t,
            "ece_before": course_ece(joint_probabilities(z_test), y_test, 10),
            "ece_after": course_ece(joint_probabilities(z_test, t), y_test, 10)}
    ### END SOLUTION


# %%
check("q5", calibration_experiment)
try:
    print(calibration_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# Your q5 model reaches a training loss near 0 and a test accuracy around 0.73, yet its test
# ECE before scaling is about 0.24. (a) What does an ECE of 0.24 mean for a user who reads the
# model's confidence? (b) Why is the fitted temperature well above 1? (c) Temperature scaling
# never changes the accuracy: why not, and why must $T$ be fitted on the validation split and
# not on the training split?

# %% [markdown] answer fr1
# (a) On average the stated confidence is 24 points away from the accuracy of the predictions
# made with that confidence: the model says "≈ 97 % sure" while being right ≈ 73 % of the time,
# so its probabilities cannot be used for decisions (abstaining, thresholds, combining models).
# (b) With 200 training samples in 320 dimensions the MLP separates the training set, and the
# cross-entropy then keeps growing the logits: test predictions are far more confident than
# they are accurate, and a large $T$ shrinks the logits back. (c) Dividing every logit of a
# sample by the same $T > 0$ keeps their order, so the argmax — and the accuracy — is
# unchanged. On the training split the model is (almost) always right with near-certain
# confidence, so the NLL there is minimised by an even *smaller* $T$ (sharper), the opposite of
# what the test data needs; held-out data shows the over-confidence.

# %% [markdown] rubric fr1
# - 1 point: (a) interprets ECE as the average gap between confidence and accuracy, with a
#   consequence for the user.
# - 1 point: (b) over-fitting / separable training data grows the logits → over-confidence.
# - 1 point: (c) dividing by $T > 0$ keeps the ranking, hence the argmax and the accuracy.
# - 1 point: (c) the training split is fitted (near zero loss), so it would call for $T \le 1$;
#   only held-out data reveals the over-confidence.

# %% summary
check.summary()
