# %% [markdown]
# # Exercise 13 — Patch embedding, cross-attention fusion and word order
#
# A multimodal transformer reads an image as a sequence of **patch tokens** and lets the
# question's words **attend** to them. You write both pieces from scratch, then run an
# experiment that shows why the *order* of the question's words matters.
#
# **How you are graded.** `check(...)` runs a few *public* cases; the grader calls your
# functions on *hidden* cases (other shapes, padded questions, other seeds) and compares them
# with the course's tested references (q3: with the instructor's run of the same protocol,
# within ±0.06). Only `import`s, `def`s and constants are taken from your notebook, so keep
# your functions self-contained. Calling a library function that does the work
# (`F.unfold`, `F.conv2d`, `F.scaled_dot_product_attention`, `nn.MultiheadAttention`) scores 0
# for that part. A free-response question at the end is graded by your instructor.

# %%
import torch
import torch.nn as nn

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("13_transformers_and_vqa")

# %% [markdown]
# ## q1 (3 points): `patchify(images, p)`
#
# Cut images `(B, C, H, W)` into non-overlapping `p × p` patches and flatten each:
# return `(B, N, C·p·p)` with `N = (H/p)(W/p)`. Patches go **row-major** over the patch grid
# (left to right, then top to bottom), and inside a patch the values are ordered **channel
# first**, then row, then column — the order `F.unfold` and a strided convolution use, so that
# `patchify(x, p) @ W.reshape(d, -1).T` equals `F.conv2d(x, W, stride=p)` flattened.
# Images need not be square (the public check has a 6 × 9 image).

# %%
def patchify(images, p):
    """(B, C, H, W) -> (B, (H/p)(W/p), C*p*p)."""
    ### BEGIN SOLUTION
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)
    ### END SOLUTION


# %%
check("q1", patchify)

# %% [markdown]
# ## q2 (3 points): `cross_attend(words, patches, w_q, w_k, w_v, word_mask)`
#
# One fusion step of a dual-stream transformer: the question's words `T (B, L, d)` read the
# image patches `Z (B, N, d)`,
#
# $$\alpha = \mathrm{softmax}_n\!\left(\frac{(T W_q)(Z W_k)^\top}{\sqrt{d_k}}\right), \qquad
#   T' = T + \alpha\, (Z W_v),$$
#
# with `w_q, w_k: (d, d_k)`, `w_v: (d, d)` (no biases) and the softmax over the patches.
# `word_mask (B, L)` is `True` at real words; a **padding word** (`False`) must get all-zero
# weights and keep its vector unchanged — even when the whole question is padding. Return
# `(T', α)`, shapes `(B, L, d)` and `(B, L, N)`. Large scores must not overflow.

# %%
def cross_attend(words, patches, w_q, w_k, w_v, word_mask):
    """Words attend to patches; padding words get no update."""
    ### BEGIN SOLUTION
    q, k, v = words @ w_q, patches @ w_k, patches @ w_v
    weights = torch.softmax(q @ k.transpose(-2, -1) / w_q.shape[1] ** 0.5, dim=-1)
    weights = weights * word_mask[..., None]
    return words + weights @ v, weights
    ### END SOLUTION


# %%
check("q2", cross_attend)

# %% [markdown]
# ## q3 (4 points): an experiment — `word_order_experiment(seed)`
#
# "Is the red circle above the blue square?" and "is the blue square above the red circle?"
# have the same bag of words and opposite answers. The course's `make_relation_data` (from
# `mmcourse.data.relation_task`, imported below) makes a toy version:
# a scene of 6 objects stacked in a random vertical order (each object's rank as a one-hot
# row, 36 numbers) and a question "is `x` above `y`?" about two different objects. Write
# `word_order_experiment(seed)` following this protocol exactly:
#
# 1. `train = make_relation_data(800, seed)`, `test = make_relation_data(400, seed + 1)`;
# 2. two question encodings, each concatenated after the scene:
#    *bag of words* `one_hot(x, 6) + one_hot(y, 6)` (6 numbers: order lost) and
#    *ordered* `[one_hot(x, 6), one_hot(y, 6)]` (12 numbers), as floats;
# 3. for each (bag of words first): `torch.manual_seed(seed)`, then
#    `nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 2))`, trained with
#    `torch.optim.Adam(lr=0.03)` for 150 full-batch steps of cross-entropy on the answers;
# 4. return `torch.tensor([bag-of-words test accuracy, ordered test accuracy])`.

# %%
from mmcourse.data.relation_task import make_relation_data

scene, x, y, answer = make_relation_data(3, 0)    # a look: each object's rank, the question, the answer
print(scene.reshape(3, 6, 6).argmax(2).tolist(), x.tolist(), y.tolist(), answer.tolist())


# %%
def word_order_experiment(seed):
    """Test accuracy of a bag-of-words and an ordered question encoding, as a tensor of two."""
    ### BEGIN SOLUTION
    def features(scene, x, y, ordered):
        if ordered:
            words = torch.cat([nn.functional.one_hot(x, 6), nn.functional.one_hot(y, 6)], dim=1)
        else:
            words = nn.functional.one_hot(x, 6) + nn.functional.one_hot(y, 6)
        return torch.cat([scene, words.float()], dim=1)

    train, test = make_relation_data(800, seed), make_relation_data(400, seed + 1)
    accuracies = []
    for ordered in (False, True):
        torch.manual_seed(seed)
        width = 48 if ordered else 42
        model = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        inputs = features(*train[:3], ordered)
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), train[3]).backward()
            opt.step()
        with torch.no_grad():
            pred = model(features(*test[:3], ordered)).argmax(1)
        accuracies.append((pred == test[3]).float().mean().item())
    return torch.tensor(accuracies)
    ### END SOLUTION


# %%
check("q3", word_order_experiment)
try:
    print(word_order_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 3
# ### fr1 (3 points, graded by your instructor)
#
# Your q3 result: the bag-of-words encoding stays near 0.5 while the ordered one is far above it.
# (a) Why can *no* model on the bag-of-words features beat chance on these questions, however
# large? (b) The single-stream transformer of chapter 13 also embeds each word separately —
# what in it plays the role of the "ordered" encoding, and what would happen to it on
# Shapes-QA's relation questions without that ingredient?

# %% [markdown] answer fr1
# (a) "Is x above y?" and "is y above x?" have the same features (same scene, same multi-hot
# vector) and opposite answers, and both are equally likely; any function of the features
# gives the same answer to both, so it is right on exactly one of each pair: 50 % in
# expectation, whatever its size. (b) The learned word-position embeddings $p_j$ added to the
# word embeddings: they make "red circle" in positions 3-4 differ from "red circle" in
# positions 7-8. Without them self-attention is permutation-equivariant over the words, the
# question becomes a bag of words again, and relation accuracy falls to chance.

# %% [markdown] rubric fr1
# 3 points: (a) 1.5 — identical inputs with opposite, equally likely answers ⇒ 50 % for any
# model (1 for "order is lost" without the argument why no model can do better);
# (b) 1.5 — names the position embeddings (1) and says relations drop to chance /
# permutation equivariance (0.5).

# %% summary
check.summary()
