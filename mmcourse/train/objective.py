"""The training objective of a ``ModelOutput`` (see ``mmcourse.models.output``):

    L = out.loss                                                  if the model computed one,
    L = w · CE(out.logits, y) + Σ_k mean_{i: a_ik > 0} CE(out.aux_logits[k]_i, y_i)   otherwise,

with ``CE(s, y) = −log softmax(s)_y`` and ``y = batch[target]``. ``check_output`` and
``check_targets`` turn a wrong model output or wrong labels into a clear error instead of a
raw PyTorch one; ``fit`` and ``evaluate`` call them once, on the first batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.models.output import ModelOutput

Batch = dict[str, Tensor]
LossFn = Callable[[ModelOutput, Batch], Tensor]


def check_output(model: nn.Module, outputs) -> ModelOutput:
    """``outputs`` if it is a ``ModelOutput``, else a ``TypeError`` naming the contract."""
    if not isinstance(outputs, ModelOutput):
        raise TypeError(
            f"{type(model).__name__}.forward(batch) returned a {type(outputs).__name__}; every model "
            "trained by fit()/evaluate() must return mmcourse.models.ModelOutput(logits=..., "
            "loss=...)"
        )
    return outputs


def check_targets(outputs: ModelOutput, batch: Mapping[str, Tensor], target: str) -> None:
    """The targets of a classification loss must be integer class ids in ``[0, C)``, where ``C``
    is the number of scores the model gives. Reads one value back from the device: call it once."""
    if outputs.loss is not None or outputs.logits is None:
        return
    if target not in batch:
        raise KeyError(f"the loss needs the target {target!r} in the batch; the batch has "
                       f"{list(batch)} (pass fit(..., target=<key>))")
    y = batch[target]
    if not isinstance(y, Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        got = y.dtype if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"target {target!r} must hold integer class ids (int64), got {got}; "
                        f"convert with .long() if the values are whole numbers")
    num_classes = outputs.logits.shape[-1]
    if y.numel():
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"target {target!r} holds class ids from {low} to {high}, but the "
                             f"model scores {num_classes} classes (ids 0..{num_classes - 1})")


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    if logits.dim() == 3:  # (B, T, V) sequence scores against (B, T) targets
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    return F.cross_entropy(logits.float(), y)


def output_loss(outputs: ModelOutput, y: Tensor | None) -> Tensor:
    """The objective ``L`` of the module docstring for one batch with targets ``y``."""
    if outputs.loss is not None:
        return outputs.loss
    if y is None:
        raise ValueError("this model computes no loss of its own, so the batch needs a target")
    terms = []
    if outputs.logits is not None and outputs.logits_weight:
        terms.append(outputs.logits_weight * _cross_entropy(outputs.logits, y))
    for name, scores in outputs.aux_logits.items():
        per_sample = F.cross_entropy(scores.float(), y, reduction="none")
        weight = outputs.aux_weights.get(name)
        if weight is None:
            terms.append(per_sample.mean())
        else:
            terms.append((weight * per_sample).sum() / weight.sum().clamp(min=1))
    if not terms:
        raise ValueError("the model output has neither a loss nor logits to train on")
    return torch.stack(terms).sum() if len(terms) > 1 else terms[0]


def default_loss(target: str = "label") -> LossFn:
    """What ``fit()`` and ``evaluate()`` minimise unless told otherwise: ``loss_fn(outputs, batch)``
    is the output's own loss if it gave one, else cross-entropy of its logits and auxiliary
    logits against ``batch[target]`` (``output_loss``)."""

    def loss_fn(outputs: ModelOutput, batch: Batch) -> Tensor:
        if outputs.loss is None and target not in batch:
            raise KeyError(f"the loss needs the target {target!r} in the batch; the batch has "
                           f"{list(batch)}")
        return output_loss(outputs, batch.get(target))

    return loss_fn


def classification_loss(target: str = "label") -> LossFn:
    """Plain cross-entropy of the main logits, ``CE(outputs.logits, batch[target])``, and nothing
    else: no auxiliary heads, no loss of the model's own (e.g. late fusion trained only through
    its combined scores, the "naive joint training" that OGM-GE improves on)."""

    def loss_fn(outputs: ModelOutput, batch: Batch) -> Tensor:
        if outputs.logits is None:
            raise ValueError("classification_loss needs a model output with logits")
        if target not in batch:
            raise KeyError(f"the loss needs the target {target!r} in the batch; the batch has "
                           f"{list(batch)}")
        return _cross_entropy(outputs.logits, batch[target])

    return loss_fn
