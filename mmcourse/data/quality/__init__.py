"""Data-quality problems on demand: seeded corruptions of any ``ModalDataset`` split.

Every corruption is a function ``corruption(data, level, *, modality=..., seed=0)`` that returns a
**new** ``ModalDataset``; the clean split is never modified in place (tensors that change are
copied, the others are shared read-only). Because ``level`` always comes second,
``functools.partial(gaussian_noise, modality="image")`` is a one-argument-per-level corruption
that ``mmcourse.robustness.robustness_curve`` can sweep, and ``compose`` chains several.

One idea per module; every name is importable from here, ``from mmcourse.data.quality import ...``.
With ``x`` a sample of modality ``m`` and ``y`` its label:

* ``class_imbalance`` -- ``imbalance(data, ratio)``: class ``c`` (in order of ``order``) keeps
  ``n_c = n_max · ratio^(−r_c/(C−1))`` samples, a long tail from ``n_max`` down to ``n_max/ratio``
  (``profile="step"``: the second half of the classes keep ``n_max/ratio``); ``class_counts``.
* ``missing`` -- missing modalities: a boolean mask ``batch[m + "_mask"]`` (1 = present) is
  *added*; the values stay as they were, so "absent" is never confused with "all zeros".
  ``drop_modality`` drops each sample's ``m`` with probability ``p``; ``remove_modality`` drops it
  everywhere (a sensor that died at test time), ``set_missing`` where a boolean says so; ``unpair``
  keeps a fraction of fully paired samples and gives every other sample only one modality.
* ``noise`` -- images: ``gaussian_noise`` ``x + σε``, ``salt_and_pepper`` (a fraction of pixels set
  to the split's min or max), ``occlusion`` (a ``k×k`` square set to the split's min); audio (or any
  signal): ``noise_at_snr`` adds ``ε ~ N(0, P_x / 10^(SNR/10))`` with ``P_x`` the sample's power
  (variance), so ``10 log10(P_x / P_ε) = SNR`` dB; text: ``token_dropout`` deletes tokens with
  probability ``p``, ``token_substitution`` replaces them by random words; labels: ``label_noise``
  moves ``y`` to a different class, uniformly, with probability ``p``.
* ``asymmetry`` -- ``fewer_samples`` (only ``1/factor`` of the samples have ``m``),
  ``rescale`` (``a·x + b``: a different value range), ``resize`` (a different image size),
  ``random_projection`` (``x ↦ R vec(x)``, a different feature dimension).
* ``misalignment`` -- ``shuffle_pairs`` re-pairs a fraction of samples' ``m`` with other samples'
  (``meta["mispaired"]`` records which), ``time_shift`` moves the audio frames by ``s`` frames
  (the vacated frames filled with the clip's minimum, i.e. silence).
* ``combine`` -- ``compose(f, g)(data) = g(f(data))``; ``concat`` stacks splits into one.
* ``_split`` -- what every corruption shares: the input checks, the seeded generator, the
  copy-on-write result, and the presence mask (``MASK_SUFFIX``, ``mask_of``).

Bookkeeping goes to ``meta``: ``clean_label`` after label noise, ``mispaired`` after re-pairing.
"""

# ``Corruption`` (the type of a corruption) was importable from here but never in ``__all__``; it stays so
from mmcourse.data.quality._split import MASK_SUFFIX, mask_of
from mmcourse.data.quality._split import Corruption as Corruption
from mmcourse.data.quality.asymmetry import fewer_samples, random_projection, rescale, resize
from mmcourse.data.quality.class_imbalance import class_counts, imbalance
from mmcourse.data.quality.combine import compose, concat
from mmcourse.data.quality.misalignment import shuffle_pairs, time_shift
from mmcourse.data.quality.missing import drop_modality, remove_modality, set_missing, unpair
from mmcourse.data.quality.noise import (
    gaussian_noise,
    label_noise,
    noise_at_snr,
    occlusion,
    salt_and_pepper,
    token_dropout,
    token_substitution,
)

__all__ = [
    "MASK_SUFFIX", "class_counts", "compose", "concat", "drop_modality", "fewer_samples",
    "gaussian_noise", "imbalance", "label_noise", "mask_of", "noise_at_snr", "occlusion",
    "random_projection", "remove_modality", "rescale", "resize", "salt_and_pepper", "set_missing",
    "shuffle_pairs", "time_shift", "token_dropout", "token_substitution", "unpair",
]
