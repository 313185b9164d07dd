"""Modality imbalance: slow down the dominant modality's gradients (OGM-GE).

On-the-fly gradient modulation with generalisation enhancement (Peng et al., 2022). For a late
fusion ``s = Σ_m s_m`` trained jointly, the per-modality confidence in the true class over a
batch is ``S_m = Σ_i softmax(s_m(x_i))_{y_i}``; with ``γ_m = S_m / mean_{m'≠m} S_{m'}`` the
gradient of modality ``m``'s branch is scaled by

    k_m = 1 − tanh(α · max(γ_m − 1, 0)),

so the dominant modality (``γ_m > 1``) is slowed down and the others catch up; GE adds Gaussian noise
with the gradient's own standard deviation to the slowed branch, ``g ← k g + N(0, std(g)²)``.
Modulation needs plain SGD: Adam divides by a running gradient scale and undoes a constant ``k``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn


class OGMGE:
    """On-the-fly gradient modulation (+ generalisation enhancement), as an ``after_backward`` hook
    for ``fit``: ``fit(model, ..., optimizer=SGD(...), after_backward=OGMGE(alpha=1.0))``.

    The model's output must carry per-modality scores in ``outputs.extras["modality_scores"]``
    (``LateFusion``'s does), and the model its branches in ``model.encoders[m]`` /
    ``model.heads[m]``: the hook reads the outputs of the step, never state kept by the model. Each
    step computes ``k_m = 1 − tanh(α · max(γ_m − 1, 0))`` (see the module docstring) and multiplies the
    gradients of modality ``m``'s branch by it; with ``ge=True`` the slowed branch also gets noise
    ``N(0, std(g)²)``. ``history`` records ``{m: k_m}`` for every step, ``ratios`` the ``γ_m``.
    """

    def __init__(self, alpha: float = 1.0, *, ge: bool = True, target: str = "label", seed: int = 0):
        if alpha < 0:
            raise ValueError(f"OGMGE: alpha must be >= 0, got {alpha}")
        self.alpha, self.ge, self.target = float(alpha), bool(ge), target
        self.generator = torch.Generator().manual_seed(int(seed))
        self.history: list[dict[str, float]] = []
        self.ratios: list[dict[str, float]] = []

    def coefficients(self, modality_scores: Mapping[str, Tensor], y: Tensor) -> tuple[dict, dict]:
        """``({m: k_m}, {m: ρ_m})`` for one batch."""
        if len(modality_scores) < 2:
            raise ValueError("OGMGE needs at least two modalities' scores")
        conf = {m: torch.softmax(s.detach().float(), -1).gather(1, y[:, None]).sum()
                for m, s in modality_scores.items()}
        rho, k = {}, {}
        for m in conf:
            others = torch.stack([c for o, c in conf.items() if o != m]).mean()
            rho[m] = float(conf[m] / others.clamp(min=1e-12))
            k[m] = 1.0 - float(np.tanh(self.alpha * max(rho[m] - 1.0, 0.0)))
        return k, rho

    def __call__(self, model: nn.Module, batch, outputs) -> None:
        scores = outputs.extras.get("modality_scores")
        if not scores:
            raise TypeError(f"OGMGE needs per-modality scores in the model's output "
                            f"(extras['modality_scores'], as LateFusion gives); "
                            f"{type(model).__name__}'s output has none")
        k, rho = self.coefficients(scores, batch[self.target])
        self.history.append(k)
        self.ratios.append(rho)
        for m, k_m in k.items():
            if k_m >= 1.0:
                continue
            for branch in (model.encoders[m], model.heads[m]):
                for p in branch.parameters():
                    if p.grad is None:
                        continue
                    std = float(p.grad.std()) if p.grad.numel() > 1 else 0.0
                    p.grad.mul_(k_m)
                    if self.ge and std > 0:
                        noise = torch.randn(p.grad.shape, generator=self.generator)
                        p.grad.add_(noise.to(p.grad.device, p.grad.dtype) * std)

    def mean_coefficients(self, steps_per_epoch: int) -> dict[str, list[float]]:
        """Per-epoch mean of ``k_m``, for a plot of how hard each modality was slowed."""
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1")
        out = {}
        for m in (self.history[0] if self.history else {}):
            ks = np.array([h[m] for h in self.history])
            n = len(ks) // steps_per_epoch
            out[m] = ks[: n * steps_per_epoch].reshape(n, steps_per_epoch).mean(1).tolist()
        return out
