"""Remedies for class imbalance: weight the rare classes up, or show them more often.

With class counts ``n_c``, ``N = Σ_c n_c`` samples and ``C`` classes:

* ``class_weights``: ``w_c = N / (C · n_c)`` (scikit-learn's "balanced"), used by
  ``weighted_cross_entropy``: ``L = Σ_i w_{y_i} CE_i / Σ_i w_{y_i}``;
* ``focal_loss``: ``L = Σ_i α_{y_i} (1 − p_i)^γ (−log p_i) / Σ_i α_{y_i}``, ``p_i = softmax(s_i)_{y_i}``:
  confident, easy samples (mostly of the majority classes) are down-weighted; ``γ = 0`` is CE;
* ``resample``: class-balanced over-sampling, every class drawn with replacement up to ``max_c n_c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality import class_counts


def class_weights(labels: Tensor, num_classes: int | None = None) -> Tensor:
    """``w_c = N / (C · n_c)``: 1 for every class when balanced, larger for rare classes."""
    labels = torch.as_tensor(labels)
    counts = class_counts(labels, num_classes).double()
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class_weights: classes {empty} have no samples; cannot weight them")
    return (len(labels) / (len(counts) * counts)).float()


def weighted_cross_entropy(weights: Tensor, target: str = "label"):
    """A ``fit`` loss: ``Σ_i w_{y_i} CE(s_i, y_i) / Σ_i w_{y_i}`` (PyTorch's ``weight=``)."""
    weights = torch.as_tensor(weights, dtype=torch.float32)

    def loss_fn(outputs, batch) -> Tensor:
        logits = outputs.logits.float()
        return F.cross_entropy(logits, batch[target], weight=weights.to(logits.device))

    return loss_fn


def focal_loss(gamma: float = 2.0, alpha: Tensor | None = None, target: str = "label"):
    """A ``fit`` loss: ``Σ_i α_{y_i} (1 − p_i)^γ (−log p_i) / Σ_i α_{y_i}`` (Lin et al., 2017)."""
    if float(gamma) < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    alpha = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)

    def loss_fn(outputs, batch) -> Tensor:
        logits = outputs.logits.float()
        y = batch[target]
        logp = torch.log_softmax(logits, dim=-1).gather(1, y[:, None]).squeeze(1)
        per_sample = -((1 - logp.exp()) ** float(gamma)) * logp
        a = torch.ones_like(per_sample) if alpha is None else alpha.to(logits.device)[y]
        return (a * per_sample).sum() / a.sum()

    return loss_fn


def resample(data: ModalDataset, *, target: str = "label", seed: int = 0) -> ModalDataset:
    """Class-balanced over-sampling: every class drawn (with replacement) up to the largest count;
    the original samples are all kept, then shuffled."""
    y = data.tensors[target]
    counts = class_counts(y)
    gen = torch.Generator().manual_seed(int(seed))
    index = []
    for c in torch.nonzero(counts).flatten().tolist():
        idx = torch.nonzero(y == c).flatten()
        extra = idx[torch.randint(len(idx), (int(counts.max()) - len(idx),), generator=gen)]
        index += [idx, extra]
    index = torch.cat(index)
    return data.subset(index[torch.randperm(len(index), generator=gen)])
