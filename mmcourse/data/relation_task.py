"""The relation task: "is x above y?" about a stacked scene -- where a bag of words loses the answer.

A scene stacks 6 objects in a random vertical order; row ``o`` of the scene is the one-hot rank of
object ``o`` (0 = top), 36 numbers in all. A question names two different objects ``x`` and ``y``:

    answer = 1[rank(x) < rank(y)]    ("x is above y").

"Is x above y?" and "is y above x?" have the same bag of words and opposite answers, so a model
that sums the question's words is at chance, while one that keeps their order can be right
(exercise 13's experiment).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_OBJECTS = 6


def make_relation_data(n: int, seed: int):
    """``n`` scenes and questions: ``(scene (n, 36) float32, x (n,) int64, y (n,) int64,
    answer (n,) int64)``, ``x != y`` in every row; the same ``seed`` gives the same data."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"make_relation_data: n must be an int >= 1, got {n!r}")
    g = torch.Generator().manual_seed(int(seed))
    rank = torch.argsort(torch.rand(n, N_OBJECTS, generator=g), dim=1)      # rank[i, obj]: 0 = top
    scene = F.one_hot(rank, N_OBJECTS).float().reshape(n, N_OBJECTS * N_OBJECTS)
    pair = torch.argsort(torch.rand(n, N_OBJECTS, generator=g), dim=1)[:, :2]
    x, y = pair[:, 0], pair[:, 1]
    answer = (rank.gather(1, x[:, None]) < rank.gather(1, y[:, None])).long().squeeze(1)
    return scene, x, y, answer
