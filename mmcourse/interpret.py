"""Looking inside a trained multimodal classifier: gradient saliency and modality ablation.

**Saliency** (Simonyan et al., 2014). For a classifier with class scores ``s_c(x)`` (logits) and
an input modality ``x_m`` (e.g. an image), the saliency map of class ``c`` is the magnitude of
the gradient of that class's score with respect to every input value:

    S_c(x) = | ∂ s_c(x) / ∂ x_m |          (same shape as x_m)

A large value says "changing this pixel a little would change the score a lot" -- a local,
first-order statement, not a proof that the model *uses* the pixel.

**Modality ablation.** Remove one modality at a time and measure what is lost. With ``acc(S)`` the
accuracy when only the modalities in ``S`` are present (the others are passed as ``None``, which
every ``mmcourse.models.fusion`` model understands as "absent"):

    contribution(m) = acc(all) − acc(all \\ {m})          (leave-one-out)
    alone(m)        = acc({m})                             (that modality only)

A modality can be useful alone yet contribute nothing once the others are there (redundancy),
or contribute only together with another one (synergy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset
from mmcourse.tensors import model_device
from mmcourse.train import iterate_batches
from mmcourse.train.objective import check_output

__all__ = ["modality_ablation", "saliency"]


def _logits(model: nn.Module, batch) -> Tensor:
    return check_output(model, model(batch)).logits


def saliency(model: nn.Module, batch: Mapping[str, Tensor], modality: str = "image",
             target: int | Tensor | None = None, *, absolute: bool = True) -> Tensor:
    """``|∂ s_c(x) / ∂ x_m|`` for every sample of ``batch``, shape ``batch[modality].shape``.

    ``model(batch)`` must return a ``ModelOutput`` with logits ``(B, C)``. ``target``: the
    class ``c`` -- an int for every sample, a ``(B,)`` tensor, or ``None`` for each sample's
    predicted class ``argmax_c s_c(x)``. ``absolute=False`` returns the signed gradient. The
    model runs in eval mode (no dropout; samples do not interact, so summing the scores of the
    batch gives each sample's own gradient); its mode is restored afterwards. Gradients of the
    model's parameters are left untouched.
    """
    if not isinstance(batch, Mapping):
        raise TypeError(f"saliency expects a batch dict of modality tensors, got {type(batch).__name__}")
    if modality not in batch or not isinstance(batch[modality], Tensor):
        raise KeyError(f"saliency: the batch has no tensor {modality!r}; it has {list(batch)}")
    x = batch[modality]
    if not x.is_floating_point():
        raise ValueError(
            f"saliency needs a float modality to differentiate, but {modality!r} is {x.dtype} "
            "(token ids have no gradient; ablate them instead)"
        )
    dev = model_device(model)
    x = x.detach().to(dev).clone().requires_grad_(True)
    inputs = {k: (v.to(dev) if isinstance(v, Tensor) else v) for k, v in batch.items()}
    inputs[modality] = x
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            scores = _logits(model, inputs)
            if not isinstance(scores, Tensor) or scores.dim() != 2 or scores.shape[0] != x.shape[0]:
                got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
                raise ValueError(f"saliency expects the model to return logits ({x.shape[0]}, C), got {got}")
            if target is None:
                classes = scores.argmax(dim=1)
            else:
                classes = torch.as_tensor(target, device=dev).long().expand(scores.shape[0])
                if int(classes.min()) < 0 or int(classes.max()) >= scores.shape[1]:
                    raise ValueError(
                        f"saliency: target classes must lie in [0, {scores.shape[1]}), got "
                        f"{sorted(set(classes.tolist()))}"
                    )
            picked = scores.gather(1, classes[:, None]).sum()       # Σ_i s_{c_i}(x_i)
            (grad,) = torch.autograd.grad(picked, x)
    finally:
        model.train(was_training)
    return grad.abs() if absolute else grad


@torch.no_grad()
def _accuracy_with(model: nn.Module, data: ModalDataset, absent: Sequence[str], target: str,
                   batch_size: int) -> float:
    dev = model_device(model)
    correct = total = 0
    for batch in iterate_batches(data, batch_size, dev=dev):
        batch = {**batch, **{m: None for m in absent}}
        pred = _logits(model, batch).argmax(dim=1)
        correct += int((pred == batch[target]).sum())
        total += len(pred)
    return correct / total


def modality_ablation(model: nn.Module, data: ModalDataset, modalities: Sequence[str] | None = None,
                      *, target: str = "label", batch_size: int = 512) -> dict:
    """Accuracy of ``model`` on ``data`` with every modality, without each one, and with each
    one alone (absent modalities are passed as ``None``).

    Returns ``{"all": acc, "without": {m: acc}, "alone": {m: acc}, "contribution": {m: Δ_m}}``
    with ``Δ_m = acc(all) − acc(all \\ {m})``. ``modalities`` defaults to ``model.modalities``.
    The model's train/eval mode is restored afterwards.
    """
    if not isinstance(data, ModalDataset):
        raise TypeError(f"modality_ablation expects a ModalDataset split, got {type(data).__name__}")
    modalities = tuple(modalities if modalities is not None else getattr(model, "modalities", ()))
    if not modalities:
        raise ValueError("modality_ablation needs the modalities to ablate (the model declares none)")
    missing = [m for m in (*modalities, target) if m not in data]
    if missing:
        raise KeyError(f"modality_ablation: the data has no {missing}; it has {list(data.keys)}")
    was_training = model.training
    model.eval()
    try:
        data = data.to(model_device(model))
        full = _accuracy_with(model, data, (), target, batch_size)
        without = {m: _accuracy_with(model, data, (m,), target, batch_size) for m in modalities}
        alone = {m: _accuracy_with(model, data, [o for o in modalities if o != m], target, batch_size)
                 for m in modalities}
    finally:
        model.train(was_training)
    return {"all": full, "without": without, "alone": alone,
            "contribution": {m: full - without[m] for m in modalities}}
