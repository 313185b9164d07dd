# %% [markdown]
# # Exercise 03 — An RNN over a padded batch, a GRU step, and where gradients go
#
# An Elman RNN reads a sequence $x_1 \dots x_T$ one step at a time and carries a hidden state
#
# $$h_t = \tanh(x_t W^\top + h_{t-1} U^\top + b),$$
#
# with `W: (H, F)`, `U: (H, H)`, `b: (H,)` and a batch of rows `x_t: (B, F)`, `h: (B, H)`.
# Chapter 03 then replaced the plain update by the gated one of a GRU, whose update gate
# decides how much of the old state to keep, and measured how the gradient of $h_T$ with
# respect to early inputs vanishes.
#
# **How you are graded.** `check(...)` runs a few *public* cases now; the grader calls your
# functions on *hidden* cases and compares them with the course's tested `ElmanCell` /
# `GRUCell` / `run_cell` (q1, q2) or with the instructor's run of the protocol (q3, within the
# stated margin). Each part scores its points times the fraction of hidden cases passed. Only
# `import`s, `def`s and constants are taken from your notebook. In q1 and q2, using `nn.RNN`,
# `nn.RNNCell`, `nn.GRU(Cell)`, `torch.rnn_tanh`, `torch.gru_cell` or the course's cells scores
# 0 for that part. A free-response question at the end is graded by your instructor.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("03_rnns_for_sequences")

# %% [markdown]
# ## q1 (6 points): `rnn_forward(x, lengths, h0, W, U, b)`
#
# A batch of sequences of different lengths is padded to the longest: `x: (B, T, F)`, and
# `lengths: (B,)` (ints, `1 ≤ lengths[i] ≤ T`) says how many steps of row `i` are real. Run the
# Elman update from `h0: (B, H)` and return `(outputs, h_last)`:
#
# - `outputs: (B, T, H)`: $h_t$ at the real steps, **zeros** at the padded ones;
# - `h_last: (B, H)`: each sequence's state after its **own last real step**.
#
# The trap: running the padded steps like real ones changes the state of the short sequences
# (the padding is fed in as if it were data), and `outputs[:, -1]` is then not their final
# state. The public check has a batch with lengths 5, 2 and 1.

# %%
def rnn_forward(x, lengths, h0, W, U, b):
    """Elman RNN over a padded batch -> (outputs (B, T, H), h_last (B, H))."""
    ### BEGIN SOLUTION
    B, T, _ = x.shape
    h, outputs = h0, []
    for t in range(T):
        new = torch.tanh(x[:, t] @ W.T + h @ U.T + b)
        real = (t < lengths)[:, None]                    # (B, 1): is step t real for row i?
        h = torch.where(real, new, h)
        outputs.append(torch.where(real, new, torch.zeros_like(new)))
    return torch.stack(outputs, dim=1), h
    ### END SOLUTION


# %%
check("q1", rnn_forward)

# %% [markdown]
# ## q2 (5 points): `gru_step(x, h, W, U, b_x, b_h)`
#
# One GRU step with PyTorch's equations and layout: `W: (3H, F)`, `U: (3H, H)`,
# `b_x, b_h: (3H,)`, each stacked as the blocks (reset `r`, update `z`, candidate `n`):
#
# $$r = \sigma(x W_r^\top + b_r + h U_r^\top + c_r), \quad
#   z = \sigma(x W_z^\top + b_z + h U_z^\top + c_z),$$
# $$n = \tanh\big(x W_n^\top + b_n + r \odot (h U_n^\top + c_n)\big), \quad
#   h' = (1 - z) \odot n + z \odot h,$$
#
# where $b = $ `b_x` and $c = $ `b_h`. The reset gate multiplies the hidden half **bias
# included** ($c_n$ inside the product): the public check uses a non-zero $c_n$, so putting
# $c_n$ outside fails it.

# %%
def gru_step(x, h, W, U, b_x, b_h):
    """One GRU step: (B, F), (B, H) -> (B, H)."""
    ### BEGIN SOLUTION
    xr, xz, xn = (x @ W.T + b_x).chunk(3, dim=-1)
    hr, hz, hn = (h @ U.T + b_h).chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h
    ### END SOLUTION


