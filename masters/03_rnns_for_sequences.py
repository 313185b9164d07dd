# %% [markdown]
# # Exercise 03 — One step of an Elman RNN, then a whole sequence
#
# An Elman RNN reads a sequence $x_1 \dots x_T$ one step at a time and carries a hidden state
#
# $$h_t = \tanh(x_t W^\top + h_{t-1} U^\top + b),$$
#
# with `W: (H, F)`, `U: (H, H)`, `b: (H,)` and a batch of rows `x_t: (B, F)`, `h: (B, H)`.
#
# **How you are graded.** `check(...)` runs a few *public* cases now; the grader calls your
# functions on *hidden* cases and compares them with the course's tested `ElmanCell` /
# `run_cell`. Each part scores its points times the fraction of hidden cases passed. Only
# `import`s, `def`s and constants are taken from your notebook. Using `nn.RNN`, `nn.RNNCell`,
# `torch.rnn_tanh` or the course's cells scores 0 for that part.

# %%
import torch

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("03_rnns_for_sequences")

# %% [markdown]
# ## q1 (3 points): `rnn_step(x_t, h_prev, W, U, b)`
#
# One step: return $h_t$, shape `(B, H)`.

# %%
def rnn_step(x_t, h_prev, W, U, b):
    """h_t = tanh(x_t W^T + h_prev U^T + b): (B, F), (B, H) -> (B, H)."""
    ### BEGIN SOLUTION
    return torch.tanh(x_t @ W.T + h_prev @ U.T + b)
    ### END SOLUTION


# %%
check("q1", rnn_step)

# %% [markdown]
# ## q2 (2 points): `rnn_forward(x, h0, W, U, b)`
#
# Unroll the cell over `x: (B, T, F)` from `h0: (B, H)`. Return the tuple
# `(outputs, h_T)`: every state stacked, `(B, T, H)` (`outputs[:, t]` is $h_{t+1}$), and the last
# state `(B, H)`. Reuse `rnn_step`.

# %%
def rnn_forward(x, h0, W, U, b):
    """Unrolled Elman RNN: (B, T, F), (B, H) -> ((B, T, H), (B, H))."""
    ### BEGIN SOLUTION
    h, states = h0, []
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, W, U, b)
        states.append(h)
    return torch.stack(states, dim=1), h
    ### END SOLUTION


# %%
check("q2", rnn_forward)

# %% summary
check.summary()
