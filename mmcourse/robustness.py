"""Remedies for data-quality problems, and how to measure what survives a corruption.

**Imbalance** (``y`` has class counts ``n_c``, ``N = Σ_c n_c``, ``C`` classes):

* ``class_weights``: ``w_c = N / (C · n_c)`` (scikit-learn's "balanced"), used by
  ``weighted_cross_entropy``: ``L = Σ_i w_{y_i} CE_i / Σ_i w_{y_i}``;
* ``focal_loss``: ``L = Σ_i α_{y_i} (1 − p_i)^γ (−log p_i) / Σ_i α_{y_i}``, ``p_i = softmax(s_i)_{y_i}``:
  confident, easy samples (mostly of the majority classes) are down-weighted; ``γ = 0`` is CE;
* ``resample``: class-balanced over-sampling, every class drawn with replacement up to ``max_c n_c``.

**Missing modalities** (a mask ``m_mask``, 1 = present; see ``mmcourse.data.quality``):

* ``impute``: fill absent values with zeros or the training mean and drop the mask;
  ``RidgeImputer`` *learns* the fill from another modality with ridge regression,
  ``W = argmin ||Y − XW − b||² + λ||W||²`` (closed form on centred data,
  ``W = (XᵀX + λI)⁻¹ XᵀY``);
* ``ModalityDropout``: during training each modality of each sample is marked absent with
  probability ``p`` (at least one kept), so the model learns to answer without it.

**Noise and scale**: ``augment`` trains on clean + corrupted copies; ``fit_normaliser`` /
``normalise`` put every modality on zero mean and unit variance with training statistics,
``x' = (x − μ_m) / σ_m``.

**Misalignment**: ``pair_scores`` is the cosine similarity of each pair's embeddings in a shared
space, ``sim_i = u_i · v_i / (||u_i|| ||v_i||)``; ``detect_mispaired`` flags the lowest-scoring pairs.

**Modality imbalance** -- ``OGMGE`` (on-the-fly gradient modulation with generalisation
enhancement, Peng et al., 2022). For a late fusion ``s = Σ_m s_m`` trained jointly, the
per-modality confidence in the true class over a batch is ``S_m = Σ_i softmax(s_m(x_i))_{y_i}``;
with ``ρ_m = S_m / mean_{m'≠m} S_{m'}`` the gradient of modality ``m``'s branch is scaled by

    k_m = 1 − tanh(α · max(ρ_m − 1, 0)),

so the dominant modality (``ρ > 1``) is slowed down and the others catch up; GE adds Gaussian noise
with the gradient's own standard deviation to the slowed branch, ``g ← k g + N(0, std(g)²)``.
Modulation needs plain SGD: Adam divides by a running gradient scale and undoes a constant ``k``.

**Measurement** -- ``robustness_curve`` evaluates a model on ``corruption(data, level)`` for
each level; MultiBench's two summaries (Liang et al., 2021), with levels rescaled to ``t ∈ [0, 1]``:

* relative robustness ``RR = ∫_0^1 acc(t) dt`` (area under the accuracy curve, trapezoids);
* effective robustness ``ER = ∫_0^1 [acc(t) − (acc_b(t) + acc(0) − acc_b(0))] dt``: the area
  above a baseline's curve (late fusion) shifted to the model's clean accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset
from mmcourse.data.quality import MASK_SUFFIX, class_counts, concat, mask_of
from mmcourse.train import evaluate

__all__ = [
    "OGMGE", "ModalityDropout", "RidgeImputer", "RobustnessCurve", "augment", "class_weights",
    "detect_mispaired", "fit_normaliser", "focal_loss", "impute", "normalise", "pair_scores",
    "plot_robustness", "resample", "robustness_curve", "weighted_cross_entropy",
]


# --------------------------------------------------------------------------------------------
# imbalance
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# missing modalities
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# noise and scale
# --------------------------------------------------------------------------------------------
def augment(data: ModalDataset, corruption: Callable[..., ModalDataset], levels: Sequence,
            *, seed: int = 0) -> ModalDataset:
    """Noise-augmented training data: the clean split plus one corrupted copy, whose samples are
    divided at random into ``len(levels)`` parts, part ``j`` corrupted at ``levels[j]``."""
    if not levels:
        raise ValueError("augment needs at least one corruption level")
    gen = torch.Generator().manual_seed(int(seed))
    parts = torch.randperm(len(data), generator=gen).chunk(len(levels))
    noisy = [corruption(data.subset(idx), level) for idx, level in zip(parts, levels)]
    return concat([data, *noisy])


def fit_normaliser(train: ModalDataset, modalities: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``{m: (μ_m, σ_m)}``: each modality's mean and standard deviation over the training split."""
    stats = {}
    for m in modalities:
        x = train.tensors[m]
        if not x.is_floating_point():
            raise TypeError(f"fit_normaliser: {m!r} is {x.dtype}; only float modalities can be normalised")
        x = x[mask_of(train, m)].double()
        stats[m] = (float(x.mean()), float(x.std()) + 1e-8)
    return stats


def normalise(data: ModalDataset, stats: Mapping[str, tuple[float, float]]) -> ModalDataset:
    """``x' = (x − μ_m) / σ_m`` for each modality in ``stats`` (from ``fit_normaliser``)."""
    tensors = dict(data.tensors)
    for m, (mu, sigma) in stats.items():
        tensors[m] = (data.tensors[m] - mu) / sigma
    return ModalDataset(tensors, name=data.name, meta=data.meta, shapes=data.shapes)


