"""Bottom-up pre-training of patch tokens: teach each token to name what is in its patch.

A VQA transformer must first *find* the object a question names ("the red circle") before it can
compare it with another. Learning that from answers alone is slow: a balanced yes/no question gives
no gradient until the model can already find objects. VQA systems therefore start from image
features trained to name objects (the *bottom-up* region features of Anderson et al., 2018, come
from a detector trained on Visual Genome's objects and attributes). ``PatchTagger`` is the small
version of that idea: on the patch tokens ``z_n = W x_n + b + e_n`` of a ``PatchEmbedding``, a
linear head scores, for each patch ``n``, which object's centre lies in it (or none),

    s_n = W_o z_n + b_o,      L = (1/N) Σ_n CE(s_n, c_n),

with targets ``c_n`` = ``batch["cells"]`` (``object_cells`` in ``mmcourse.data.shapes_qa``). Then
``transfer_patches(tagger, vqa_model)`` copies the trained patch embedding into a VQA model and
freezes its stem and projection, so the VQA model starts from tokens that already say what is where
(the position embeddings ``e_n`` stay trainable).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_embedding import PatchEmbedding


class PatchTagger(nn.Module):
    """``{"image": (B, 3, S, S)}`` → ``ModelOutput(logits=(B, N, num_classes))``: per patch token,
    scores for what lies in its patch (see the module docstring). Train it with
    ``fit(..., target="cells")``; the patch arguments are ``PatchEmbedding``'s."""

    modalities = ("image",)

    def __init__(self, num_classes: int, image_size: int, *, patch: int, dim: int = 64,
                 stem_width: int | None = None, stem_norm: bool = False, stem_depth: int = 2):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"PatchTagger: num_classes must be an int >= 2, got {num_classes!r}")
        self.patches = PatchEmbedding(image_size, patch, dim, stem_width=stem_width, stem_norm=stem_norm,
                                      stem_depth=stem_depth)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, batch: Mapping) -> ModelOutput:
        if not isinstance(batch, Mapping) or "image" not in batch:
            got = list(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise KeyError(f"PatchTagger expects a batch dict with key 'image', got {got}")
        return ModelOutput(logits=self.head(self.patches(batch["image"])))


def transfer_patches(tagger: PatchTagger, model: nn.Module, *, freeze: bool = True) -> nn.Module:
    """Copy ``tagger``'s patch embedding into ``model.patches`` (a VQA transformer's) and, with
    ``freeze``, stop training its stem and projection (the position embeddings keep learning).
    Returns ``model``."""
    target = getattr(model, "patches", None)
    if not isinstance(tagger, PatchTagger) or not isinstance(target, PatchEmbedding):
        raise TypeError(f"transfer_patches copies a PatchTagger's patch embedding into a model with a "
                        f"PatchEmbedding `patches` (SingleStreamVQA, DualStreamVQA); got "
                        f"{type(tagger).__name__} -> {type(model).__name__}")
    mine = {k: tuple(v.shape) for k, v in tagger.patches.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    if mine != theirs:
        raise ValueError(f"transfer_patches: the two patch embeddings differ (patch, dim or stem): "
                         f"tagger {mine} vs model {theirs}")
    target.load_state_dict(tagger.patches.state_dict())
    if freeze:
        frozen = [target.proj] + ([target.stem] if target.stem is not None else [])
        for module in frozen:
            module.requires_grad_(False)
    return model


def tagging_accuracy(predictions: Tensor, cells: Tensor) -> dict[str, float]:
    """How well predicted cell classes ``(B, N)`` match ``object_cells`` targets ``cells``:
    ``object`` (exact object on cells that hold one), ``colour_kind`` (the same, size ignored:
    Shapes codes put the size last, so ``(c - 1) // 2`` is colour and kind) and ``empty`` (cells
    with no object called empty)."""
    tensors = isinstance(predictions, Tensor) and isinstance(cells, Tensor)
    if not tensors or predictions.shape != cells.shape:
        raise ValueError(f"tagging_accuracy expects two integer tensors of one shape (B, N), got "
                         f"{getattr(predictions, 'shape', predictions)} and {getattr(cells, 'shape', cells)}")
    on = cells > 0
    if not on.any() or on.all():
        raise ValueError("tagging_accuracy needs cells both with and without an object")
    p, c = predictions[on], cells[on]
    return {"object": (p == c).float().mean().item(),
            "colour_kind": (torch.div(p - 1, 2, rounding_mode="floor")
                            == torch.div(c - 1, 2, rounding_mode="floor")).float().mean().item(),
            "empty": (predictions[~on] == 0).float().mean().item()}


__all__ = ["PatchTagger", "tagging_accuracy", "transfer_patches"]