# %%
check("q2", gru_step)

# %% [markdown]
# ## q3 (5 points): an experiment — `memory_experiment(seed)`
#
# How much does $h_{40}$ still depend on $x_1$? Measure it with the package: for each of
#
# - `"elman"`: `ElmanCell(4, 16)`;
# - `"gru"`: `GRUCell(4, 16)`;
# - `"gru_remember"`: `GRUCell(4, 16)` whose **update-gate** input bias `cell.b_x[16:32]` is
#   then increased by 4 (in place, under `torch.no_grad()`), so that $z \approx 1$ at the start,
#
# call `torch.manual_seed(seed)` just before building the cell, then
# the gradient norms `gradient_through_time(cell, T=40, batch=8, seed=seed)` (from `mmcourse.models`; entry
# `t - 1` is $\lVert \partial h_T / \partial x_t \rVert$) and report the number of decades the
# gradient loses over the sequence, `log10(g[-1] / g[0])`, as a Python float. Return
# `{"elman": ..., "gru": ..., "gru_remember": ...}`. The grader repeats this on hidden seeds
# and accepts each value within **±0.1** (plus 2 %).

# %%
from mmcourse.models import ElmanCell, GRUCell, gradient_through_time


def memory_experiment(seed):
    """Decades lost by ||dh_T/dx_t|| from t = T to t = 1, for three cells."""
    ### BEGIN SOLUTION
    out = {}
    for name, kind, gate_bias in (("elman", ElmanCell, 0.0), ("gru", GRUCell, 0.0),
                                  ("gru_remember", GRUCell, 4.0)):
        torch.manual_seed(seed)
        cell = kind(4, 16)
        with torch.no_grad():
            cell.b_x[16:32] += gate_bias
        g = gradient_through_time(cell, T=40, batch=8, seed=seed)
        out[name] = float(torch.log10(g[-1] / g[0]))
    return out
    ### END SOLUTION


# %%
check("q3", memory_experiment)
try:
    print(memory_experiment(0))
except NotImplementedError:
    print("not implemented yet")

# %% [markdown] free-response fr1 4
# ### fr1 (4 points, graded by your instructor)
#
# Interpret your q3 numbers. Why does a fresh GRU lose almost as many decades as the Elman
# cell, while the one with an open update gate loses almost none? Use the GRU equation for
# $\partial h' / \partial h$, and say what training has to learn for a GRU to remember the first
# step of a long sequence.

# %% [markdown] answer fr1
# Both fresh cells lose 7–10 decades over 40 steps; the GRU with $b_z + 4$ loses well under
# one. In a GRU, $h' = (1 - z) \odot n + z \odot h$, so $\partial h'/\partial h = \operatorname{diag}(z)
# + (\text{terms through } n, r, z)$: the direct path multiplies the gradient by $z$ at every
# step. A fresh GRU has $z \approx \sigma(0) = 0.5$, so the gradient shrinks by about half per
# step ($0.5^{40} \approx 10^{-12}$, partly compensated by the other paths) — almost like the
# Elman cell, whose Jacobian $\operatorname{diag}(1 - h^2) U$ has a norm below one. With
# $z \approx \sigma(4) \approx 0.98$ the direct path is nearly the identity ($0.98^{40} \approx
# 0.45$), so the gradient — and the information about $x_1$ — survives. Gating only helps once
# training has learned to open the update gate ($z \to 1$) on the units and steps that must
# carry information, and to close it where new input should overwrite the state.

# %% [markdown] rubric fr1
# - 1 point: quotes the measured numbers (Elman and fresh GRU lose many decades, the opened GRU
#   less than one).
# - 1 point: the direct path of $\partial h'/\partial h$ is $\operatorname{diag}(z)$.
# - 1 point: fresh $z \approx 0.5$ shrinks the gradient geometrically; $z \approx 1$ keeps it.
# - 1 point: training must learn to open the update gate where information must be kept
#   (accept "learn a large update-gate bias" / "learn when to keep vs overwrite").

# %% summary
check.summary()