# --------------------------------------------------------------------------------------------
# misalignment
# --------------------------------------------------------------------------------------------
def pair_scores(emb_a: Tensor, emb_b: Tensor) -> Tensor:
    """``(N,)`` cosine similarity of each pair ``(a_i, b_i)`` in a shared embedding space."""
    if emb_a.shape != emb_b.shape or emb_a.dim() != 2:
        raise ValueError(f"pair_scores needs two (N, d) embeddings, got {tuple(emb_a.shape)} "
                         f"and {tuple(emb_b.shape)}")
    return F.cosine_similarity(emb_a.float(), emb_b.float(), dim=1)


def detect_mispaired(emb_a: Tensor, emb_b: Tensor, fraction: float) -> Tensor:
    """``(N,)`` bool: the ``fraction`` of pairs with the lowest ``pair_scores``, flagged as mispaired."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"detect_mispaired: fraction must be in [0, 1], got {fraction}")
    scores = pair_scores(emb_a, emb_b)
    flagged = torch.zeros(len(scores), dtype=torch.bool)
    flagged[torch.argsort(scores, stable=True)[: round(fraction * len(scores))]] = True
    return flagged


# --------------------------------------------------------------------------------------------
# modality imbalance: OGM-GE
# --------------------------------------------------------------------------------------------
class OGMGE:
    """On-the-fly gradient modulation (+ generalisation enhancement), as an ``after_backward`` hook
    for ``fit``: ``fit(model, ..., optimizer=SGD(...), after_backward=OGMGE(alpha=1.0))``.

    The model's output must carry per-modality scores in ``outputs.extras["modality_scores"]``
    (``LateFusion``'s does) and the model its branches in ``model.encoders[m]`` /
    ``model.heads[m]``. Each step computes ``k_m = 1 − tanh(α · max(ρ_m − 1, 0))`` (see the module
    docstring) and multiplies the gradients of modality ``m``'s branch by it; with ``ge=True`` the
    slowed branch also gets noise ``N(0, std(g)²)``. ``history`` records ``{m: k_m}`` for every
    step, ``ratios`` the ``ρ_m``.
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


# --------------------------------------------------------------------------------------------
# measuring robustness
# --------------------------------------------------------------------------------------------
def _area(levels: np.ndarray, values: np.ndarray) -> float:
    """Trapezoidal area under ``values`` against levels rescaled to ``t ∈ [0, 1]``."""
    if len(levels) < 2:
        return float(values[0])
    t = (levels - levels[0]) / (levels[-1] - levels[0])
    return float(np.sum((t[1:] - t[:-1]) * (values[1:] + values[:-1]) / 2))


@dataclass
class RobustnessCurve:
    """Accuracy at each corruption level (``levels[0]`` should be the clean level)."""

    levels: list
    accuracy: list[float]
    name: str = "model"
    extra: dict = field(default_factory=dict)

    @property
    def clean(self) -> float:
        return self.accuracy[0]

    def relative_robustness(self) -> float:
        """``RR = ∫_0^1 acc(t) dt``: area under accuracy vs level (levels rescaled to [0, 1])."""
        return _area(np.asarray(self.levels, float), np.asarray(self.accuracy, float))

    def effective_robustness(self, baseline: RobustnessCurve) -> float:
        """``ER = ∫ [acc(t) − acc_b(t) − (acc(0) − acc_b(0))] dt``: accuracy kept beyond a baseline
        (late fusion) whose curve is shifted to the same clean accuracy. > 0: more robust."""
        if list(baseline.levels) != list(self.levels):
            raise ValueError(f"effective_robustness needs curves on the same levels, got {self.levels} "
                             f"and {baseline.levels}")
        shifted = np.asarray(baseline.accuracy, float) + (self.clean - baseline.clean)
        return _area(np.asarray(self.levels, float), np.asarray(self.accuracy, float) - shifted)


def robustness_curve(model: nn.Module, data: ModalDataset, corruption: Callable[..., ModalDataset],
                     levels: Sequence, *, name: str | None = None, batch_size: int = 512,
                     loss_fn=None) -> RobustnessCurve:
    """Test accuracy of ``model`` on ``corruption(data, level)`` for every level.

    ``corruption`` is any ``(data, level) -> data`` function, e.g.
    ``functools.partial(quality.gaussian_noise, modality="image")``.
    """
    if len(levels) < 1:
        raise ValueError("robustness_curve needs at least one level")
    if not callable(corruption):
        raise TypeError(f"corruption must be a function (data, level) -> data, "
                        f"got {type(corruption).__name__}")
    accuracy = []
    for level in levels:
        scores = evaluate(model, corruption(data, level), batch_size=batch_size, loss_fn=loss_fn)
        if "accuracy" not in scores:
            raise ValueError("robustness_curve needs a classifier: evaluate() gave no accuracy")
        accuracy.append(scores["accuracy"])
    return RobustnessCurve(list(levels), accuracy, name or type(model).__name__)


def plot_robustness(curves: Sequence[RobustnessCurve], *, baseline: RobustnessCurve | None = None,
                    xlabel: str = "corruption level", ax=None, title: str | None = None, chance=None):
    """Accuracy against corruption level for each curve, RR (and ER against ``baseline``) in the legend."""
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_robustness needs at least one curve")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    for curve in curves:
        label = f"{curve.name}  RR={curve.relative_robustness():.3f}"
        if baseline is not None and curve is not baseline:
            label += f"  ER={curve.effective_robustness(baseline):+.3f}"
        ax.plot(curve.levels, curve.accuracy, marker="o", ms=4, label=label,
                ls="--" if curve is baseline else "-")
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(title or "robustness curves")
    ax.figure.tight_layout()
    return ax.figure
