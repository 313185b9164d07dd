"""Cross-modal retrieval with a CLIP-style dual encoder.

Two towers map an image ``x`` and a caption ``t`` into one ``d``-dimensional space and onto the
unit sphere, so that their dot product is a cosine similarity:

    u = g(x) / ||g(x)||,    v = h(t) / ||h(t)||,    sim(x, t) = u · v ∈ [-1, 1].

**Training** (symmetric InfoNCE). For a batch of ``B`` matching pairs with image embeddings
``I: (B, d)``, text embeddings ``T: (B, d)`` and a learned temperature ``s = exp(logit_scale)``
(clamped at 100), pair ``i`` must win the softmax of its row and of its column:

    L = ½ [CE(s·I T^T, diag) + CE(s·T I^T, diag)],    CE(Z, diag) = -(1/B) Σ_i log softmax(Z_i)_i.

**Retrieval** at a threshold ``θ``. A query ``q`` (an image or a caption embedding) retrieves
every database item whose similarity exceeds ``θ``:

    R(q, D) = {(x1, x2) in D : sim(q, x1, x2) > θ},

where each database item ``(x1, x2)`` is one scene; it is represented here by the embedding of
the modality being searched (its caption for image → text, its image for text → image), and
``sim`` is the cosine similarity. ``retrieve`` returns that exact set, sorted by similarity;
``top_k`` the ``k`` best items whatever their similarity.

**Evaluation.** ``retrieval_report`` ranks a whole split in both directions (Recall@K, median
rank, mAP, a caption's relevant items being all scenes with the same caption: the "semantic
match"); ``winoground_scores`` asks whether the model can tell "a red circle left of a blue
square" from "a blue circle left of a red square" (same words, different order).
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
from mmcourse.models.rnn import SequenceEncoder

__all__ = [
    "WINOGROUND_CHANCE",
    "DualEncoder",
    "Retrieved",
    "cosine_similarity",
    "embed_dataset",
    "info_nce",
    "retrieval_report",
    "retrieve",
    "top_k",
    "winoground_from_similarity",
    "winoground_scores",
]

#: Initial temperature of CLIP: s = 1 / 0.07 ≈ 14.3 (stored as its log).
INIT_TEMPERATURE = 0.07
#: The largest scale ``s`` ever used, as in CLIP: a larger one makes the softmax one-hot.
MAX_SCALE = 100.0


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------
def info_nce(image_emb: Tensor, text_emb: Tensor, scale: float | Tensor,
             labels: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE (CLIP's loss) of ``B`` matching pairs ``(I_i, T_i)``:

        Z = s · I T^T                                  (B, B), Z_ij = s · cos(I_i, T_j)
        L = ½ [CE(Z, diag) + CE(Z^T, diag)],            CE(Z, diag) = -(1/B) Σ_i log softmax(Z_i)_i

    ``image_emb`` and ``text_emb``: ``(B, d)`` unit rows (they are not re-normalised here);
    ``scale``: the inverse temperature ``s``.

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
    batch = len(image_emb)
    logits = scale * image_emb.float() @ text_emb.float().T      # Z = s · I T^T
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
    * ``logit_scale``: the log of the softmax scale ``s``, initialised at ``log(1/0.07)``;
      ``scale = exp(logit_scale)`` is clamped at 100 when used.

    ``forward(batch)`` takes ``{"image": (B,3,S,S), "tokens": (B,L)}`` (and ``"label"``, used to
    keep duplicate captions out of the negatives when ``dedupe``) and returns a dict with
    ``"loss"`` (symmetric InfoNCE, what ``fit()`` minimises), ``"similarity"`` (the ``(B, B)``
    cosine similarities ``I T^T``), and the embeddings ``"image_emb"``, ``"text_emb"``.
    """

    modalities = ("image", "tokens")

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
        """``s = min(exp(logit_scale), 100)``: the inverse temperature of the softmax."""
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
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(
                f"DualEncoder expects tokens (batch, length) int64, got {tuple(tokens.shape)} "
                f"{tokens.dtype}"
            )
        # checked on the CPU only: on an accelerator this would be a host sync every step
        if tokens.device.type == "cpu" and tokens.numel():
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(
                    f"DualEncoder expects token ids in [0, {self.vocab_size}), got ids from "
                    f"{low} to {high}"
                )
        return F.normalize(self.text_proj(self.text_encoder(tokens)), dim=-1)

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if isinstance(batch, Tensor):
            raise TypeError("DualEncoder takes a batch dict {'image': ..., 'tokens': ...}, got a tensor")
        check_batch(batch, {"image": (3, self.image_size, self.image_size), "tokens": (None,)},
                    "DualEncoder")
        if len(batch["image"]) != len(batch["tokens"]):
            raise ValueError(
                f"DualEncoder expects as many images as captions, got {len(batch['image'])} "
                f"images and {len(batch['tokens'])} captions"
            )
        image_emb = self.encode_image(batch["image"])
        text_emb = self.encode_text(batch["tokens"])
        labels = batch.get("label") if self.dedupe else None
        loss = info_nce(image_emb, text_emb, self.scale, labels)
        return {"loss": loss, "similarity": image_emb.float() @ text_emb.float().T,
                "image_emb": image_emb, "text_emb": text_emb}


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
def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _embed_pairs(model: DualEncoder, images: Tensor, tokens: Tensor,
                 batch_size: int) -> tuple[Tensor, Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = _model_device(model)
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


def _split_tensors(split, keys: tuple[str, ...], where: str) -> list[Tensor]:
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
    Shapes split (keys ``"image"``, ``"tokens"``). Runs on the model's device, in eval mode,
    without gradients; the model's train/eval mode is restored afterwards."""
    images, tokens = _split_tensors(split, ("image", "tokens"), "embed_dataset")
    return _embed_pairs(model, images, tokens, batch_size)


def retrieval_report(model: DualEncoder, split, ks: tuple[int, ...] = (1, 5, 10),
                     batch_size: int = 512) -> dict[str, float]:
    """Rank every caption for every image (``i2t``) and every image for every caption
    (``t2i``) of a split, with the semantic match ``relevant = labels[:, None] == labels[None, :]``
    (any scene with the same caption is a correct answer).

    Returns ``{"i2t_R@1", "i2t_R@5", "i2t_R@10", "i2t_median_rank", "i2t_mAP"}``, the same for
    ``t2i``, and ``"n"``. Ties count against the model (``mmcourse.metrics``' pessimistic rule).
    """
    from mmcourse import metrics

    (labels,) = _split_tensors(split, ("label",), "retrieval_report")
    image_emb, text_emb = embed_dataset(model, split, batch_size)
    relevant = (labels[:, None] == labels[None, :]).numpy()
    report: dict[str, float] = {"n": len(labels)}
    for name, sim in (("i2t", image_emb @ text_emb.T), ("t2i", text_emb @ image_emb.T)):
        for k, r in metrics.recall_at_k(sim, ks, relevant).items():
            report[f"{name}_R@{k}"] = r
        report[f"{name}_median_rank"] = metrics.median_rank(sim, relevant)
        report[f"{name}_mAP"] = metrics.mean_average_precision(sim, relevant)
    return report


# --------------------------------------------------------------------------------------------
# Winoground-style compositional probe
# --------------------------------------------------------------------------------------------
#: Rates of a model whose four similarities per pair are in random order: the text (or image)
#: score needs two independent comparisons to go its way, (1/2)^2 = 1/4; the group score needs
#: the two matching pairs to be the top two of the four similarities, 1 / C(4, 2) = 1/6.
WINOGROUND_CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}


