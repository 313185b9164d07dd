"""Training: one ``fit()`` / ``evaluate()`` loop for every model of the course.

``loop`` (fit, evaluate), ``objective`` (the loss of a ``ModelOutput``), ``batches`` (a dataset
as batch dicts on a device), ``precision`` (AMP on CUDA), ``checkpoints`` and ``history``;
``distributed`` (the same ``fit()`` under ``torchrun``, with DistributedDataParallel) and ``cli``
(``mmcourse train CHAPTER``: a chapter's model trained end to end outside a notebook).
"""

from mmcourse.train.batches import iterate_batches, prepare, to_device
from mmcourse.train.checkpoints import load_checkpoint, model_signature, save_checkpoint
from mmcourse.train.history import History
from mmcourse.train.loop import evaluate, fit
from mmcourse.train.objective import classification_loss, default_loss, output_loss
from mmcourse.train.precision import amp_dtype

__all__ = [
    "History", "amp_dtype", "classification_loss", "default_loss", "evaluate", "fit", "iterate_batches",
    "load_checkpoint", "model_signature", "output_loss", "prepare", "save_checkpoint", "to_device",
]
