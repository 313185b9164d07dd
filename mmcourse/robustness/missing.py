"""Remedies for missing modalities: fill the gap, or learn to answer without it.

A modality ``m`` is absent where its mask ``m_mask`` is 0 (see ``mmcourse.data.quality``).

* ``impute``: fill absent values with zeros or the training mean and drop the mask;
  ``RidgeImputer`` *learns* the fill from another modality with ridge regression,
  ``W = argmin ||Y − XW − b||² + λ||W||²`` (closed form on centred data,
  ``W = (XᵀX + λI)⁻¹ XᵀY``);
* ``ModalityDropout``: during training each modality of each sample is marked absent with
  probability ``p`` (at least one kept), so the model learns to answer without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality import MASK_SUFFIX, mask_of


def _without_mask(data: ModalDataset, modality: str, values: Tensor) -> ModalDataset:
    tensors = {k: v for k, v in data.tensors.items() if k != modality + MASK_SUFFIX}
    tensors[modality] = values
    return ModalDataset(tensors, name=data.name, meta=data.meta, shapes=data.shapes)


def impute(data: ModalDataset, modality: str, method: str = "mean",
           reference: ModalDataset | None = None) -> ModalDataset:
    """Fill ``modality`` where it is absent and drop its mask, so a model reads the filled values.

    ``method="zero"``: ``x = 0``; ``"mean"``: ``x = mean of reference[modality]`` over its present
    samples (pass the *training* split as ``reference``; default: ``data`` itself).
    """
    if modality not in data:
        raise KeyError(f"impute: no modality {modality!r} in split {data.name!r}; it has {list(data.keys)}")
    x, present = data.tensors[modality], mask_of(data, modality)
    if method == "zero":
        fill = torch.zeros_like(x[:1])
    elif method == "mean":
        ref = reference if reference is not None else data
        ref_present = mask_of(ref, modality)
        if not ref_present.any():
            raise ValueError(f"impute: {modality!r} is absent from every reference sample; no mean to use")
        fill = ref.tensors[modality][ref_present].float().mean(0, keepdim=True).to(x.dtype)
    else:
        raise ValueError(f"impute: method must be 'zero' or 'mean' (or use RidgeImputer), got {method!r}")
    view = (-1,) + (1,) * (x.dim() - 1)
    return _without_mask(data, modality, torch.where(present.view(view), x, fill))


class RidgeImputer:
    """Learned imputation: predict modality ``target`` from modality ``source`` with ridge regression.

    ``fit(train)`` solves ``min_W,b ||Y − XW − b||² + λ||W||²`` on the samples where both are
    present (``X``, ``Y`` the flattened modalities), the same estimator as scikit-learn's
    ``Ridge(alpha=λ)``; ``fill(data)`` replaces absent ``target`` values by ``XW + b``.
    """

    def __init__(self, source: str, target: str, ridge: float = 10.0):
        if ridge < 0:
            raise ValueError(f"RidgeImputer: ridge must be >= 0, got {ridge}")
        self.source, self.target, self.ridge = source, target, float(ridge)
        self.weight: Tensor | None = None
        self.bias: Tensor | None = None

    def fit(self, train: ModalDataset) -> RidgeImputer:
        both = mask_of(train, self.source) & mask_of(train, self.target)
        if both.sum() < 2:
            raise ValueError("RidgeImputer.fit needs at least 2 samples with both modalities present")
        X = train.tensors[self.source][both].flatten(1).double()
        Y = train.tensors[self.target][both].flatten(1).double()
        mx, my = X.mean(0), Y.mean(0)
        Xc, Yc = X - mx, Y - my
        A = Xc.T @ Xc + self.ridge * torch.eye(X.shape[1], dtype=X.dtype)
        self.weight = torch.linalg.solve(A, Xc.T @ Yc)                       # (D_x, D_y)
        self.bias = my - mx @ self.weight
        return self

    def predict(self, x: Tensor) -> Tensor:
        if self.weight is None:
            raise RuntimeError("RidgeImputer: call fit(train) before predict/fill")
        return (x.flatten(1).double() @ self.weight + self.bias).float()

    def fill(self, data: ModalDataset) -> ModalDataset:
        if not mask_of(data, self.source).all():
            raise ValueError(f"RidgeImputer.fill: the source {self.source!r} must be present everywhere")
        x = data.tensors[self.target]
        guess = self.predict(data.tensors[self.source]).view(x.shape).to(x.dtype)
        present = mask_of(data, self.target).view((-1,) + (1,) * (x.dim() - 1))
        return _without_mask(data, self.target, torch.where(present, x, guess))


class ModalityDropout(nn.Module):
    """Wrap a fusion model: in training, each modality of each sample is absent with probability
    ``p`` (its ``m_mask`` set to False; at least one modality kept per sample). In evaluation the
    wrapper is transparent. The wrapped model's ``ModelOutput`` is returned as it is (its own
    loss and auxiliary heads included), so ``fit()`` trains it exactly as the bare model."""

    def __init__(self, model: nn.Module, p: float = 0.3, modalities: Sequence[str] | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"ModalityDropout: p must be in [0, 1), got {p}")
        self.model, self.p = model, float(p)
        self.modalities = tuple(modalities or model.modalities)

    def forward(self, batch):
        if self.training and self.p > 0:
            batch = dict(batch)
            size = len(batch["label"]) if "label" in batch else len(batch[self.modalities[0]])
            dev = next(t.device for t in batch.values() if isinstance(t, Tensor))
            keep = torch.rand(size, len(self.modalities), device=dev) >= self.p
            none = ~keep.any(1)
            if none.any():                                        # keep one at random
                pick = torch.randint(len(self.modalities), (size,), device=dev)
                keep[none, pick[none]] = True
            for j, m in enumerate(self.modalities):
                old = batch.get(m + MASK_SUFFIX)
                batch[m + MASK_SUFFIX] = keep[:, j] if old is None else keep[:, j] & old.bool()
        return self.model(batch)
