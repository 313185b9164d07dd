"""Audio-visual contrastive pretraining: images and spoken words in one space, without labels.

Two convolutional towers embed a handwritten digit ``x`` and a spoken digit ``a`` (a log-mel
spectrogram) onto the unit sphere, ``u = g(x)/||g(x)||``, ``v = h(a)/||h(a)||``. Pairs that
belong together (the image and the clip of one AV-Digits sample) are pulled together and the
other pairs of the batch pushed apart by the symmetric InfoNCE loss of chapter 07, with a
learned scale ``s``:

    L = ½ [CE(s·U V^T, diag) + CE(s·V U^T, diag)].

No digit label is used: only "these two go together". Two samples of the same digit in a batch
are (wrong) negatives, as in CLIP; with 10 classes and batches of 128 that is ~10 % of the
negatives, and the embedding still clusters by digit.

**Zero-shot by spoken prototypes.** A few labelled *clips* (one voice saying each digit) play
the role of text prompts: ``w_c = normalise(mean of the clips of digit c)`` and an image is
classified by ``argmax_c u · w_c`` (``mmcourse.models.zero_shot``). No labelled image is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import check_batch
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.output import ModelOutput
from mmcourse.models.retrieval import INIT_TEMPERATURE, MAX_SCALE, info_nce

__all__ = ["AudioVisualEncoder"]


class AudioVisualEncoder(nn.Module):
    """Image tower ``g`` on ``(B, 1, 28, 28)`` digits and audio tower ``h`` on ``(B, 1, 32, 32)``
    log-mels (each a ``ConvEncoder`` then a linear projection to ``embed_dim``), trained with
    symmetric InfoNCE. ``forward(batch)`` returns a ``ModelOutput`` with ``loss`` and extras
    ``image_emb``, ``audio_emb`` and ``similarity`` (``U V^T``); the batch's ``label`` is never
    read."""

    modalities = ("image", "audio")

    def __init__(self, embed_dim: int = 64, *, width: int = 16, features: int = 128,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 audio_shape: tuple[int, int, int] = (1, 32, 32)):
        super().__init__()
        self.image_shape, self.audio_shape = tuple(image_shape), tuple(audio_shape)
        self.image_encoder = ConvEncoder(image_shape[0], image_shape[1:], width=width, out_dim=features)
        self.audio_encoder = ConvEncoder(audio_shape[0], audio_shape[1:], width=width, out_dim=features)
        self.image_proj = nn.Linear(features, embed_dim)
        self.audio_proj = nn.Linear(features, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))

    @property
    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=MAX_SCALE)

    def encode_image(self, images: Tensor) -> Tensor:
        """``(B, 1, 28, 28)`` → ``(B, embed_dim)`` unit vectors."""
        return F.normalize(self.image_proj(self.image_encoder(images)), dim=-1)

    def encode_audio(self, audio: Tensor) -> Tensor:
        """``(B, 1, 32, 32)`` log-mels → ``(B, embed_dim)`` unit vectors."""
        return F.normalize(self.audio_proj(self.audio_encoder(audio)), dim=-1)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        if isinstance(batch, Tensor):
            raise TypeError("AudioVisualEncoder takes a batch dict {'image': ..., 'audio': ...}, "
                            "got a tensor")
        check_batch(batch, {"image": self.image_shape, "audio": self.audio_shape}, "AudioVisualEncoder")
        u, v = self.encode_image(batch["image"]), self.encode_audio(batch["audio"])
        return ModelOutput(loss=info_nce(u, v, self.scale),
                           extras={"image_emb": u, "audio_emb": v, "similarity": u.float() @ v.float().T})
