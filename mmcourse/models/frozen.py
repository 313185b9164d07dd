"""Fusion on frozen, shared encoders: train the encoders once, then compare fusions cheaply.

Comparing fusion strategies end to end trains every encoder again for every strategy and seed.
When the question is only *where the modalities meet*, the encoders can be trained once (e.g.
one unimodal classifier per modality, as in chapter 01), frozen, and shared:

    g_m(x_m) fixed  →  features  →  a fusion model trained on ``{m: g_m(x_m)}``.

``encode_features(encoders, data)`` computes the features once (a ``ModalDataset`` of ``(N, d)``
float vectors, masks and labels kept), so a fusion model built by ``make_fusion(strategy,
features)`` trains in a fraction of a second per epoch. ``FrozenEncoders(encoders, fusion)``
puts the two back together: a joint classifier that reads the raw modalities (so it can be
evaluated on corrupted data, ablated, or put in an explorer) and passes ``g_m(x_m)`` -- and the
presence masks -- to the fusion model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset
from mmcourse.models.joint import Batch, JointClassifier
from mmcourse.models.output import ModelOutput

MASK_SUFFIX = "_mask"


def _frozen(encoders: Mapping[str, nn.Module]) -> nn.ModuleDict:
    if not encoders:
        raise ValueError("need at least one encoder: {modality: encoder}")
    out = nn.ModuleDict(dict(encoders))
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()


@torch.no_grad()
def encode_features(encoders: Mapping[str, nn.Module], data: ModalDataset,
                    batch_size: int = 512) -> ModalDataset:
    """``data`` with every modality ``m`` of ``encoders`` replaced by ``g_m(x_m)`` ``(N, d)``;
    other tensors (``label``, ``*_mask``) are kept. The encoders run in evaluation mode."""
    if not isinstance(data, ModalDataset):
        raise TypeError(f"encode_features expects a ModalDataset split, got {type(data).__name__}")
    missing = [m for m in encoders if m not in data]
    if missing:
        raise KeyError(f"encode_features: the data has no {missing}; it has {list(data.keys)}")
    tensors = dict(data.tensors)
    for m, enc in encoders.items():
        was = enc.training
        enc.eval()
        try:
            dev = next(enc.parameters()).device
            x = data.tensors[m]
            tensors[m] = torch.cat([enc(x[i:i + batch_size].to(dev)).float().cpu()
                                    for i in range(0, len(x), batch_size)])
        finally:
            enc.train(was)
    return ModalDataset(tensors, name=data.name, meta=data.meta)


class FrozenEncoders(JointClassifier):
    """``s = fusion({m: g_m(x_m)})`` with the encoders ``g_m`` frozen (never trained, always in
    evaluation mode). An absent modality (``None``) stays absent; ``m_mask`` flags pass through."""

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module):
        modalities = tuple(getattr(fusion, "modalities", encoders))
        unknown = [m for m in modalities if m not in encoders]
        if unknown:
            raise KeyError(f"the fusion model reads {list(modalities)} but there is no encoder for {unknown}")
        super().__init__(modalities, getattr(fusion, "num_classes", 0))
        self.encoders, self.fusion = _frozen({m: encoders[m] for m in modalities}), fusion

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoders.eval()                      # frozen: dropout stays off
        return self

    def forward(self, batch: Batch) -> ModelOutput:
        self._check(batch)
        feats: dict[str, Tensor | None] = {}
        with torch.no_grad():
            for m in self.modalities:
                feats[m] = None if batch[m] is None else self.encoders[m](batch[m])
        for m in self.modalities:
            if batch.get(m + MASK_SUFFIX) is not None:
                feats[m + MASK_SUFFIX] = batch[m + MASK_SUFFIX]
        return self.fusion(feats)
