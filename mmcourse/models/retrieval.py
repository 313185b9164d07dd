"""Cross-modal retrieval with a CLIP-style dual encoder.

Two towers map an image ``x`` and a caption ``t`` into one ``d``-dimensional space and onto the
unit sphere, so that their dot product is a cosine similarity:

    u = g(x) / ||g(x)||,    v = h(t) / ||h(t)||,    sim(x, t) = u · v ∈ [-1, 1].

**Training** (symmetric InfoNCE). For a batch of ``B`` matching pairs with image embeddings
``I: (B, d)``, text embeddings ``T: (B, d)`` and a learned logit scale
``1/τ = exp(logit_scale)`` (τ the temperature; clamped at 100), pair ``i`` must win the softmax
of its row and of its column:

    L = ½ [CE(I T^T / τ, diag) + CE(T I^T / τ, diag)],    CE(Z, diag) = -(1/B) Σ_i log softmax(Z_i)_i.

**Retrieval** at a threshold ``θ``. A query ``q`` (an image or a caption embedding) retrieves
every database item whose similarity exceeds ``θ``:

    R(q, D) = {(x1, x2) in D : sim(q, x1, x2) > θ},

where each database item ``(x1, x2)`` is one scene; it is represented here by the embedding of
the modality being searched (its caption for image → text, its image for text → image), and
``sim`` is the cosine similarity. ``retrieve`` returns that exact set, sorted by similarity;
``top_k`` the ``k`` best items whatever their similarity.

**Evaluation** (``mmcourse.reports``). ``retrieval_report`` ranks a whole split in both
directions (Recall@K, median rank, mAP, a caption's relevant items being all scenes with the
same caption: the "semantic match"); ``winoground_scores`` asks whether the model can tell
"a red circle left of a blue square" from "a blue circle left of a red square" (same words, different order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset, check_batch
from mmcourse.models.cnn import ConvEncoder
from mmcourse.models.output import ModelOutput
from mmcourse.models.rnn import SequenceEncoder
from mmcourse.tensors import check_float, check_token_ids, model_device

__all__ = [
    "DualEncoder",
    "Retrieved",
    "cosine_similarity",
    "embed_dataset",
    "embed_pairs",
    "info_nce",
    "retrieve",
    "top_k",
]

#: Initial temperature of CLIP: τ = 0.07, a logit scale 1/τ ≈ 14.3 (stored as its log).
INIT_TEMPERATURE = 0.07
#: The largest logit scale ``1/τ`` ever used, as in CLIP: a larger one makes the softmax one-hot.
MAX_SCALE = 100.0


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------
def info_nce(image_emb: Tensor, text_emb: Tensor, scale: float | Tensor,
             labels: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE (CLIP's loss) of ``B`` matching pairs ``(I_i, T_i)``:

        Z = I T^T / τ                                  (B, B), Z_ij = cos(I_i, T_j) / τ
        L = ½ [CE(Z, diag) + CE(Z^T, diag)],            CE(Z, diag) = -(1/B) Σ_i log softmax(Z_i)_i

    ``image_emb`` and ``text_emb``: ``(B, d)`` unit rows (they are not re-normalised here);
    ``scale``: the logit scale ``1/τ`` (the inverse temperature).

    **Duplicate captions.** Two scenes of a batch can share a caption (same ``labels``); then
    ``T_i = T_j`` exactly, and asking image ``i`` to prefer ``T_i`` over ``T_j`` is asking the
    impossible. With ``labels`` given, such pairs are *not negatives*: ``Z_ij`` with
    ``labels_i == labels_j, i ≠ j`` is set to ``-inf`` (left out of both softmaxes), so each row
    and column is a softmax over its own pair and the true negatives only. Without ``labels``
    every off-diagonal pair is a negative (plain CLIP).
    """
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(
            "info_nce expects image and text embeddings of the same shape (batch, dim), got "
            f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    if len(image_emb) == 0:
        raise ValueError("info_nce needs at least one pair, got an empty batch")
    check_float(image_emb, "info_nce (image_emb)")
    check_float(text_emb, "info_nce (text_emb)")
    batch = len(image_emb)
    logits = scale * image_emb.float() @ text_emb.float().T      # Z = I T^T / τ
    if labels is not None:
        if labels.shape != (batch,):
            raise ValueError(
                f"info_nce expects labels (batch,) = ({batch},), got {tuple(labels.shape)}"
            )
        eye = torch.eye(batch, dtype=torch.bool, device=logits.device)
        duplicate = (labels[:, None] == labels[None, :]) & ~eye  # same caption, not the pair
        logits = logits.masked_fill(duplicate, float("-inf"))
    targets = torch.arange(batch, device=logits.device)         # pair i is item i: the diagonal
    loss_image_to_text = F.cross_entropy(logits, targets)       # each row: image i picks a text
    loss_text_to_image = F.cross_entropy(logits.T, targets)     # each column: text i picks an image
    return (loss_image_to_text + loss_text_to_image) / 2


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class DualEncoder(nn.Module):
    """Image tower and text tower into one space: ``u = g(x)/||g(x)||``, ``v = h(t)/||h(t)||``.

    * image tower ``g``: ``ConvEncoder`` (two conv/ReLU/pool blocks + dense) on ``(B, 3, S, S)``
      images, then a linear projection to ``embed_dim``;
    * text tower ``h``: a GRU ``SequenceEncoder`` over ``(B, L)`` token ids (its last state,
      which depends on word order), then a linear projection to ``embed_dim``;
    * ``logit_scale``: the log of the softmax scale ``1/τ``, initialised at ``log(1/0.07)``;
      ``scale = exp(logit_scale)`` is clamped at 100 when used.

    ``forward(batch)`` takes ``{"image": (B,3,S,S), "text": (B,L)}`` (and ``"label"``, used to
    keep duplicate captions out of the negatives when ``dedupe``) and returns a ``ModelOutput``
    with ``loss`` (symmetric InfoNCE, what ``fit()`` minimises), no logits, and ``extras``:
    ``"similarity"`` (the ``(B, B)`` cosine similarities ``I T^T``) and the embeddings
    ``"image_emb"``, ``"text_emb"``.
    """

    modalities = ("image", "text")

    def __init__(self, vocab_size: int, embed_dim: int = 64, image_size: int = 32, *,
                 width: int = 32, image_features: int = 128, token_dim: int = 32,
                 hidden: int = 128, dropout: float = 0.0, dedupe: bool = True):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (0 is the padding), got {vocab_size}")
        self.vocab_size, self.embed_dim, self.image_size = vocab_size, embed_dim, image_size
        self.dedupe = dedupe
        self.image_encoder = ConvEncoder(3, (image_size, image_size), width=width,
                                         out_dim=image_features, dropout=dropout)
        self.text_encoder = SequenceEncoder(vocab_size=vocab_size, embed_dim=token_dim,
                                            hidden=hidden, cell="gru")
        self.image_proj = nn.Linear(image_features, embed_dim)
        self.text_proj = nn.Linear(self.text_encoder.out_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))

    @property
    def scale(self) -> Tensor:
        """``1/τ = min(exp(logit_scale), 100)``: the logit scale (inverse temperature) of the softmax."""
        return self.logit_scale.exp().clamp(max=MAX_SCALE)

    def encode_image(self, images: Tensor) -> Tensor:
        """``(B, 3, S, S)`` images → ``(B, embed_dim)`` unit vectors."""
        want = (3, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want or not images.is_floating_point():
            raise ValueError(
                f"DualEncoder expects images (batch, {', '.join(map(str, want))}) float, got "
                f"{tuple(images.shape)} {images.dtype}"
            )
        return F.normalize(self.image_proj(self.image_encoder(images)), dim=-1)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """``(B, L)`` int64 token ids (0 = padding) → ``(B, embed_dim)`` unit vectors."""
        check_token_ids(tokens, self.vocab_size, "DualEncoder")
        return F.normalize(self.text_proj(self.text_encoder(tokens)), dim=-1)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        if isinstance(batch, Tensor):
            raise TypeError("DualEncoder takes a batch dict {'image': ..., 'text': ...}, got a tensor")
        check_batch(batch, {"image": (3, self.image_size, self.image_size), "text": (None,)},
                    "DualEncoder")
        if len(batch["image"]) != len(batch["text"]):
            raise ValueError(
                f"DualEncoder expects as many images as captions, got {len(batch['image'])} "
                f"images and {len(batch['text'])} captions"
            )
        image_emb = self.encode_image(batch["image"])
        text_emb = self.encode_text(batch["text"])
        labels = batch.get("label") if self.dedupe else None
        loss = info_nce(image_emb, text_emb, self.scale, labels)
        return ModelOutput(loss=loss, extras={"similarity": image_emb.float() @ text_emb.float().T,
                                              "image_emb": image_emb, "text_emb": text_emb})


# --------------------------------------------------------------------------------------------
# Retrieval: R(q, D) = {d in D : sim(q, d) > θ}
# --------------------------------------------------------------------------------------------
class Retrieved(NamedTuple):
    """The answer to one query: database ``indices`` (long) and their cosine ``similarities``,
    both ``(n,)``, sorted by decreasing similarity (equal similarities: lower index first)."""

    indices: Tensor
    similarities: Tensor


def _check_embeddings(query: Tensor, database: Tensor, where: str) -> tuple[Tensor, bool]:
    """``query`` as ``(Q, d)`` (and whether it was a single ``(d,)`` vector) after checks."""
    if not isinstance(query, Tensor) or not isinstance(database, Tensor):
        raise TypeError(
            f"{where} expects tensors, got query {type(query).__name__} and database "
            f"{type(database).__name__}"
        )
    if database.dim() != 2:
        raise ValueError(f"{where} expects a database (items, dim), got shape {tuple(database.shape)}")
    if len(database) == 0:
        raise ValueError(f"{where}: the database is empty; there is nothing to retrieve")
    if query.dim() not in (1, 2):
        raise ValueError(
            f"{where} expects a query (dim,) or a batch of queries (queries, dim), got shape "
            f"{tuple(query.shape)}"
        )
    if query.shape[-1] != database.shape[-1]:
        raise ValueError(
            f"{where}: query dimension {query.shape[-1]} does not match the database's "
            f"{database.shape[-1]} (query {tuple(query.shape)}, database {tuple(database.shape)})"
        )
    if not query.is_floating_point() or not database.is_floating_point():
        raise ValueError(f"{where} expects float embeddings, got {query.dtype} and {database.dtype}")
    single = query.dim() == 1
    return (query[None] if single else query), single


def cosine_similarity(query: Tensor, database: Tensor) -> Tensor:
    """``sim(q, d) = q·d / (||q|| ||d||)`` for every query and item: ``(Q, D)``, or ``(D,)`` for
    one ``(dim,)`` query. A zero vector has no direction, so it is an error."""
    queries, single = _check_embeddings(query, database, "cosine_similarity")
    for name, x in (("query", queries), ("database", database)):
        zero = (x.norm(dim=-1) == 0).nonzero()
        if len(zero):
            raise ValueError(
                f"cosine_similarity: {name} row {int(zero[0])} is a zero vector; cosine is undefined"
            )
    sim = F.normalize(queries.float(), dim=-1) @ F.normalize(database.float(), dim=-1).T
    return sim[0] if single else sim


def _sorted(indices: Tensor, sims: Tensor) -> Retrieved:
    order = torch.sort(sims, descending=True, stable=True).indices  # ties keep index order
    return Retrieved(indices[order], sims[order])


def retrieve(query: Tensor, database: Tensor, theta: float) -> Retrieved | list[Retrieved]:
    """The exact set ``R(q, D) = {d in D : sim(q, d) > θ}`` (strictly greater: an item at exactly
    ``θ`` is left out), sorted by decreasing cosine similarity.

    ``query``: one ``(dim,)`` embedding → one ``Retrieved``; or ``(Q, dim)`` → a list of ``Q``.
    ``database``: ``(D, dim)``. The set may be empty (``θ`` above every similarity). The
    similarities compared with ``θ`` are exactly those of ``cosine_similarity(query, database)``
    (a batch of queries and a single query can differ in the last float bit: different kernels).
    """
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or math.isnan(theta):
        raise ValueError(f"retrieve expects theta to be a number, got {theta!r}")
    sims = cosine_similarity(query, database)
    rows = sims[None] if sims.dim() == 1 else sims
    results = []
    for row in rows:
        hit = (row > theta).nonzero().flatten()
        results.append(_sorted(hit, row[hit]))
    return results[0] if sims.dim() == 1 else results


def top_k(query: Tensor, database: Tensor, k: int) -> Retrieved | list[Retrieved]:
    """The ``k`` database items most similar to each query, best first (equal similarities:
    lower index first). Same shapes as ``retrieve``; ``1 <= k <= D``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k expects k >= 1 (an int), got {k!r}")
    sims = cosine_similarity(query, database)
    if k > database.shape[0]:
        raise ValueError(f"top_k: k={k} is larger than the database ({database.shape[0]} items)")
    rows = sims[None] if sims.dim() == 1 else sims
    results = []
    for row in rows:
        best = _sorted(torch.arange(len(row), device=row.device), row)
        results.append(Retrieved(best.indices[:k], best.similarities[:k]))
    return results[0] if sims.dim() == 1 else results


# --------------------------------------------------------------------------------------------
# Evaluation on whole splits
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def embed_pairs(model: DualEncoder, images: Tensor, tokens: Tensor,
                 batch_size: int) -> tuple[Tensor, Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = model_device(model)
    was_training = model.training
    model.eval()
    image_emb, text_emb = [], []
    try:
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            image_emb.append(model.encode_image(images[start:stop].to(dev)).float().cpu())
            text_emb.append(model.encode_text(tokens[start:stop].to(dev)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(image_emb), torch.cat(text_emb)


def split_tensors(split, keys: tuple[str, ...], where: str) -> list[Tensor]:
    tensors = split.tensors if isinstance(split, ModalDataset) else split
    if not isinstance(tensors, Mapping):
        raise TypeError(f"{where} expects a ModalDataset split, got {type(split).__name__}")
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise KeyError(f"{where} needs {list(keys)} in the split; it has {list(tensors)} (missing {missing})")
    if len(tensors[keys[0]]) == 0:
        raise ValueError(f"{where}: the split is empty")
    return [tensors[k] for k in keys]


def embed_dataset(model: DualEncoder, split, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """``(image_emb, text_emb)``, each ``(N, embed_dim)`` float32 on the CPU, for every scene of a
    Shapes split (keys ``"image"``, ``"text"``). Runs on the model's device, in eval mode,
    without gradients; the model's train/eval mode is restored afterwards."""
    images, tokens = split_tensors(split, ("image", "text"), "embed_dataset")
    return embed_pairs(model, images, tokens, batch_size)
