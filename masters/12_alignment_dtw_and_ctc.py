# %% [markdown]
# # Exercise 12 — DTW, the CTC forward recursion, and DTW as a recogniser
#
# **Dynamic time warping.** For sequences $x_1..x_N$ and $y_1..y_M$ of frames (rows of a
# tensor), with the cost $C_{ij} = \lVert x_i - y_j \rVert_2$:
#
# $$D_{1,1} = C_{1,1},\qquad D_{i,j} = C_{i,j} + \min(D_{i-1,j},\ D_{i,j-1},\ D_{i-1,j-1})$$
#
# ($D = \infty$ outside the grid); the DTW distance is $D_{N,M}$.
#
# **CTC.** For per-frame log-probabilities $\log y_t(k)$, $t = 1..T$, over $V$ symbols one of
# which is the blank $\varnothing$, and a target $l = l_1..l_S$ (no blanks), put a blank around
# every symbol, $l' = \varnothing\, l_1\, \varnothing \dots l_S\, \varnothing$, and run the
# forward recursion **in log space**:
#
# $$\alpha_1(0) = \log y_1(\varnothing),\quad \alpha_1(1) = \log y_1(l_1),\quad
# \alpha_1(s) = -\infty\ (s > 1)$$
# $$\alpha_t(s) = \log y_t(l'_s) + \operatorname{logsumexp}\big(\alpha_{t-1}(s),\
# \alpha_{t-1}(s-1),\ \alpha_{t-1}(s-2)\big)$$
#
# where the $s-2$ term is there only if $l'_s \ne \varnothing$ and $l'_s \ne l'_{s-2}$. The
# answer is $-\log p(l \mid x) = -\operatorname{logsumexp}(\alpha_T(2S), \alpha_T(2S-1))$.
#
# Watch for: a **repeated** symbol ("2 2") needs a blank in between, so the skip is forbidden
# there; a target of **length 1**; an input **just long enough** ($T = S +$ #repeats); the
# blank need **not** be symbol 0; and peaked log-probabilities whose products **underflow**
# (work with logs throughout, never `exp` then `log`).
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions on
# *hidden* cases with `mmcourse.alignment.dtw` (itself checked against `dtw-python`),
# `torch.nn.functional.ctc_loss`, and a reference nearest-template classifier. Only `import`s,
# `def`s and constants are taken from your notebook; calling a DTW library or `ctc_loss` scores 0.

# %%
import numpy as np
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("12_alignment_dtw_and_ctc")

# %% [markdown]
# ## q1 (3 points): `dtw_distance(x, y)`
#
# `x: (N, F)`, `y: (M, F)` float tensors → a float, the DTW distance $D_{N,M}$ with Euclidean
# frame costs. $N$ or $M$ may be 1.

# %%
def dtw_distance(x, y):
    """D[N, M] of D[i, j] = C[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1])."""
    ### BEGIN SOLUTION
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    cost = torch.cdist(x, y).tolist()                 # plain floats: the double loop stays fast
    n, m = len(cost), len(cost[0])
    inf = float("inf")
    D = [[inf] * (m + 1) for _ in range(n + 1)]
    D[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i][j] = cost[i - 1][j - 1] + min(D[i - 1][j], D[i][j - 1], D[i - 1][j - 1])
    return D[n][m]
    ### END SOLUTION


# %%
check("q1", dtw_distance)

# %% [markdown]
# ## q2 (4 points): `ctc_nll(log_probs, target, blank)`
#
# `log_probs: (T, V)` log-probabilities (rows are log-softmax outputs), `target`: a list of ints
# (no blanks), `blank`: the blank's index → a float, $-\log p(l \mid x)$. Every public and hidden
# target is reachable ($T \ge S +$ #repeats).

