"""The one output type of every model in the course: ``ModelOutput``.

Every model takes a batch dict (modality name → tensor, plus targets such as ``label`` and
optional ``<modality>_mask`` flags) and returns a ``ModelOutput``. ``fit()`` and ``evaluate()``
rely on this and nothing else. The training objective of an output is

    L = out.loss                                              if the model computed one, else
    L = w · CE(out.logits, y) + Σ_k mean_{i : a_ik > 0} CE(out.aux_logits[k]_i, y_i)

where ``y = batch[target]`` (``fit(target=...)``), ``w = out.logits_weight`` and ``a_ik`` is the
per-sample weight ``out.aux_weights[k]`` (1 where absent). Auxiliary logits are extra heads
trained on the same target -- e.g. late fusion's per-modality experts -- so a model never has to
know which batch key holds the target, and never keeps state between ``forward`` and its loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """What ``model(batch)`` returns.

    * ``logits``: the model's scores -- ``(B, C)`` for a classifier (``P(y | x) = softmax``),
      ``(B, T, V)`` for a sequence model -- or ``None`` (e.g. a dual encoder);
    * ``loss``: a scalar the model computed itself (InfoNCE, teacher-forced cross-entropy), or
      ``None`` to let ``fit()`` use cross-entropy of ``logits`` against the target;
    * ``aux_logits`` / ``aux_weights``: extra ``(B, C)`` heads trained on the same target, and
      their per-sample weights ``(B,)`` (e.g. 0 where a modality is absent);
    * ``logits_weight``: the weight ``w`` of ``CE(logits, y)`` in the objective (0 when the
      logits are not differentiable, as for majority voting);
    * ``extras``: anything a plot or a hook may want (attention weights, gates, embeddings,
      per-modality scores); never read by ``fit()``.
    """

    logits: Tensor | None = None
    loss: Tensor | None = None
    aux_logits: dict[str, Tensor] = field(default_factory=dict)
    aux_weights: dict[str, Tensor] = field(default_factory=dict)
    logits_weight: float = 1.0
    extras: dict = field(default_factory=dict)
