"""Multimodal fusion: three places to combine modalities, one interface.

Every model here is a **joint classifier** (``mmcourse.models.joint``): it reads a batch dict of
modality tensors ``{"image": x1, "audio": x2, "text": x3, ...}`` and returns a ``ModelOutput``
whose logits are the scores ``s(y, x1, x2, ...)`` of every class ``y`` ``(B, C)``, from which

    P(y | x1, x2) = softmax_y s(y, x1, x2) = exp s(y, x1, x2) / Σ_y' exp s(y', x1, x2).

Where the modalities meet is the strategy (notation: ``g_m`` encodes modality ``m`` to a feature
vector, ``h`` is a classifier head):

* **feature-level (early)** ``EarlyFusion``: ``s = h([g_1(x1); g_2(x2); ...])`` -- concatenate the
  features, one head.
* **model-level (late)** ``LateFusion``: one full model per modality, ``s_m = h_m(g_m(x_m))``,
  combined at the output: averaged logits ``s = (1/M) Σ_m s_m``, learned weights
  ``s = Σ_m w_m log softmax(s_m)`` (``w_m = 1`` is the product of experts), or decision-level
  voting (each modality votes for ``argmax s_m``; the majority wins).
* **end-to-end (intermediate)** ``CrossAttentionFusion`` (``mmcourse.models.cross_attention_fusion``):
  each modality is a sequence of tokens
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

from mmcourse.config import seeded
from mmcourse.data.base import ModalDataset, Splits, check_batch
from mmcourse.models.encoders import encoder_for
from mmcourse.models.joint import Batch, JointClassifier, classifier_head
from mmcourse.models.output import ModelOutput


# --------------------------------------------------------------------------------------------
# fusions over per-modality feature vectors g_m(x_m)
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# feature-level (early) fusion
# --------------------------------------------------------------------------------------------
class EarlyFusion(_EncodedFusion):
    """``s = h([g_1(x1); ...; g_M(x_M); present_1 .. present_M])``: concatenated features (and the
    presence flags, so the head can tell "absent" from "all-zero features"), one head."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, hidden: int = 128):
        super().__init__(encoders, num_classes)
        self.head = classifier_head(sum(self.dims.values()) + len(self.dims), num_classes, hidden)

    def forward(self, batch: Batch) -> ModelOutput:
        feats, present = self.features(batch)
        z = torch.cat([*feats.values(), torch.stack(list(present.values()), dim=1)], dim=1)
        return ModelOutput(logits=self.head(z))


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

    ``p_m`` is 1 where modality ``m`` is present. With ``expert_losses=True`` (the default)
    training minimises every expert's own cross-entropy (over the samples where its modality is
    present) plus, for mean/learned, that of the combination: the output carries the experts'
    scores as ``aux_logits`` (weighted by ``p_m``) and ``fit()`` adds their losses. With
    ``expert_losses=False`` only the combination is trained, like every other strategy (voting
    needs the expert losses: its combination is not differentiable). ``extras["modality_scores"]``
    holds each ``s_m`` and ``extras["present"]`` each ``p_m``, e.g. for OGM-GE or a plot.
    """

    COMBINE = ("mean", "learned", "vote")

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, combine: str = "mean",
                 hidden: int = 128, expert_losses: bool = True):
        super().__init__(encoders, num_classes)
        if combine not in self.COMBINE:
            raise ValueError(f"combine must be one of {self.COMBINE}, got {combine!r}")
        if combine == "vote" and not expert_losses:
            raise ValueError("combine='vote' needs expert_losses=True: a vote is not differentiable")
        self.combine, self.expert_losses = combine, bool(expert_losses)
        self.heads = nn.ModuleDict({m: classifier_head(d, num_classes, hidden) for m, d in self.dims.items()})
        self.log_weights = nn.Parameter(torch.zeros(len(self.dims)))  # a_m, used by "learned"

    def combine_scores(self, scores: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """``s`` from the experts' ``s_m`` ``(B, C)`` and presence ``p_m`` ``(B,)``."""
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

    def forward(self, batch: Batch) -> ModelOutput:
        feats, present = self.features(batch)
        scores = {m: self.heads[m](f) for m, f in feats.items()}
        return ModelOutput(
            logits=self.combine_scores(scores, present),
            aux_logits=scores if self.expert_losses else {},
            aux_weights=present if self.expert_losses else {},
            logits_weight=0.0 if self.combine == "vote" else 1.0,
            extras={"modality_scores": scores, "present": present},
        )

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
        self.head = classifier_head((rank + 1) ** len(self.dims), num_classes, hidden)

    def forward(self, batch: Batch) -> ModelOutput:
        feats, present = self.features(batch)
        z = None
        for m, f in feats.items():
            g = self.reduce[m](f) * present[m][:, None]                 # absent → 0
            g1 = torch.cat([g, torch.ones_like(g[:, :1])], dim=1)         # [g_m; 1]
            z = g1 if z is None else torch.einsum("bi,bj->bij", z, g1).flatten(1)
        return ModelOutput(logits=self.head(z))


class GatedFusion(_EncodedFusion):
    """A gated multimodal unit: ``h_m = tanh(W_m g_m)``, per-feature gates
    ``z_m = σ(W_z^m [g_1; ...; g_M])`` computed from all modalities, and
    ``s = head(Σ_m p_m z_m ⊙ h_m)``: the model decides, per sample and per feature, how much to
    trust each modality (an absent one, ``p_m = 0``, contributes nothing). The output's
    ``extras["gates"]`` ``(B, M)`` holds each modality's mean gate, for plots.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, dim: int = 64,
                 hidden: int = 128):
        super().__init__(encoders, num_classes)
        self.transform = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.dims.items()})
        self.gates = nn.ModuleDict({m: nn.Linear(sum(self.dims.values()), dim) for m in self.dims})
        self.head = classifier_head(dim, num_classes, hidden)

    def forward(self, batch: Batch) -> ModelOutput:
        feats, present = self.features(batch)
        joint = torch.cat(list(feats.values()), dim=1)
        fused, gates = 0.0, []
        for m, f in feats.items():
            z = torch.sigmoid(self.gates[m](joint)) * present[m][:, None]     # (B, dim)
            fused = fused + z * torch.tanh(self.transform[m](f))
            gates.append(z.mean(1))
        return ModelOutput(logits=self.head(fused), extras={"gates": torch.stack(gates, dim=1).detach()})


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
    ``options`` go to the model's constructor (e.g. ``hidden``, ``rank``, ``layers``,
    ``expert_losses``). ``seed`` sets the initial weights without touching the global RNG.
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
    example = {m: train.tensors[m][:2] for m in modalities}
    vocab = {m: _vocab_size(data, m, vocab_sizes) for m in modalities}
    with seeded(seed):
        return _build(strategy, example, num_classes, dim, width, vocab, options)


def _build(strategy, example, num_classes, dim, width, vocab, options) -> JointClassifier:
    if strategy == "cross-attention":
        from mmcourse.models.cross_attention_fusion import CrossAttentionFusion

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
