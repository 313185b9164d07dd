# %% [markdown]
# # Exercise 11 — Zero-shot prediction, linear probes and label efficiency
#
# A dual encoder pretrained on (image, caption) pairs maps an image to a unit vector $u_x$ and
# a prompt $p$ to a unit vector $v_p$. **Zero-shot classification** writes each class $c$ as a
# set of prompts $P_c$ and ensembles them:
#
# $$w_c = \frac{\bar v_c}{\lVert \bar v_c \rVert}, \quad \bar v_c = \frac{1}{|P_c|} \sum_{p \in P_c} \frac{v_p}{\lVert v_p \rVert}, \qquad \hat y(x) = \arg\max_c \; \frac{u_x \cdot w_c}{\lVert u_x \rVert}.$$
#
# A **linear probe** keeps the pretrained features $z = f(x)$ frozen and fits multinomial
# logistic regression with an L2 penalty (the objective of scikit-learn's
# `LogisticRegression(C=C)`; the intercept $b$ is not penalised):
#
# $$J(W, b) = \frac{1}{n} \sum_i -\log \operatorname{softmax}(W z_i + b)_{y_i} + \frac{1}{2Cn} \lVert W \rVert_F^2 .$$
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with the course's `mmcourse.models.zero_shot.zero_shot_predict`,
# `mmcourse.probe.logistic_regression_gd` and `mmcourse.label_efficiency.probe_accuracy`.
# Only `import`s, `def`s and constants are taken from your notebook; graded functions cannot
# import `mmcourse` or scikit-learn.

# %%
import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("11_pretraining_and_zero_shot")

# %% [markdown]
# ## q1 (3 points): `zero_shot_classify(image_emb, prompt_emb, prompt_class, n_classes)`
#
# `image_emb: (N, d)`, `prompt_emb: (P, d)` (**not** unit vectors: normalise them), `prompt_class:
# (P,)` long, the class of each prompt (every class has at least one), `n_classes` an int → a
# `LongTensor (N,)` of predicted classes. Careful: classes can have different numbers of
# prompts, and a prompt's length must not give it more weight (the first public case checks
# both).

# %%
def zero_shot_classify(image_emb, prompt_emb, prompt_class, n_classes):
    """argmax_c cos(u_x, w_c), w_c the normalised mean of class c's unit prompt embeddings."""
    ### BEGIN SOLUTION
    unit = F.normalize(prompt_emb, dim=-1)
    w = torch.stack([unit[prompt_class == c].mean(0) for c in range(n_classes)])
    w = F.normalize(w, dim=-1)
    return (F.normalize(image_emb, dim=-1) @ w.T).argmax(dim=1)
    ### END SOLUTION


# %%
check("q1", zero_shot_classify)

# %% [markdown]
# ## q2 (3 points): `linear_probe(features, labels, n_classes, C, steps, lr)`
#
# Fit the probe by plain **gradient descent**, with the gradient written out. Start from
# $W = 0$, $b = 0$ and repeat `steps` times, with $Y$ the one-hot labels and $n$ the number of rows:
#
# $$P = \operatorname{softmax}(Z W^\top + b), \quad G = (P - Y)/n, \quad
# W \leftarrow W - \mathrm{lr}\,\big(G^\top Z + W/(Cn)\big), \quad b \leftarrow b - \mathrm{lr} \textstyle\sum_i G_i .$$
#
# `features: (n, d)`, `labels: (n,)` long, → the probabilities `softmax(Z W^T + b)` of the
# training rows, `(n, n_classes)`. Work in float64 and return float32. With `steps = 0` every
# probability is `1 / n_classes`; with a small `C` the penalty $W/(Cn)$ keeps $W$ small (public
# cases check both). Put the fitting in a helper `fit_probe(...) -> (W, b)`: q3 uses it.

