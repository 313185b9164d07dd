# %% [markdown]
# # Exercise 02 — Convolution and pooling as unfold; what weight sharing buys
#
# Chapter 02 built a convolution layer from two ideas: cut the input into patches (`F.unfold`)
# and multiply every patch by the flattened kernels (one matrix product). Here you write it
# yourself, then max pooling the same way, then you measure what a convolution's weight sharing
# is worth on images whose pattern moves. For an input `x` of shape `(B, C, H, W)` and a weight
# `w` of shape `(O, C, kh, kw)`
#
# $$y[b, o, i, j] = \sum_{c, u, v} w[o, c, u, v]\; x_{\text{pad}}[b, c, s\,i + u, s\,j + v] + \text{bias}[o],$$
#
# with stride `s` and zero padding `p`, and an output of size
# $H_{out} = \lfloor (H + 2p - k_h) / s \rfloor + 1$ (likewise for the width).
#
# **How you are graded.** Each part names a function with a fixed signature. `check(...)` below
# each part runs a few *public* cases now. The grader calls your functions on *hidden* cases
# (other shapes, values and seeds) and compares them with PyTorch (q1, q2) or with the
# instructor's run of the same protocol (q3, within the stated margin); each part scores its
# points times the fraction of hidden cases you pass. Only `import`s, `def`s and constants are
# taken from your notebook, so keep your functions self-contained (helper functions are fine).
# Calling the library function you are asked to write (`F.conv2d`, `nn.Conv2d`, `F.max_pool2d`,
# `nn.MaxPool2d`) anywhere in this notebook scores 0 for that part. Two free-response questions
# at the end are graded by your instructor.

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("02_cnn_for_images_and_spectrograms")

# %% [markdown]
# ## q1 (6 points): `conv2d_unfold(x, weight, bias=None, stride=1, padding=0)`
#
# Return the same tensor as `F.conv2d(x, weight, bias, stride, padding)`, shape
# `(B, O, H_out, W_out)`, computed with `F.unfold` and one matrix product. `stride` and
# `padding` are ints; the kernel need not be square, and the sizes need not divide evenly (the
# output size is a *floor*). `F.unfold(x, (kh, kw), padding=p, stride=s)` returns
# `(B, C·kh·kw, L)` with `L = H_out · W_out` patches.

