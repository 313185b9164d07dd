"""The flag task: sequences in which one flagged step decides the label -- what attention pooling buys.

Each sequence has ``length`` steps of ``dim`` features drawn from ``N(0, 1)``; feature 0 is set to
0 everywhere except at one random step ``t*``, the *flag*, where it is 3. The label reads that
step only:

    x_{t,0} = 3 · 1[t = t*],    x_{t,j} ~ N(0, 1) (j ≥ 1),    y = 1[x_{t*,1} > 0].

Mean pooling divides the informative feature by ``length`` and adds the other steps' noise to it,
so a linear head on the mean stays near chance (about 0.6 with 10 steps); a learned query that
attends to the step with the flag reads ``x_{t*}`` itself and is nearly perfect (exercise 04).
"""

from __future__ import annotations

import torch

FLAG = 3.0       # the value of feature 0 at the flagged step


def make_flag_task(n: int, seed: int, length: int = 10, dim: int = 8):
    """``n`` sequences ``(n, length, dim)`` of noise; in each, one random step is *flagged*
    (feature 0 set to 3) and the label is whether that step's feature 1 is positive. Returns
    ``(x (n, length, dim) float32, labels (n,) int64)``; the same ``seed`` gives the same data."""
    for name, value, least in (("n", n, 1), ("length", length, 1), ("dim", dim, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"make_flag_task: {name} must be an int >= {least}, got {value!r}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, length, dim, generator=g)
    x[:, :, 0] = 0.0
    where = torch.randint(0, length, (n,), generator=g)
    x[torch.arange(n), where, 0] = FLAG
    labels = (x[torch.arange(n), where, 1] > 0).long()
    return x, labels
