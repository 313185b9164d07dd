"""Remedies for data-quality problems, and how to measure what survives a corruption.

One idea per module; every name is importable from here, ``from mmcourse.robustness import ...``.

* ``imbalance``    -- class imbalance: ``class_weights`` (``w_c = N / (C · n_c)``) with
  ``weighted_cross_entropy``, ``focal_loss`` (``(1 − p_i)^γ`` down-weights easy samples), ``resample``;
* ``missing``      -- missing modalities: ``impute`` (zero / training mean), ``RidgeImputer``
  (``W = (XᵀX + λI)⁻¹ XᵀY`` from another modality), ``ModalityDropout`` (train without a modality);
* ``noise``        -- noise and scale: ``augment`` (train on corrupted copies), ``fit_normaliser`` /
  ``normalise`` (``x' = (x − μ_m) / σ_m``);
* ``misalignment`` -- ``pair_scores`` (cosine similarity of each pair) and ``detect_mispaired``;
* ``modulation``   -- modality imbalance: ``OGMGE``, gradients scaled by
  ``k_m = 1 − tanh(α · max(ρ_m − 1, 0))`` (Peng et al., 2022);
* ``curves``       -- ``robustness_curve`` (accuracy at each corruption level), its relative and
  effective robustness ``RR``, ``ER`` (MultiBench), and ``plot_robustness``.
"""

from mmcourse.robustness.curves import RobustnessCurve, plot_robustness, robustness_curve
from mmcourse.robustness.imbalance import class_weights, focal_loss, resample, weighted_cross_entropy
from mmcourse.robustness.misalignment import detect_mispaired, pair_scores
from mmcourse.robustness.missing import ModalityDropout, RidgeImputer, impute
from mmcourse.robustness.modulation import OGMGE
from mmcourse.robustness.noise import augment, fit_normaliser, normalise

__all__ = [
    "OGMGE", "ModalityDropout", "RidgeImputer", "RobustnessCurve", "augment", "class_weights",
    "detect_mispaired", "fit_normaliser", "focal_loss", "impute", "normalise", "pair_scores",
    "plot_robustness", "resample", "robustness_curve", "weighted_cross_entropy",
]