# %%
def conv2d_unfold(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution as unfold + matmul: (B, C, H, W), (O, C, kh, kw) -> (B, O, H_out, W_out)."""
    ### BEGIN SOLUTION
    out_ch, _, kh, kw = weight.shape
    h_out = (x.shape[2] + 2 * padding - kh) // stride + 1
    w_out = (x.shape[3] + 2 * padding - kw) // stride + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)    # (B, C·kh·kw, L)
    y = weight.reshape(out_ch, -1) @ cols                             # (B, O, L)
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(x.shape[0], out_ch, h_out, w_out)
    ### END SOLUTION


# %%
check("q1", conv2d_unfold)

# %% [markdown]
# ## q2 (4 points): `max_pool2d(x, kernel, stride=None)`
#
# Max pooling is the chapter's second building block: each output is the largest value in a
# `kernel × kernel` window, per channel, so a feature detected anywhere in the window survives a
# small shift. Return the same tensor as `F.max_pool2d(x, kernel, stride)` (no padding; `stride`
# defaults to `kernel`; rows and columns that do not fill a window are dropped), using
# `F.unfold`. Careful: unfold mixes the channels in one axis (view `x` as `(B·C, 1, H, W)` to
# keep them apart), and a window of negative values has a *negative* maximum — an answer that
# starts a running max at 0 or clamps at 0 fails the public check.

# %%
def max_pool2d(x, kernel, stride=None):
    """Max pooling as unfold + max: (B, C, H, W) -> (B, C, H_out, W_out)."""
    ### BEGIN SOLUTION
    stride = kernel if stride is None else stride
    b, c, h, w = x.shape
    h_out, w_out = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    cols = F.unfold(x.reshape(b * c, 1, h, w), kernel, stride=stride)     # (B·C, k·k, L)
    return cols.max(dim=1).values.reshape(b, c, h_out, w_out)
    ### END SOLUTION


# %%
check("q2", max_pool2d)

# %% [markdown]
# ## q3 (5 points): an experiment — `shift_experiment(seed)`
#
# Does weight sharing help when the pattern appears where training never showed it? The
# helper below draws noisy 12 × 12 images with one bar: horizontal (label 0) or vertical
# (label 1). Write `shift_experiment(seed)` that follows this protocol exactly:
#
# 1. training data `make_bars(256, seed, anywhere=False)` (every bar in the left third),
#    test data `make_bars(512, seed + 1, anywhere=True)` (bars anywhere);
# 2. `torch.manual_seed(seed)`, then a **CNN**: `conv = UnfoldConv2d(1, 8, 3)` from
#    `mmcourse.models` (your q1, packaged) and `head = nn.Linear(8, 2)`, with
#    `logits = head(relu(conv(x)).amax(dim=(2, 3)))` (global max pooling over positions);
# 3. `torch.manual_seed(seed)` again, then an **MLP**:
#    `nn.Sequential(nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Linear(32, 2))`;
# 4. train each with `torch.optim.Adam(its parameters, lr=0.02)` for 60 full-batch steps of
#    `F.cross_entropy` on the training data;
# 5. return `{"cnn": test accuracy, "mlp": test accuracy}` as Python floats.
#
# The grader runs the same protocol on hidden seeds and accepts each accuracy within **±0.06**.
# It should take about a second (`nn.Conv2d` is off limits here, `UnfoldConv2d` is not).

# %%
def make_bars(n: int, seed: int, anywhere: bool = True, size: int = 12, noise: float = 0.6):
    """``n`` noisy ``size × size`` images, each with one bar of 4 bright pixels: horizontal (label
    0) or vertical (label 1). With ``anywhere=False`` every bar lies in the left third of the
    image. Returns ``(images (n, 1, size, size) float32, labels (n,) int64)``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = noise * torch.randn(n, 1, size, size, generator=g)
    row = torch.randint(0, size - 4, (n, 1), generator=g)
    col = torch.randint(0, size - 4 if anywhere else size // 3 - 3, (n, 1), generator=g)
    step = torch.arange(4)
    vertical = labels[:, None] == 1
    rows = torch.where(vertical, row + step, row)          # (n, 4) pixels of each bar
    cols = torch.where(vertical, col, col + step)
    images[torch.arange(n)[:, None], 0, rows, cols] += 2.0
    return images, labels


# %%
from mmcourse.models import UnfoldConv2d


def shift_experiment(seed):
    """Train a CNN and an MLP on bars in the left third; test accuracy on bars anywhere."""
    ### BEGIN SOLUTION
    x, y = make_bars(256, seed, anywhere=False)
    x_test, y_test = make_bars(512, seed + 1, anywhere=True)

    def train(forward, params):
        opt = torch.optim.Adam(params, lr=0.02)
        for _ in range(60):
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    torch.manual_seed(seed)
    conv, head = UnfoldConv2d(1, 8, 3), nn.Linear(8, 2)

    def cnn(z):
        return head(torch.relu(conv(z)).amax(dim=(2, 3)))

    train(cnn, [*conv.parameters(), *head.parameters()])
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Linear(32, 2))
    train(mlp, list(mlp.parameters()))
    with torch.no_grad():
        return {"cnn": float((cnn(x_test).argmax(1) == y_test).float().mean()),
                "mlp": float((mlp(x_test).argmax(1) == y_test).float().mean())}
    ### END SOLUTION


# %%
check("q3", shift_experiment)
try:
    print(shift_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 3
# ### fr1 (3 points, graded by your instructor)
#
# Your q3 result: the CNN is near-perfect on bars anywhere, the MLP near chance, although both
# fit the training bars. Explain *which two properties* of the CNN make the difference, and
# what would happen to the CNN if you replaced the global max pooling by flattening the
# feature map into the linear head.

# %% [markdown] answer fr1
# The convolution applies the *same* 3 × 3 filters at every position (weight sharing), so a
# filter that learned "horizontal bar" on the left responds the same way on the right: the
# feature map is translation *equivariant*. Global max pooling then keeps only the strongest
# response wherever it is, so the head sees a translation *invariant* summary. The MLP has one
# weight per pixel; pixels right of the left third were only ever noise in training, so their
# weights are untrained and its test accuracy is near 0.5. Flattening the feature map instead
# of pooling would give the head one weight per position again: the filters would still
# detect the bar, but the head's weights for unseen positions would be untrained, and accuracy
# on bars anywhere would fall towards the MLP's.

# %% [markdown] rubric fr1
# - 1 point: weight sharing / the same filter at every position (equivariance).
# - 1 point: global max pooling discards the position (invariance) and the MLP has per-pixel
#   weights that never saw bars on the right.
# - 1 point: flattening reintroduces position-specific head weights, so the gain mostly
#   disappears (accept "accuracy drops towards chance" with that reason).

# %% [markdown] free-response fr2 2
# ### fr2 (2 points, graded by your instructor)
#
# Two 3 × 3 convolutions (stride 1) followed by a 2 × 2 max pool (stride 2): what is the
# receptive field of one output unit, in input pixels? Show the computation, and say why a
# spectrogram CNN (chapter 02's audio branch) wants a receptive field that covers several
# frequency bands.

# %% [markdown] answer fr2
# Receptive fields grow by $(k - 1) \times$ (product of earlier strides): $1 + 2 + 2 = 5$
# after the two convolutions, then $5 + (2 - 1) \cdot 1 = 6$ after the pool: a 6 × 6 patch.
# A spoken digit is recognised from the *shape* of formants across frequency bands and time;
# a unit that sees several bands at once can respond to that pattern, one that sees a single
# band cannot.

# %% [markdown] rubric fr2
# - 1 point: 6 × 6 with a correct computation (5 × 5 after the convolutions).
# - 1 point: formants / harmonics span several frequency bands; a pattern across bands needs a
#   receptive field that covers them.

# %% summary
check.summary()
