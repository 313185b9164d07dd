"""Multimodal fusion: three places to combine modalities, one interface.

Every model here is a **joint classifier**: it reads a batch dict of modality tensors
``{"image": x1, "audio": x2, "text": x3, ...}`` and returns scores ``s(y, x1, x2, ...)`` for every
class ``y`` (logits, ``(B, C)``), from which

    P(y | x1, x2) = softmax_y s(y, x1, x2) = exp s(y, x1, x2) / Σ_y' exp s(y', x1, x2).

Where the modalities meet is the strategy (notation: ``g_m`` encodes modality ``m`` to a feature
vector, ``h`` is a classifier head):

* **feature-level (early)** ``EarlyFusion``: ``s = h([g_1(x1); g_2(x2); ...])`` -- concatenate the
  features, one head.
* **model-level (late)** ``LateFusion``: one full model per modality, ``s_m = h_m(g_m(x_m))``,
  combined at the output: averaged logits ``s = (1/M) Σ_m s_m``, learned weights
  ``s = Σ_m w_m log softmax(s_m)`` (``w_m = 1`` is the product of experts), or decision-level
  voting (each modality votes for ``argmax s_m``; the majority wins).
* **end-to-end (intermediate)** ``CrossAttentionFusion``: each modality is a sequence of tokens
  (image regions, spectrogram regions, words) that attends to the other modalities' tokens inside
  the network, ``softmax(Q_m K_{-m}^T / sqrt(d_k)) V_{-m}``, before pooling and one head.
* ``TensorFusion``: ``s = h(vec([g_1; 1] ⊗ [g_2; 1] ⊗ ...))``, every product of features across
  modalities (Zadeh et al., 2017): unimodal, bimodal and trimodal terms in one vector.
* ``GatedFusion``: ``s = h(Σ_m z_m tanh(W_m g_m))`` with gates ``z = softmax(W_z [g_1; g_2; ...])``
  that decide, per sample, how much to trust each modality (a gated multimodal unit).

**Missing modalities.** A modality may be absent: its value is ``None`` (absent for the whole
batch), or a boolean ``batch[m + "_mask"]`` ``(B,)`` marks where it is present. Every fusion
handles both: features of an absent modality are zeroed (and early fusion also sees the presence
flags), late fusion averages or votes over the present modalities only, gates and attention give
an absent modality zero weight, and tensor fusion keeps only the terms without it. A batch key
that is missing altogether is an error: the model says which modalities it expects.

``make_fusion("early" | "late" | "late-learned" | "vote" | "cross-attention" | "tensor" |
"gated", data)`` builds any of them with the same encoders, so a notebook swaps strategy in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.data.base import ModalDataset, Splits, check_batch
from mmcourse.models.bow import BagOfWords
from mmcourse.models.cnn import ConvEncoder

Batch = Mapping[str, Tensor | None]


# --------------------------------------------------------------------------------------------
# encoders g_m, one per modality, chosen from the shape of the data
# --------------------------------------------------------------------------------------------
class VectorEncoder(nn.Module):
    """``(B, F)`` float features → ``(B, out_dim)``: ``g(x) = ReLU(Wx + b)``."""

    def __init__(self, in_features: int, out_dim: int = 64):
        super().__init__()
        self.in_features, self.out_dim = in_features, out_dim
        self.net = nn.Sequential(nn.Linear(in_features, out_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"VectorEncoder expects (batch, {self.in_features}), got {tuple(x.shape)}")
        return self.net(x)


def encoder_for(example: Tensor, dim: int = 64, *, vocab_size: int | None = None, width: int = 16,
                dropout: float = 0.25) -> nn.Module:
    """A feature encoder ``g_m`` for a modality whose batch looks like ``example``:

    ``(B, C, H, W)`` float → ``ConvEncoder``; ``(B, L)`` int64 token ids → ``BagOfWords``
    (needs ``vocab_size``); ``(B, F)`` float → ``VectorEncoder``. Output ``(B, dim)``.
    """
    if example.dim() == 4 and example.is_floating_point():
        _, c, h, w = example.shape
        return ConvEncoder(c, (h, w), width=width, out_dim=dim, dropout=dropout)
    if example.dim() == 2 and example.dtype == torch.long:
        if vocab_size is None:
            raise ValueError("a token-id modality needs vocab_size to build its encoder")
        return BagOfWords(vocab_size, dim=32, out_dim=dim)
    if example.dim() == 2 and example.is_floating_point():
        return VectorEncoder(example.shape[1], dim)
    raise ValueError(
        f"no encoder for a modality of shape {tuple(example.shape)} {example.dtype}; expected "
        "(B, C, H, W) float images, (B, L) int64 tokens or (B, F) float vectors"
    )


# --------------------------------------------------------------------------------------------
# the joint classifier interface
# --------------------------------------------------------------------------------------------
class JointClassifier(nn.Module):
    """Base of every fusion: ``forward(batch)`` returns the scores ``s(y, x1, x2, ...)``.

    ``modalities``: the batch keys the model reads; ``num_classes``: C.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int):
        super().__init__()
        if not modalities:
            raise ValueError("a fusion model needs at least one modality")
        self.modalities, self.num_classes = tuple(modalities), num_classes

    # -- P(y | x1, x2) ---------------------------------------------------------------------
    def scores(self, batch: Batch) -> Tensor:
        """``s(y, x1, x2, ...)``: ``(B, C)`` unnormalised scores (logits)."""
        return self(batch)

    @torch.no_grad()
    def probabilities(self, batch: Batch, temperature: float = 1.0) -> Tensor:
        """``P(y | x1, x2, ...) = softmax(s / T)``, ``(B, C)``; ``T`` is a calibration temperature."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return torch.softmax(self.scores(batch).float() / temperature, dim=-1)

    # -- batches with absent modalities -----------------------------------------------------
    def _check(self, batch: Batch) -> int:
        """Validate the batch; return its size."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"{type(self).__name__} takes a batch dict with keys {list(self.modalities)}, "
                f"got {type(batch).__name__}"
            )
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise KeyError(
                f"{type(self).__name__} expects modalities {list(self.modalities)}; the batch has "
                f"{list(batch)} (missing {missing}; pass None for a modality that is absent)"
            )
        sizes = {m: len(batch[m]) for m in self.modalities if batch[m] is not None}
        if not sizes:
            for value in batch.values():
                if isinstance(value, Tensor) and value.dim() > 0:
                    return len(value)
            raise ValueError(
                f"every modality of {list(self.modalities)} is None and the batch has no other "
                "tensor to tell its size"
            )
        if len(set(sizes.values())) > 1:
            raise ValueError(f"modalities have different batch sizes: {sizes}")
        return next(iter(sizes.values()))

    def present(self, batch: Batch, m: str, size: int, device) -> Tensor:
        """``(B,)`` float 1/0: where modality ``m`` is present in the batch."""
        if batch[m] is None:
            return torch.zeros(size, device=device)
        mask = batch.get(f"{m}_mask")
        if mask is None:
            return torch.ones(size, device=device)
        if mask.shape != (size,):
            raise ValueError(f"{m}_mask should have shape ({size},), got {tuple(mask.shape)}")
        return mask.to(device=device, dtype=torch.float32)

    def _device(self):
        return next((p.device for p in self.parameters()), torch.device("cpu"))