# %%
def fit_probe(features, labels, n_classes, C, steps, lr):
    """(W, b) after `steps` gradient-descent steps on the L2-regularised cross-entropy."""
    ### BEGIN SOLUTION
    z = features.double()
    y = F.one_hot(labels, n_classes).double()
    n = len(z)
    W = torch.zeros(n_classes, z.shape[1], dtype=torch.float64)
    b = torch.zeros(n_classes, dtype=torch.float64)
    for _ in range(steps):
        G = (torch.softmax(z @ W.T + b, dim=1) - y) / n
        W, b = W - lr * (G.T @ z + W / (C * n)), b - lr * G.sum(0)
    return W.float(), b.float()
    ### END SOLUTION


def linear_probe(features, labels, n_classes, C, steps, lr):
    """Probabilities of the fitted probe on the training rows."""
    ### BEGIN SOLUTION
    W, b = fit_probe(features, labels, n_classes, C, steps, lr)
    return torch.softmax(features @ W.T + b, dim=1)
    ### END SOLUTION


# %%
check("q2", linear_probe)

# %% [markdown]
# ## q3 (2 points): `probe_accuracy(pool_emb, pool_labels, test_emb, test_labels, k)`, an experiment
#
# How well do **pretrained** features count shapes with only `k` labels per class? The cases
# hold the unit image embeddings of the shipped `shapes_clip` dual encoder
# (`mmcourse.pretrained.load("shapes_clip").encode_image`) of two sets of counting scenes
# (`mmcourse.data.shapes.holdout.load_counting`: 1, 2 or 3 objects, labels 0, 1, 2): a labelled
# pool and a test set. Take the **first `k` rows of each class** of the pool, fit your probe
# (`fit_probe` with `C = 10`, `steps = 300`, `lr = 2.0`), and return the test accuracy of
# `argmax(test_emb W^T + b)` as a float. The grader reruns it on embeddings of scenes drawn
# with other seeds, at other `k`, and accepts answers within 0.04 of the reference.
#
# Then try it yourself: how does the accuracy grow with `k`?

# %%
def probe_accuracy(pool_emb, pool_labels, test_emb, test_labels, k):
    """Test accuracy of a probe fitted on the first k pool rows of each class."""
    ### BEGIN SOLUTION
    n_classes = int(pool_labels.max()) + 1
    idx = torch.cat([torch.nonzero(pool_labels == c).flatten()[:k] for c in range(n_classes)])
    W, b = fit_probe(pool_emb[idx], pool_labels[idx], n_classes, 10.0, 300, 2.0)
    return float(((test_emb @ W.T + b).argmax(1) == test_labels).float().mean())
    ### END SOLUTION


# %%
check("q3", probe_accuracy)

# %% [markdown] free-response unseen 2
# ## q4 (2 points, free response)
#
# The pretrained model never saw a caption with a green triangle, yet it names the colour of a
# green triangle correctly most of the time. Explain (4–6 sentences) what about the training
# data and the model makes this possible, why the accuracy on such unseen combinations is still
# a little lower than on seen ones, and why averaging the 8 prompts "a {size} green {kind}"
# helps more than the single prompt "a large green circle".

# %% [markdown] answer unseen
# Every colour and every kind occur in pretraining, only not together: "green" appears with
# circles, squares and crosses and "triangle" with five other colours. InfoNCE makes the image
# embedding predict every word of the caption, and the cheapest way to do that across so many
# partners is to encode colour and kind in (nearly) separate directions, so a green triangle's
# embedding lands near both "green ..." and "... triangle" prompts. The factorisation is not
# perfect: the towers only ever saw "green" co-occur with three kinds, so some of the colour
# direction is entangled with the kind, and the unseen combination falls a little further from
# its prompts. One full prompt such as "a large green circle" also carries the kind "circle" and
# the size "large", which the image may not share; averaging over all sizes and kinds cancels
# those nuisance directions and keeps the colour, so the ensembled class embedding is closer to
# what all green objects have in common.

# %% [markdown] rubric unseen
# 2 points: (a) each attribute is seen in pretraining with other partners, so the model can
# learn separate (compositional) colour and kind directions; (b) the gap comes from imperfect
# factorisation / entanglement (the unseen combination is out of distribution); (c) ensembling
# averages out the nuisance attributes (size, kind) of a single prompt. 1 point for two of the
# three; 0 for restating the result without a reason.

# %% summary
check.summary()