# %%
def ctc_nll(log_probs, target, blank):
    """-log p(target | x) by the CTC forward recursion in log space."""
    ### BEGIN SOLUTION
    lp = torch.as_tensor(log_probs, dtype=torch.float64)
    ext = [blank]
    for k in target:
        ext += [int(k), blank]
    ext = torch.tensor(ext)
    n_states = len(ext)
    skip = torch.zeros(n_states, dtype=torch.bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    neg = torch.full((n_states,), float("-inf"), dtype=torch.float64)
    alpha = neg.clone()
    alpha[:2] = lp[0, ext[:2]]
    for t in range(1, len(lp)):
        step = torch.cat([neg[:1], alpha[:-1]])                      # alpha_{t-1}(s-1)
        jump = torch.where(skip, torch.cat([neg[:2], alpha[:-2]]), neg)  # alpha_{t-1}(s-2)
        terms = torch.stack([alpha, step, jump])
        m = terms.max(0).values
        m_safe = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # all -inf: stays -inf
        alpha = lp[t, ext] + m_safe + torch.log(torch.exp(terms - m_safe).sum(0))
    ends = alpha[-2:]
    m = ends.max()
    return float(-(m + torch.log(torch.exp(ends - m).sum())))
    ### END SOLUTION


# %%
check("q2", ctc_nll)

# %% [markdown]
# ## q3 (3 points), an experiment: `dtw_word_accuracy(templates, template_labels, words, word_labels)`
#
# Is DTW a recogniser? Classify spoken digits of **unseen voices** by their nearest template.
#
# * `templates`: a list of `(frames_i, 32)` log-mel tensors, one spoken digit each, cut out of
#   training utterances with their true boundaries; `template_labels`: their digits (ints);
# * `words`: a list of `(frames_j, 32)` spoken digits by *other* voices (the test split);
#   `word_labels`: their digits.
#
# Label each word with the label of the template at the smallest DTW distance (your `q1`; the
# first such template if two tie) and return the fraction of words labelled correctly. The grader
# reruns your function on other voices (to 1e-6). Try it yourself with more templates: see the
# chapter's `digit_templates`.

# %%
def dtw_word_accuracy(templates, template_labels, words, word_labels):
    """1-nearest-neighbour accuracy of the words under the DTW distance to the templates."""
    ### BEGIN SOLUTION
    correct = 0
    for word, label in zip(words, word_labels):
        distances = [dtw_distance(word, t) for t in templates]
        best = min(range(len(templates)), key=lambda k: distances[k])
        correct += int(template_labels[best]) == int(label)
    return correct / len(words)
    ### END SOLUTION


# %%
check("q3", dtw_word_accuracy)

# %% [markdown] free-response q4 2
# ## q4 (2 points, graded by your instructor)
#
# Chapter 08's captioner aligns words to image regions with attention; this chapter's recogniser
# aligns digits to frames with CTC. In 4-6 sentences: what kind of alignment does each produce,
# what does each assume about order, and name one task where each is the right choice (and why
# the other would struggle there).

# %% [markdown] answer q4
# Attention gives a *soft* alignment: at each output step a distribution of weights over all
# input positions, in any order, learned as a by-product of predicting the next token. CTC gives
# a *hard*, *monotonic* alignment: every frame is assigned to exactly one symbol (or the blank)
# and the path only moves forward, so the output must follow the input's order and be no longer
# than it. Image captioning or VQA needs attention: image regions have no order, and one word
# may need several regions. Speech or handwriting recognition suits CTC: the transcript follows
# the signal in time, CTC decodes in one pass without an autoregressive decoder, and it yields
# forced alignments; attention there can skip or repeat words and has no monotonic guarantee.

# %% [markdown] rubric q4
# 2 points: soft (weights over all positions) vs hard (one symbol per frame) **and** monotonic /
# order-preserving for CTC vs unordered for attention; one sound task for each with a reason
# (e.g. captioning/VQA/translation with reordering for attention; speech/handwriting/keyword
# alignment for CTC). 1 point: the distinction is right but the tasks or reasons are missing or
# wrong, or only one of soft/hard and ordering is explained. 0: confuses the two, or says CTC
# needs frame-level labels.

# %% summary
check.summary()
