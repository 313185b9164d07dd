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
# logistic regression with an L2 penalty (scikit-learn's `LogisticRegression(C=C)`; the
# intercept $b$ is not penalised):
#
# $$J(W, b) = \frac{1}{n} \sum_i -\log \operatorname{softmax}(W z_i + b)_{y_i} + \frac{1}{2Cn} \lVert W \rVert_F^2 .$$
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases with the course's `mmcourse.models.zero_shot.zero_shot_predict`,
# `mmcourse.probe.fit_logistic_regression` and `mmcourse.label_efficiency.probe_experiment`.
# Only `import`s, `def`s and constants are taken from your notebook; calling those functions
# (or scikit-learn in q2) scores 0 for that part.

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
# ## q2 (3 points): `linear_probe(features, labels, n_classes, C)`
#
# `features: (n, d)` float, `labels: (n,)` long in `0..n_classes-1`, `C > 0` → the fitted
# model's probabilities on the training rows, `softmax(W z_i + b)`, a `(n, n_classes)` tensor.
# Minimise $J$ above *to convergence* (it is convex: there is one answer, and the grader
# compares probabilities to within 0.002). Do not use scikit-learn here.

# %%
def linear_probe(features, labels, n_classes, C):
    """Probabilities of L2-regularised multinomial logistic regression fitted on (features, labels)."""
    ### BEGIN SOLUTION
    z = features.double()
    W = torch.zeros(n_classes, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ W.T + b, labels) + (W * W).sum() / (2 * C * len(z))
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(z @ W.T + b, dim=1).float().detach()
    ### END SOLUTION


# %%
check("q2", linear_probe)

# %% [markdown]
# ## q3 (2 points, an experiment): `probe_accuracy(k, seed)`
#
# Use the package to measure how well a linear probe on **pretrained** features counts shapes
# with only `k` labels per class:
#
# 1. the frozen image tower: `mmcourse.pretrained.load("shapes_clip").image_encoder`;
# 2. the counting task: `pool = load_counting(20, seed=seed)` and
#    `test = load_counting(40, seed=seed + 100)` (`mmcourse.data.shapes.holdout`; the label is
#    the number of objects minus one, 3 classes);
# 3. `k` labels per class: `few_shot_indices(pool.tensors["label"], k, seed)`
#    (`mmcourse.label_efficiency`, which also has `frozen_features`);
# 4. `mmcourse.probe.LinearProbe(dim, 3, C=0.1)` fitted on those features;
#
# and return the test accuracy as a float. The grader reruns it with other `k` and seeds and
# accepts answers within 0.05 of the reference. It must take a few seconds at most.

# %%
def probe_accuracy(k, seed):
    """Test accuracy of a linear probe on frozen pretrained features, k labels per class."""
    ### BEGIN SOLUTION
    from mmcourse import pretrained
    from mmcourse.data.shapes.holdout import load_counting
    from mmcourse.label_efficiency import few_shot_indices, frozen_features
    from mmcourse.probe import LinearProbe

    encoder = pretrained.load("shapes_clip").image_encoder
    pool, test = load_counting(20, seed=seed), load_counting(40, seed=seed + 100)
    idx = few_shot_indices(pool.tensors["label"], k, seed)
    z_pool = frozen_features(encoder, pool.tensors["image"])
    z_test = frozen_features(encoder, test.tensors["image"])
    probe = LinearProbe(z_pool.shape[1], 3, C=0.1).fit(z_pool[idx], pool.tensors["label"][idx])
    return float((probe.predict(z_test) == test.tensors["label"]).float().mean())
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
