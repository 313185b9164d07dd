"""Linear probing: a logistic-regression classifier on frozen features.

Features ``z_i = f(x_i)`` come from a pretrained tower that is not trained any further; only a
linear softmax classifier ``P(y = c | z) = softmax(W z + b)_c`` is fitted, by minimising the
L2-regularised cross-entropy (the objective of scikit-learn's ``LogisticRegression(C=C)``,
whose intercept ``b`` is not penalised):

    J(W, b) = C · Σ_i −log softmax(W z_i + b)_{y_i}  +  ½ ||W||²_F.

``J`` is convex, so the full-batch quasi-Newton method L-BFGS finds its minimum; the result
matches scikit-learn's (tested; with two classes scikit-learn fits one binary vector
``w = w_1 − w_2`` whose penalty is twice the softmax one, so there ``C`` is scikit-learn's
``2C``). ``LinearProbe`` keeps the fitted ``W, b`` and, under the model
contract, classifies a batch's features (``ModelOutput.logits = W z + b``).

``standardise=True`` (the default) first maps each feature to zero mean and unit variance over
the training rows, ``z' = (z − μ) / σ``, as practice does before a linear probe.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.models.output import ModelOutput

__all__ = ["LinearProbe", "fit_logistic_regression", "logistic_regression_gd"]


def _check_xy(features: Tensor, labels: Tensor, where: str) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        got = f"{tuple(features.shape)} {features.dtype}" if isinstance(features, Tensor) else type(features)
        raise ValueError(f"{where} expects features as a float tensor (n, dim), got {got}")
    if not isinstance(labels, Tensor) or labels.shape != (len(features),) or labels.is_floating_point():
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{where} expects integer labels ({len(features)},), one per feature row, "
                         f"got {got}")
    if len(features) == 0:
        raise ValueError(f"{where}: no training rows")
    if not torch.isfinite(features).all():
        raise ValueError(f"{where}: the features contain NaN or inf")


def fit_logistic_regression(features: Tensor, labels: Tensor, n_classes: int, *, C: float = 1.0,
                            max_iter: int = 200, tol: float = 1e-7) -> tuple[Tensor, Tensor]:
    """``(W (n_classes, dim), b (n_classes,))`` minimising ``C Σ_i CE(W z_i + b, y_i) + ½||W||²``
    by full-batch L-BFGS in float64. A class without rows simply gets low scores."""
    _check_xy(features, labels, "fit_logistic_regression")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
        raise ValueError(f"C (the inverse regularisation strength) must be > 0, got {C!r}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got "
                         f"{int(labels.min())}..{int(labels.max())}")
    z = features.detach().double().cpu()
    y = labels.detach().long().cpu()
    W = torch.zeros(n_classes, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    n = len(z)
    # the objective divided by C·n (same minimiser, better scaled for the line search)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ W.T + b, y) + (W * W).sum() / (2 * C * n)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return W.detach().float(), b.detach().float()


class LinearProbe(nn.Module):
    """A logistic-regression probe on frozen features: ``logits = W z' + b`` with ``z'`` the
    standardised ``z`` (see the module docstring). Build it, then ``fit(features, labels)``;
    ``forward(batch)`` reads ``batch[key]`` (``(B, dim)`` features) under the model contract."""

    def __init__(self, dim: int, n_classes: int, *, C: float = 1.0, standardise: bool = True,
                 key: str = "features"):
        super().__init__()
        self.dim, self.n_classes, self.C, self.standardise, self.key = dim, n_classes, C, standardise, key
        self.modalities = (key,)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.linear = nn.Linear(dim, n_classes)
        self.fitted = False

    def _scaled(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"LinearProbe expects features (batch, {self.dim}), got {tuple(z.shape)}")
        return (z.float() - self.mean) / self.std

    def fit(self, features: Tensor, labels: Tensor) -> LinearProbe:
        """Fit ``W, b`` on ``features (n, dim)`` and ``labels (n,)``; returns ``self``."""
        _check_xy(features, labels, "LinearProbe.fit")
        if features.shape[1] != self.dim:
            raise ValueError(f"LinearProbe.fit expects features (n, {self.dim}), got {tuple(features.shape)}")
        z = features.detach().float().cpu()
        if self.standardise:
            self.mean.copy_(z.mean(0))
            self.std.copy_(z.std(0, unbiased=False).clamp_min(1e-6) if len(z) > 1 else torch.ones(self.dim))
        W, b = fit_logistic_regression(self._scaled(z), labels, self.n_classes, C=self.C)
        with torch.no_grad():
            self.linear.weight.copy_(W)
            self.linear.bias.copy_(b)
        self.fitted = True
        return self

    def forward(self, batch: Mapping[str, Tensor] | Tensor) -> ModelOutput:
        z = batch[self.key] if isinstance(batch, Mapping) else batch
        return ModelOutput(logits=self.linear(self._scaled(z)))

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """The most probable class of each row, ``(n,)``."""
        if not self.fitted:
            raise RuntimeError("LinearProbe.predict before fit(): call probe.fit(features, labels)")
        return self(features).logits.argmax(1)


def logistic_regression_gd(features: Tensor, labels: Tensor, n_classes: int, *, C: float = 1.0,
                           steps: int = 200, lr: float = 0.1) -> tuple[Tensor, Tensor]:
    """The same objective, scaled by ``1/(Cn)``, minimised by plain full-batch gradient descent
    from ``W = 0, b = 0`` with the gradient written out (what exercise 11 asks for):

        P = softmax(Z W^T + b),   G = (P − Y) / n            (Y the one-hot labels)
        W ← W − lr · (G^T Z + W / (C n)),    b ← b − lr · Σ_i G_i

    ``steps`` updates; with enough of them it reaches ``fit_logistic_regression``'s minimum."""
    _check_xy(features, labels, "logistic_regression_gd")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    z = features.detach().double().cpu()
    y = F.one_hot(labels.detach().long().cpu(), n_classes).double()
    n = len(z)
    W = torch.zeros(n_classes, z.shape[1], dtype=torch.float64)
    b = torch.zeros(n_classes, dtype=torch.float64)
    for _ in range(steps):
        G = (torch.softmax(z @ W.T + b, dim=1) - y) / n
        W, b = W - lr * (G.T @ z + W / (C * n)), b - lr * G.sum(0)
    return W.float(), b.float()
