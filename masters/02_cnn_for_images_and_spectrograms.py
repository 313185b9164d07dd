# %% [markdown]
# # Exercise 02 — Convolution as unfold + matmul
#
# Chapter 02 built a convolution layer from two ideas: cut the input into patches (`F.unfold`)
# and multiply every patch by the flattened kernels (one matrix product). Here you write it
# yourself. For an input `x` of shape `(B, C, H, W)` and a weight `w` of shape `(O, C, kh, kw)`
#
# $$y[b, o, i, j] = \sum_{c, u, v} w[o, c, u, v]\; x_{\text{pad}}[b, c, s\,i + u, s\,j + v] + \text{bias}[o],$$
#
# with stride `s` and zero padding `p`, and an output of size
# $H_{out} = \lfloor (H + 2p - k_h) / s \rfloor + 1$ (likewise for the width).
#
# **How you are graded.** Each part names a function with a fixed signature. `check(...)` below
# each part runs a few *public* cases now. The grader calls your functions on *hidden* cases
# (other shapes and values) and compares them with PyTorch; each part scores its points times
# the fraction of hidden cases you pass. Only `import`s, `def`s and constants are taken from
# your notebook, so keep your functions self-contained (helper functions are fine). Calling the
# library function you are asked to write (here `F.conv2d`) scores 0 for that part.

# %%
import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("02_cnn_for_images_and_spectrograms")

# %% [markdown]
# ## q1 (4 points): `conv2d_unfold(x, weight, bias=None, stride=1, padding=0)`
#
# Return the same tensor as `F.conv2d(x, weight, bias, stride, padding)`, shape
# `(B, O, H_out, W_out)`, computed with `F.unfold` and one matrix product. `stride` and
# `padding` are ints; the kernel need not be square. `F.unfold(x, (kh, kw), padding=p, stride=s)`
# returns `(B, C·kh·kw, L)` with `L = H_out · W_out` patches.

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
# ## q2 (1 point): `conv_output_size(size, kernel, stride=1, padding=0)`
#
# The output length (an `int`) of a convolution along one axis of length `size`.

# %%
def conv_output_size(size, kernel, stride=1, padding=0):
    """floor((size + 2 padding - kernel) / stride) + 1."""
    ### BEGIN SOLUTION
    return (size + 2 * padding - kernel) // stride + 1
    ### END SOLUTION


# %%
check("q2", conv_output_size)

# %% [markdown]
# ## Try it
#
# A 28 × 28 digit through a 3 × 3 convolution with stride 2 and padding 1:

# %%
x = torch.randn(1, 1, 28, 28)
w = torch.randn(8, 1, 3, 3)
try:
    print(conv2d_unfold(x, w, stride=2, padding=1).shape, conv_output_size(28, 3, 2, 1))
except NotImplementedError:
    print("not implemented yet")

# %% summary
check.summary()