class _EncodedFusion(JointClassifier):
    """A fusion over per-modality feature vectors ``g_m(x_m)``; absent features are zero."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int):
        super().__init__(list(encoders), num_classes)
        self.encoders = nn.ModuleDict(encoders)
        self.dims = {m: enc.out_dim for m, enc in encoders.items()}

    def features(self, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``({m: g_m(x_m) · present_m}, {m: present_m})``, each ``(B, dim_m)`` / ``(B,)``."""
        size = self._check(batch)
        dev = self._device()
        feats, present = {}, {}
        for m, enc in self.encoders.items():
            present[m] = self.present(batch, m, size, dev)
            if batch[m] is None:
                feats[m] = torch.zeros(size, self.dims[m], device=dev)
            else:
                feats[m] = enc(batch[m]) * present[m][:, None]
        return feats, present


def _head(in_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.25) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


# --------------------------------------------------------------------------------------------
# feature-level (early) fusion
# --------------------------------------------------------------------------------------------
class EarlyFusion(_EncodedFusion):
    """``s = h([g_1(x1); ...; g_M(x_M); present_1 .. present_M])``: concatenated features (and the
    presence flags, so the head can tell "absent" from "all-zero features"), one head."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, hidden: int = 128):
        super().__init__(encoders, num_classes)
        self.head = _head(sum(self.dims.values()) + len(self.dims), num_classes, hidden)

    def forward(self, batch: Batch) -> Tensor:
        feats, present = self.features(batch)
        z = torch.cat([*feats.values(), torch.stack(list(present.values()), dim=1)], dim=1)
        return self.head(z)


# --------------------------------------------------------------------------------------------
# model-level (late) fusion
# --------------------------------------------------------------------------------------------
class LateFusion(_EncodedFusion):
    """One classifier per modality, ``s_m = h_m(g_m(x_m))``, combined at the output.

    ``combine``:

    * ``"mean"``    ``s = Σ_m p_m s_m / Σ_m p_m`` -- averaged logits over present modalities;
    * ``"learned"`` ``s = Σ_m p_m exp(a_m) log softmax(s_m)`` -- a learned weight per modality
      (``a = 0`` is the product of experts);
    * ``"vote"``    decision level: each present modality votes for ``argmax s_m``; the score of a
      class is its number of votes (+ 0.001 × its mean probability to break ties). Not
      differentiable: the experts learn from their own losses only.

    ``p_m`` is 1 where modality ``m`` is present. Training minimises every expert's own
    cross-entropy plus (for mean/learned) that of the combination; ``loss()`` is that objective
    and ``fit()`` uses it automatically. ``forward`` keeps the per-modality scores of its last
    call in ``modality_scores`` for the loss and for plots.
    """

    COMBINE = ("mean", "learned", "vote")

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, combine: str = "mean",
                 hidden: int = 128):
        super().__init__(encoders, num_classes)
        if combine not in self.COMBINE:
            raise ValueError(f"combine must be one of {self.COMBINE}, got {combine!r}")
        self.combine = combine
        self.heads = nn.ModuleDict({m: _head(d, num_classes, hidden) for m, d in self.dims.items()})
        self.log_weights = nn.Parameter(torch.zeros(len(self.dims)))  # a_m, used by "learned"
        self.modality_scores: dict[str, Tensor] = {}
        self._present: dict[str, Tensor] = {}

    def forward(self, batch: Batch) -> Tensor:
        feats, present = self.features(batch)
        scores = {m: self.heads[m](f) for m, f in feats.items()}
        self.modality_scores, self._present = scores, present
        s = torch.stack(list(scores.values()))                    # (M, B, C)
        p = torch.stack(list(present.values()))[..., None]        # (M, B, 1)
        if self.combine == "mean":
            return (p * s).sum(0) / p.sum(0).clamp(min=1)
        if self.combine == "learned":
            w = self.log_weights.exp()[:, None, None]
            return (p * w * torch.log_softmax(s.float(), dim=-1)).sum(0)
        votes = F.one_hot(s.argmax(-1), self.num_classes).float()     # (M, B, C)
        mean_prob = (p * torch.softmax(s.float(), -1)).sum(0) / p.sum(0).clamp(min=1)
        return (p * votes).sum(0) + 1e-3 * mean_prob

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """``Σ_m CE(s_m, y)`` over the samples where ``m`` is present, plus ``CE(s, y)`` unless voting."""
        y = batch["label"]
        total = outputs.new_zeros(())
        for m, s_m in self.modality_scores.items():
            p = self._present[m]
            per_sample = F.cross_entropy(s_m.float(), y, reduction="none")
            total = total + (p * per_sample).sum() / p.sum().clamp(min=1)
        if self.combine != "vote":
            total = total + F.cross_entropy(outputs.float(), y)
        return total

    def weights(self) -> dict[str, float]:
        """The learned weight ``exp(a_m)`` of each modality (all 1 unless ``combine="learned"``)."""
        return {m: float(w) for m, w in zip(self.dims, self.log_weights.exp())}


# --------------------------------------------------------------------------------------------
# tensor fusion and gated fusion
# --------------------------------------------------------------------------------------------
class TensorFusion(_EncodedFusion):
    """``s = h(vec([g_1; 1] ⊗ [g_2; 1] ⊗ ... ⊗ [g_M; 1]))``.

    Each ``g_m`` is first projected to ``rank`` features so the outer product stays small
    (``(rank + 1)^M`` entries). The appended 1 keeps lower-order terms: the product contains
    every ``g_m`` alone, every pairwise product and the full product. An absent modality has
    ``g_m = 0``, which removes exactly the terms that involve it.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, rank: int = 8,
                 hidden: int = 128):
        super().__init__(encoders, num_classes)
        self.rank = rank
        self.reduce = nn.ModuleDict({m: nn.Linear(d, rank) for m, d in self.dims.items()})
        self.head = _head((rank + 1) ** len(self.dims), num_classes, hidden)

    def forward(self, batch: Batch) -> Tensor:
        feats, present = self.features(batch)
        z = None
        for m, f in feats.items():
            g = self.reduce[m](f) * present[m][:, None]                 # absent → 0
            g1 = torch.cat([g, torch.ones_like(g[:, :1])], dim=1)         # [g_m; 1]
            z = g1 if z is None else torch.einsum("bi,bj->bij", z, g1).flatten(1)
        return self.head(z)