def winoground_from_similarity(s00: Tensor, s01: Tensor, s10: Tensor,
                               s11: Tensor) -> dict[str, float]:
    """Winoground rates from the four similarities of each pair, ``s_ij = sim(I_i, C_j)``,
    each ``(n,)``:

        text  = mean[ s00 > s01  and  s11 > s10 ]   (each image picks its own caption)
        image = mean[ s00 > s10  and  s11 > s01 ]   (each caption picks its own image)
        group = mean[ text and image ]

    Comparisons are strict: a tie is a failure. Chance levels: ``WINOGROUND_CHANCE``.
    """
    sims = [torch.as_tensor(s) for s in (s00, s01, s10, s11)]
    if any(s.dim() != 1 or s.shape != sims[0].shape for s in sims) or len(sims[0]) == 0:
        raise ValueError(
            "winoground_from_similarity expects four non-empty (n,) tensors, got shapes "
            f"{[tuple(s.shape) for s in sims]}"
        )
    s00, s01, s10, s11 = sims
    text = (s00 > s01) & (s11 > s10)
    image = (s00 > s10) & (s11 > s01)
    group = text & image
    return {"text": text.float().mean().item(), "image": image.float().mean().item(),
            "group": group.float().mean().item()}


def winoground_scores(model: DualEncoder, pairs, batch_size: int = 512) -> dict[str, float]:
    """Text, image and group scores of ``model`` on ``winoground_pairs(...)`` (keys ``image0``,
    ``tokens0``, ``image1``, ``tokens1``): see ``winoground_from_similarity``. Chance is 0.25,
    0.25 and 1/6."""
    image0, tokens0, image1, tokens1 = _split_tensors(
        pairs, ("image0", "tokens0", "image1", "tokens1"), "winoground_scores")
    i0, c0 = _embed_pairs(model, image0, tokens0, batch_size)
    i1, c1 = _embed_pairs(model, image1, tokens1, batch_size)
    return winoground_from_similarity(_rowwise(i0, c0), _rowwise(i0, c1), _rowwise(i1, c0),
                                      _rowwise(i1, c1))


def _rowwise(a: Tensor, b: Tensor) -> Tensor:
    """``sim(a_i, b_i)`` for each row of two ``(n, d)`` unit-vector matrices."""
    return (a * b).sum(-1)
