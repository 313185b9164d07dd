"""Bottom-up pre-training of patch tokens: teach each token to name what is in its patch.

A VQA transformer must first *find* the object a question names ("the red circle") before it can
compare it with another. Learning that from answers alone is slow: a balanced yes/no question gives
no gradient until the model can already find objects. VQA systems therefore start from image
features trained to name objects (the *bottom-up* region features of Anderson et al., 2018, come
from a detector trained on Visual Genome's objects and attributes). ``PatchTagger`` is the small
version of that idea: on the patch tokens ``z_n = W x_n + b + e_n`` of a ``PatchEmbedding``, a
linear head scores, for each patch ``n``, which object's centre lies in it (or none),

    s_n = W_o z_n + b_o,      L = (1/N) Σ_n CE(s_n, c_n),

with targets ``c_n`` = ``batch["cells"]`` (``object_cells`` in ``mmcourse.data.shapes_qa``).

``TaggedPatches`` then turns a trained, frozen tagger into the tokens a VQA transformer reads. Its
class ``c > 0`` is an object code whose attributes are ``factors`` read row-major (Shapes: kind,
colour, size = 4 × 6 × 2), so the tagger's posterior ``p_n = softmax(s_n)`` gives each attribute's
marginal ``P_n(a = v)``, and patch ``n`` in row ``i``, column ``j`` becomes

    z_n = p_n(∅) e_∅ + Σ_a Σ_v P_n(a = v) E_a[v] + r_i + k_j,

one learned embedding per attribute value (shared by every object with that value: "red" is one
vector, whatever the kind) plus a row and a column embedding. Patches the tagger calls empty are
masked out as keys, so attention chooses among objects. ``load_tagger(model, tagger)`` copies a
trained tagger into a model built with ``tagged=...`` and freezes it.

Why factorised: with one embedding per whole object code (or the tagger's raw features), the
chapter's transformer learned to find an object by name slowly and never related two objects on
its CPU budget; with shared attribute and row / column embeddings it relates them within a few
epochs (``docs/benchmarks/bench_shapes_qa_cpu_2026-11-30.txt``).
"""

from __future__ import annotations

import math
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


class TaggedPatches(nn.Module):
    """``(B, 3, S, S)`` images → ``(tokens (B, N, dim), keep (B, N) bool)``: a frozen
    ``PatchTagger``'s posteriors as factorised attribute tokens, with row and column embeddings,
    and which patches hold an object (see the module docstring). ``factors``: the attribute
    sizes of the tagger's object codes, row-major; the tagger has ``1 + prod(factors)`` classes."""

    def __init__(self, tagger: PatchTagger, dim: int, factors: tuple[int, ...]):
        super().__init__()
        factors = tuple(int(f) for f in factors)
        n_codes = math.prod(factors)
        classes = tagger.head.out_features if isinstance(tagger, PatchTagger) else None
        if classes != 1 + n_codes:
            raise ValueError(f"TaggedPatches needs a PatchTagger with 1 + prod({list(factors)}) = "
                             f"{1 + n_codes} classes, got {type(tagger).__name__} ({classes} classes)")
        self.tagger, self.factors = tagger.requires_grad_(False), factors
        rows, cols = tagger.patches.grid
        self.empty = nn.Parameter(torch.randn(dim))                                       # e_∅
        self.values = nn.ParameterList(nn.Parameter(torch.randn(f, dim)) for f in factors)  # E_a
        self.rows = nn.Parameter(torch.randn(rows, 1, dim))                               # r_i
        self.cols = nn.Parameter(torch.randn(1, cols, dim))                               # k_j

    def train(self, mode: bool = True):
        super().train(mode)
        self.tagger.eval()                                 # frozen: its BatchNorm (if any) stays put
        return self

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            p = self.tagger({"image": images}).logits.softmax(-1)                       # (B, N, 1 + C)
        b, n = p.shape[:2]
        codes = p[..., 1:].reshape(b, n, *self.factors)
        axes = range(2, 2 + len(self.factors))
        z = p[..., :1] * self.empty
        for a, table in enumerate(self.values):
            z = z + codes.sum(dim=tuple(x for x in axes if x != 2 + a)) @ table         # P_n(a = v) E_a[v]
        z = z + (self.rows + self.cols).reshape(1, n, -1)
        keep = p.argmax(-1) != 0
        keep[~keep.any(dim=1)] = True                      # nothing found: attend to every patch
        return z, keep


def load_tagger(model: nn.Module, tagger: PatchTagger) -> nn.Module:
    """Copy a trained ``tagger`` into ``model.patches`` (a ``TaggedPatches``: a VQA transformer
    built with ``tagged=...``), frozen. Returns ``model``."""
    target = getattr(model, "patches", None)
    if not isinstance(tagger, PatchTagger) or not isinstance(target, TaggedPatches):
        raise TypeError(f"load_tagger copies a PatchTagger into a model whose `patches` are TaggedPatches "
                        f"(SingleStreamVQA(..., tagged=factors)); got {type(tagger).__name__} -> "
                        f"{type(model).__name__} with {type(target).__name__} patches")
    mine = {k: tuple(v.shape) for k, v in tagger.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in target.tagger.state_dict().items()}
    if mine != theirs:
        raise ValueError(f"load_tagger: the two taggers differ (classes, patch, dim or stem): "
                         f"given {mine} vs model's {theirs}")
    target.tagger.load_state_dict(tagger.state_dict())
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


__all__ = ["PatchTagger", "TaggedPatches", "load_tagger", "tagging_accuracy"]
