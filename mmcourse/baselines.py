"""Unimodal baselines for AV-Digits and the simplest way to combine them.

One classifier per modality ``m`` gives ``P(y | x_m)``. Because AV-Digits draws each modality
independently given the label, Bayes' rule combines them exactly:

    P(y | x_1, ..., x_M) ∝ P(y)^(1−M) ∏_m P(y | x_m),

i.e. with a uniform prior, *sum the per-modality log-probabilities* ("product of experts",
a late fusion with no trainable parameters). It is the yardstick the fusion chapter improves on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.config import seeded
from mmcourse.data.base import Splits
from mmcourse.models.cnn import UnimodalClassifier
from mmcourse.models.encoders import encoder_for
from mmcourse.train import evaluate, fit

#: epochs per modality that reach a plateau on AV-Digits within a few seconds on a CPU
EPOCHS = {"image": 8, "audio": 8, "text": 15}


def unimodal_model(modality: str, splits: Splits, seed: int = 0) -> UnimodalClassifier:
    """A small classifier for one AV-Digits modality, on the encoder every fusion strategy uses
    for it (``encoder_for``: a CNN for image/audio, a bag of words for text). ``seed`` sets the
    initial weights without touching the global RNG."""
    if modality not in ("image", "audio", "text"):
        raise KeyError(f"unknown AV-Digits modality {modality!r}; expected 'image', 'audio' or 'text'")
    example = splits.train.tensors[modality][:2]
    with seeded(seed):
        encoder = encoder_for(example, 64, vocab_size=len(splits.info["vocab"]), width=16)
        return UnimodalClassifier(encoder, modality, num_classes=10)


def product_of_experts(logits: list[Tensor]) -> Tensor:
    """Late fusion by summing log-probabilities: ``Σ_m log softmax(s_m)`` (uniform prior)."""
    if not logits:
        raise ValueError("product_of_experts needs at least one modality's logits")
    return torch.stack([torch.log_softmax(s.float(), dim=-1) for s in logits]).sum(0)


def modality_report(splits: Splits, *, modalities=("image", "audio", "text"), seed: int = 0,
                    epochs: dict | None = None, progress: bool = False, device=None) -> dict:
    """Train one classifier per modality; return test accuracy of each and of their fusion.

    Returns ``{"image": acc, "audio": acc, "text": acc, "fusion": acc, "models": {...}}``.
    """
    epochs = {**EPOCHS, **(epochs or {})}
    report, logits, models = {}, [], {}
    for m in modalities:
        model = unimodal_model(m, splits, seed)
        fit(model, splits.train, splits.val, epochs=epochs[m], lr=2e-3, batch_size=64,
            seed=seed, progress=progress, desc=f"{m} classifier", device=device)
        scores = evaluate(model, splits.test, return_outputs=True)
        report[m] = scores["accuracy"]
        logits.append(scores["logits"])
        models[m] = model
    labels = splits.test.tensors["label"]
    fused = product_of_experts(logits)
    report["fusion"] = (fused.argmax(1) == labels).float().mean().item()
    report["models"] = models
    return report
