"""Evaluation metrics, written out in NumPy so that each one can be read as its formula.

One idea per module; every name is importable from here, ``from mmcourse.metrics import ...``.

Classification (``classification``)
    ``accuracy``, ``precision_recall_f1``, ``confusion_matrix``.
Calibration (``calibration``)
    ``reliability_bins`` and ``expected_calibration_error``.
Retrieval (``retrieval``) over a similarity matrix ``S`` of shape ``(Q, D)`` (query ``i``
against database item ``j``)
    ``ranks``, ``median_rank``, ``recall_at_k``, ``mean_average_precision``,
    ``precision_recall_at_threshold``, ``precision_recall_curve_at_thresholds``.
Captioning (``generation``)
    ``bleu`` (corpus BLEU-1..4) and ``cider_d`` (CIDEr-D).
Recognition (``edit_distance``)
    ``edit_distance``, ``edit_operations`` (S, D, I) and ``digit_error_rate`` (checked against jiwer).
Inputs (``_inputs``)
    ``to_numpy``: a tensor, array or list as a NumPy array, detached and on the CPU.

Every function accepts PyTorch tensors, NumPy arrays or (nested) lists. Classes are integers
``0 .. C-1``. For retrieval, the ground truth ``relevant`` is ``None`` (query ``i`` matches item
``i``), one item index per query, or a boolean ``(Q, D)`` matrix; ties in similarity are broken
*pessimistically* (see ``mmcourse.metrics.retrieval``).

scikit-learn is the reference these functions are tested against; neither it nor PyTorch is
imported here.
"""

from mmcourse.metrics._inputs import to_numpy
from mmcourse.metrics.calibration import ReliabilityBins, expected_calibration_error, reliability_bins
from mmcourse.metrics.classification import PrecisionRecallF1, accuracy, confusion_matrix, precision_recall_f1
from mmcourse.metrics.edits import EditCounts, digit_error_rate, edit_distance, edit_operations
from mmcourse.metrics.generation import bleu, cider_d
from mmcourse.metrics.retrieval import (
    ThresholdPrecisionRecall,
    mean_average_precision,
    median_rank,
    precision_recall_at_threshold,
    precision_recall_curve_at_thresholds,
    ranks,
    recall_at_k,
)

__all__ = [
    "EditCounts",
    "PrecisionRecallF1",
    "ReliabilityBins",
    "ThresholdPrecisionRecall",
    "accuracy",
    "bleu",
    "cider_d",
    "confusion_matrix",
    "digit_error_rate",
    "edit_distance",
    "edit_operations",
    "expected_calibration_error",
    "mean_average_precision",
    "median_rank",
    "precision_recall_at_threshold",
    "precision_recall_curve_at_thresholds",
    "precision_recall_f1",
    "ranks",
    "recall_at_k",
    "reliability_bins",
    "to_numpy",
]