class GatedFusion(_EncodedFusion):
    """A gated multimodal unit: ``h_m = tanh(W_m g_m)``, per-feature gates
    ``z_m = σ(W_z^m [g_1; ...; g_M])`` computed from all modalities, and
    ``s = head(Σ_m p_m z_m ⊙ h_m)``: the model decides, per sample and per feature, how much to
    trust each modality (an absent one, ``p_m = 0``, contributes nothing). ``last_gates``
    ``(B, M)`` holds each modality's mean gate in the last call, for plots.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, dim: int = 64,
                 hidden: int = 128):
        super().__init__(encoders, num_classes)
        self.transform = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.dims.items()})
        self.gates = nn.ModuleDict({m: nn.Linear(sum(self.dims.values()), dim) for m in self.dims})
        self.head = _head(dim, num_classes, hidden)
        self.last_gates: Tensor | None = None

    def forward(self, batch: Batch) -> Tensor:
        feats, present = self.features(batch)
        joint = torch.cat(list(feats.values()), dim=1)
        fused, gates = 0.0, []
        for m, f in feats.items():
            z = torch.sigmoid(self.gates[m](joint)) * present[m][:, None]     # (B, dim)
            fused = fused + z * torch.tanh(self.transform[m](f))
            gates.append(z.mean(1))
        self.last_gates = torch.stack(gates, dim=1).detach()
        return self.head(fused)


# --------------------------------------------------------------------------------------------
# end-to-end (intermediate) fusion: a cross-attention transformer
# --------------------------------------------------------------------------------------------
class Tokenizer(nn.Module):
    """A modality as a sequence of ``dim``-vectors and a validity mask ``(B, N)``:

    images/spectrograms → the regions of a ``ConvEncoder`` grid, average-pooled ``pool × pool``
    (``H/4 · W/4`` regions when ``pool=1``) and projected;
    token ids → word embeddings (``<pad>`` = 0 is invalid); ``(B, F)`` vectors → one token.
    A learned position embedding is added to every token.
    """

    def __init__(self, example: Tensor, dim: int, *, vocab_size: int | None = None, width: int = 16,
                 pool: int = 2):
        super().__init__()
        self.pool = pool
        if example.dim() == 4 and example.is_floating_point():
            _, c, h, w = example.shape
            self.kind, self.conv = "grid", ConvEncoder(c, (h, w), width=width, out_dim=None)
            gh, gw = self.conv.grid_size
            self.proj, length = nn.Linear(self.conv.grid_dim, dim), (gh // pool) * (gw // pool)
        elif example.dim() == 2 and example.dtype == torch.long:
            if vocab_size is None:
                raise ValueError("a token-id modality needs vocab_size to build its tokenizer")
            self.kind, length = "tokens", example.shape[1]
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        elif example.dim() == 2 and example.is_floating_point():
            self.kind, self.proj, length = "vector", nn.Linear(example.shape[1], dim), 1
        else:
            raise ValueError(
                f"no tokenizer for a modality of shape {tuple(example.shape)} {example.dtype}; expected "
                "(B, C, H, W) float images, (B, L) int64 tokens or (B, F) float vectors"
            )
        self.length = length
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "grid":
            self.conv._check(x)
            fmap = F.avg_pool2d(self.conv.features(x), self.pool)
            tokens = self.proj(fmap.flatten(2).transpose(1, 2))
            valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)
        elif self.kind == "tokens":
            if x.dim() != 2 or x.shape[1] != self.length or x.dtype != torch.long:
                raise ValueError(
                    f"expected (batch, {self.length}) int64 token ids, got {tuple(x.shape)} {x.dtype}"
                )
            tokens, valid = self.embed(x), x != 0
        else:
            tokens = self.proj(x)[:, None, :]
            valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)
        return tokens + self.pos, valid


class CrossAttentionFusion(JointClassifier):
    """End-to-end fusion: each modality's tokens attend to every *other* modality's tokens.

    Per layer and modality ``m`` (a pre-norm transformer block with cross-attention):

        X_m ← X_m + SelfAttn(X_m),   X_m ← X_m + softmax(Q_m K_{-m}^T / sqrt(d_k)) V_{-m},
        X_m ← X_m + MLP(X_m),

    where ``K_{-m}, V_{-m}`` come from the concatenated tokens of the other modalities. Then
    each modality's tokens are mean-pooled over valid positions and ``s = h([pool_1; ...; p])``.
    Absent modalities are masked out of every attention and pooling. ``last_attention`` holds the
    cross-attention weights of the last call, ``{(layer, m): (B, heads, N_m, N_{-m})}``.
    """

    def __init__(self, example: Mapping[str, Tensor], num_classes: int, *, dim: int = 64,
                 width: int = 16, heads: int = 4, layers: int = 1, hidden: int = 128,
                 dropout: float = 0.1, vocab_sizes: Mapping[str, int | None] | None = None):
        super().__init__(list(example), num_classes)
        from mmcourse.models.attention import TransformerBlock

        vocab_sizes = vocab_sizes or {}
        self.tokenizers = nn.ModuleDict({
            m: Tokenizer(x, dim, vocab_size=vocab_sizes.get(m), width=width) for m, x in example.items()
        })
        self.blocks = nn.ModuleList([
            nn.ModuleDict({m: TransformerBlock(dim, heads, dropout=dropout, cross=True) for m in example})
            for _ in range(layers)
        ])
        self.norm = nn.LayerNorm(dim)
        self.head = _head(dim * len(example) + len(example), num_classes, hidden)
        self.dim = dim
        self.last_attention: dict = {}

    def forward(self, batch: Batch) -> Tensor:
        size = self._check(batch)
        dev = self._device()
        tokens, valid, present = {}, {}, {}
        for m, tok in self.tokenizers.items():
            present[m] = self.present(batch, m, size, dev)
            if batch[m] is None:
                tokens[m] = torch.zeros(size, tok.length, self.dim, device=dev)
                valid[m] = torch.zeros(size, tok.length, dtype=torch.bool, device=dev)
            else:
                tokens[m], valid[m] = tok(batch[m])
                valid[m] = valid[m] & (present[m][:, None] > 0)
        self.last_attention = {}
        for layer, blocks in enumerate(self.blocks):
            updated = {}
            for m, block in blocks.items():
                others = [o for o in self.modalities if o != m]
                context = torch.cat([tokens[o] for o in others], dim=1)
                context_valid = torch.cat([valid[o] for o in others], dim=1)
                updated[m], weights = block(tokens[m], context=context, mask=valid[m],
                                            context_mask=context_valid)
                self.last_attention[(layer, m)] = weights.get("cross")
            tokens = updated
        pooled = []
        for m in self.modalities:
            v = valid[m].to(tokens[m].dtype)[..., None]
            pooled.append((self.norm(tokens[m]) * v).sum(1) / v.sum(1).clamp(min=1))
        flags = torch.stack([present[m] for m in self.modalities], dim=1)
        return self.head(torch.cat([*pooled, flags], dim=1))


# --------------------------------------------------------------------------------------------
# one line to build any strategy
# --------------------------------------------------------------------------------------------
STRATEGIES = ("early", "late", "late-learned", "vote", "cross-attention", "tensor", "gated")


def _train_split(data) -> ModalDataset:
    if isinstance(data, Splits):
        return data.train
    if isinstance(data, ModalDataset):
        return data
    raise TypeError(f"make_fusion needs a Splits or a ModalDataset, got {type(data).__name__}")


def _vocab_size(data, modality: str, vocab_sizes: Mapping[str, int] | None) -> int | None:
    if vocab_sizes and modality in vocab_sizes:
        return vocab_sizes[modality]
    if isinstance(data, Splits) and "vocab" in data.info:
        return len(data.info["vocab"])
    return None


def data_modalities(data) -> tuple[str, ...]:
    """The modality keys of a dataset: every tensor but ``label`` and the ``*_mask`` flags."""
    keys = _train_split(data).keys
    return tuple(k for k in keys if k != "label" and not k.endswith("_mask"))


def make_fusion(strategy: str, data, *, modalities: Sequence[str] | None = None,
                num_classes: int | None = None, dim: int = 64, width: int = 16, seed: int = 0,
                vocab_sizes: Mapping[str, int] | None = None, **options) -> JointClassifier:
    """Build a fusion model for ``data`` (a ``Splits`` or a ``ModalDataset``) in one line.

    ``strategy`` is one of ``STRATEGIES``; every strategy gets the same per-modality encoders
    (``encoder_for``, ``dim`` features, conv ``width``), so comparisons are on equal terms.
    ``modalities`` defaults to all of the data's; ``num_classes`` to ``max(label) + 1``;
    ``options`` go to the model's constructor (e.g. ``hidden``, ``rank``, ``layers``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown fusion strategy {strategy!r}; choose one of {STRATEGIES}")
    train = _train_split(data)
    modalities = tuple(modalities or data_modalities(data))
    check_batch(train.tensors, {m: tuple(train.tensors[m].shape[1:]) for m in modalities
                                if m in train}, "make_fusion")
    missing = [m for m in modalities if m not in train]
    if missing:
        raise KeyError(f"make_fusion: the data has no modality {missing}; it has {list(train.keys)}")
    if num_classes is None:
        num_classes = int(train.tensors["label"].max()) + 1
    torch.manual_seed(seed)
    example = {m: train.tensors[m][:2] for m in modalities}
    vocab = {m: _vocab_size(data, m, vocab_sizes) for m in modalities}
    if strategy == "cross-attention":
        return CrossAttentionFusion(example, num_classes, dim=dim, width=width, vocab_sizes=vocab,
                                    **options)
    encoders = {m: encoder_for(x, dim, vocab_size=vocab[m], width=width) for m, x in example.items()}
    if strategy == "early":
        return EarlyFusion(encoders, num_classes, **options)
    if strategy in ("late", "late-learned", "vote"):
        combine = {"late": "mean", "late-learned": "learned", "vote": "vote"}[strategy]
        return LateFusion(encoders, num_classes, combine=combine, **options)
    if strategy == "tensor":
        return TensorFusion(encoders, num_classes, **options)
    return GatedFusion(encoders, num_classes, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters, for comparing strategies on equal budgets."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
