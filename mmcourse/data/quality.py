"""Data-quality problems on demand: seeded corruptions of any ``ModalDataset`` split.

Every corruption is a function ``corruption(data, level, *, modality=..., seed=0)`` that returns a
**new** ``ModalDataset``; the clean split is never modified in place (tensors that change are
copied, the others are shared read-only). Because ``level`` always comes second,
``functools.partial(gaussian_noise, modality="image")`` is a one-argument-per-level corruption
that ``mmcourse.robustness.robustness_curve`` can sweep, and ``compose`` chains several.

The five families, with ``x`` a sample of modality ``m`` and ``y`` its label:

* **imbalance** -- ``imbalance(data, ratio)``: class ``c`` (in order of ``order``) keeps
  ``n_c = n_max · ratio^(−r_c/(C−1))`` samples, a long tail from ``n_max`` down to ``n_max/ratio``
  (``profile="step"``: the second half of the classes keep ``n_max/ratio``).
* **missing modalities** -- a boolean mask ``batch[m + "_mask"]`` (1 = present) is *added*; the
  values stay as they were, so "absent" is never confused with "all zeros". ``drop_modality``
  drops each sample's ``m`` with probability ``p``; ``remove_modality`` drops it everywhere (a
  sensor that died at test time), ``set_missing`` where a boolean says so; ``unpair`` keeps a
  fraction of fully paired samples and gives every other sample only one modality.
* **noise** -- images: ``gaussian_noise`` ``x + σε``, ``salt_and_pepper`` (a fraction of pixels set
  to the split's min or max), ``occlusion`` (a ``k×k`` square set to the split's min); audio (or any
  signal): ``noise_at_snr`` adds ``ε ~ N(0, P_x / 10^(SNR/10))`` with ``P_x`` the sample's power
  (variance), so ``10 log10(P_x / P_ε) = SNR`` dB; text: ``token_dropout`` deletes tokens with
  probability ``p``, ``token_substitution`` replaces them by random words; labels: ``label_noise``
  moves ``y`` to a different class, uniformly, with probability ``p``.
* **asymmetry** -- ``fewer_samples`` (only ``1/factor`` of the samples have ``m``),
  ``rescale`` (``a·x + b``: a different value range), ``resize`` (a different image size),
  ``random_projection`` (``x ↦ R vec(x)``, a different feature dimension).
* **misalignment** -- ``shuffle_pairs`` re-pairs a fraction of samples' ``m`` with other samples'
  (``meta["mispaired"]`` records which), ``time_shift`` moves the audio frames by ``s`` frames
  (the vacated frames filled with the clip's minimum, i.e. silence).

Bookkeeping goes to ``meta``: ``clean_label`` after label noise, ``mispaired`` after re-pairing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data.base import ModalDataset

Corruption = Callable[..., ModalDataset]

__all__ = [
    "MASK_SUFFIX", "class_counts", "compose", "concat", "drop_modality", "fewer_samples",
    "gaussian_noise", "imbalance", "label_noise", "mask_of", "noise_at_snr", "occlusion",
    "random_projection", "remove_modality", "rescale", "resize", "salt_and_pepper", "set_missing",
    "shuffle_pairs", "time_shift", "token_dropout", "token_substitution", "unpair",
]

MASK_SUFFIX = "_mask"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _check_data(data, where: str) -> ModalDataset:
    if not isinstance(data, ModalDataset):
        raise TypeError(f"{where} expects a ModalDataset split (e.g. splits.test), got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{where}: the split {data.name!r} is empty")
    return data


def _check_modality(data: ModalDataset, modality: str, where: str, *, floating: bool | None = None) -> Tensor:
    if modality not in data or modality == "label" or modality.endswith(MASK_SUFFIX):
        mods = [k for k in data.keys if k != "label" and not k.endswith(MASK_SUFFIX)]
        raise KeyError(f"{where}: no modality {modality!r} in split {data.name!r}; it has {mods}")
    x = data.tensors[modality]
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{where} needs a float modality; {modality!r} is {x.dtype}")
    if floating is False and x.is_floating_point():
        raise TypeError(f"{where} needs token ids (int64); {modality!r} is {x.dtype}")
    return x


def _check_prob(p, name: str, where: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: {name} must be a probability in [0, 1], got {p}")
    return p


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _replace(data: ModalDataset, tensors: dict | None = None, meta: dict | None = None,
             index: Tensor | None = None, shapes: dict | None = None) -> ModalDataset:
    """A new split: ``data`` with some tensors / meta entries replaced (or a subset at ``index``)."""
    base = data.subset(index) if index is not None else data
    return ModalDataset({**base.tensors, **(tensors or {})}, name=data.name,
                        meta={**base.meta, **(meta or {})}, shapes={**data.shapes, **(shapes or {})})


def mask_of(data: ModalDataset, modality: str) -> Tensor:
    """``(N,)`` bool: where ``modality`` is present (all True if the split has no mask for it)."""
    mask = data.tensors.get(modality + MASK_SUFFIX)
    return torch.ones(len(data), dtype=torch.bool) if mask is None else mask.to(torch.bool)


def _with_mask(data: ModalDataset, modality: str, keep: Tensor) -> ModalDataset:
    """Add (AND with any existing) the presence mask ``keep`` for ``modality``."""
    mask = mask_of(data, modality) & keep.to(torch.bool)
    return _replace(data, {modality + MASK_SUFFIX: mask},
                    shapes={modality + MASK_SUFFIX: f"() bool, True where {modality} is present"})


def compose(*corruptions: Callable[[ModalDataset], ModalDataset]) -> Callable[[ModalDataset], ModalDataset]:
    """``compose(f, g)(data) = g(f(data))``: apply corruptions left to right."""
    for c in corruptions:
        if not callable(c):
            raise TypeError(f"compose expects callables data -> data, got {type(c).__name__}")

    def apply(data: ModalDataset) -> ModalDataset:
        for c in corruptions:
            data = c(data)
        return data

    return apply


def concat(datasets: Sequence[ModalDataset], name: str | None = None) -> ModalDataset:
    """Stack splits with the same keys into one (e.g. clean + noisy copies for augmentation).

    A presence mask that only some of the splits have is filled with True for the others.
    """
    if not datasets:
        raise ValueError("concat needs at least one ModalDataset")
    data_keys = {k for k in datasets[0].keys if not k.endswith(MASK_SUFFIX)}
    for d in datasets:
        if set(d.keys) - {k for k in d.keys if k.endswith(MASK_SUFFIX)} != data_keys:
            raise ValueError(f"concat: splits have different modalities: {[list(d.keys) for d in datasets]}")
    tensors = {}
    for k in dict.fromkeys(k for d in datasets for k in d.keys):      # first-seen order
        if k.endswith(MASK_SUFFIX):
            tensors[k] = torch.cat([mask_of(d, k[: -len(MASK_SUFFIX)]) for d in datasets])
        else:
            tensors[k] = torch.cat([d.tensors[k] for d in datasets])
    meta_keys = set.intersection(*(set(d.meta) for d in datasets))
    meta = {}
    for k in meta_keys:
        parts = [d.meta[k] for d in datasets]
        meta[k] = torch.cat(parts) if all(isinstance(p, Tensor) for p in parts) else \
            [v for p in parts for v in p]
    shapes = {k: v for d in datasets for k, v in d.shapes.items()}
    return ModalDataset(tensors, name=name or datasets[0].name, meta=meta, shapes=shapes)


# --------------------------------------------------------------------------------------------
# imbalance
# --------------------------------------------------------------------------------------------
def class_counts(labels: Tensor, num_classes: int | None = None) -> Tensor:
    """``(C,)`` number of samples of each class."""
    return torch.bincount(labels.long(), minlength=num_classes or 0)


def imbalance(data: ModalDataset, ratio: float, *, profile: str = "exponential",
              order: Sequence[int] | None = None, target: str = "label", seed: int = 0) -> ModalDataset:
    """Subsample classes to an imbalance ``ratio = n_max / n_min`` (e.g. 10 for a 10:1 long tail).

    The class at rank ``r`` of ``order`` (default: 0, 1, ..., C−1) keeps
    ``n_r = round(n_max · ratio^(−r/(C−1)))`` samples (``profile="exponential"``), or
    ``n_max`` for the first half and ``n_max/ratio`` for the rest (``profile="step"``), where
    ``n_max`` is the smallest class count of the clean split. Samples are drawn at random.
    """
    data = _check_data(data, "imbalance")
    if float(ratio) < 1:
        raise ValueError(f"imbalance: ratio must be >= 1 (n_max / n_min), got {ratio}")
    if profile not in ("exponential", "step"):
        raise ValueError(f"imbalance: profile must be 'exponential' or 'step', got {profile!r}")
    if target not in data:
        raise KeyError(f"imbalance: the split has no {target!r}; it has {list(data.keys)}")
    y = data.tensors[target]
    classes = torch.unique(y).tolist()
    order = list(classes if order is None else order)
    if sorted(order) != sorted(classes):
        raise ValueError(f"imbalance: order must list every class {classes} once, got {order}")
    counts = class_counts(y)
    n_max = int(min(counts[c] for c in classes))
    gen = _generator(seed)
    keep = []
    C = len(order)
    for r, c in enumerate(order):
        if profile == "exponential":
            n = n_max * float(ratio) ** (-r / max(C - 1, 1))
        else:
            n = n_max if r < (C + 1) // 2 else n_max / float(ratio)
        n = max(1, round(n))
        idx = torch.nonzero(y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    keep = torch.cat(keep).sort().values
    return _replace(data, index=keep)


# --------------------------------------------------------------------------------------------
# missing modalities
# --------------------------------------------------------------------------------------------
def drop_modality(data: ModalDataset, p: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Mark ``modality`` absent in each sample independently with probability ``p``.

    Adds ``modality + "_mask"`` (bool, True = present; combined with any existing mask by AND);
    the values themselves are left untouched.
    """
    data = _check_data(data, "drop_modality")
    _check_modality(data, modality, "drop_modality")
    p = _check_prob(p, "p", "drop_modality")
    keep = torch.rand(len(data), generator=_generator(seed)) >= p
    return _with_mask(data, modality, keep)


def remove_modality(data: ModalDataset, *, modality: str) -> ModalDataset:
    """``modality`` absent from every sample (its mask all False), e.g. a sensor lost at test time."""
    data = _check_data(data, "remove_modality")
    _check_modality(data, modality, "remove_modality")
    return _with_mask(data, modality, torch.zeros(len(data), dtype=torch.bool))


def set_missing(data: ModalDataset, where: Tensor, *, modality: str) -> ModalDataset:
    """Mark ``modality`` absent at the samples where ``where`` (bool ``(N,)``) is True, e.g. the
    pairs a detector flagged as mispaired."""
    data = _check_data(data, "set_missing")
    _check_modality(data, modality, "set_missing")
    where = torch.as_tensor(where, dtype=torch.bool)
    if where.shape != (len(data),):
        raise ValueError(f"set_missing: where must have shape ({len(data)},), got {tuple(where.shape)}")
    return _with_mask(data, modality, ~where)


def unpair(data: ModalDataset, paired_fraction: float, *, modalities: Sequence[str] | None = None,
           seed: int = 0) -> ModalDataset:
    """Keep ``paired_fraction`` of the samples with every modality; each other sample keeps
    exactly one of ``modalities`` (chosen uniformly), as when most data come unpaired."""
    data = _check_data(data, "unpair")
    paired_fraction = _check_prob(paired_fraction, "paired_fraction", "unpair")
    if modalities is None:
        modalities = [k for k in data.keys if k != "label" and not k.endswith(MASK_SUFFIX)]
    modalities = list(modalities)
    if len(modalities) < 2:
        raise ValueError(f"unpair needs at least two modalities, got {modalities}")
    for m in modalities:
        _check_modality(data, m, "unpair")
    gen = _generator(seed)
    n = len(data)
    paired = torch.zeros(n, dtype=torch.bool)
    paired[torch.randperm(n, generator=gen)[: round(paired_fraction * n)]] = True
    only = torch.randint(len(modalities), (n,), generator=gen)
    for i, m in enumerate(modalities):
        data = _with_mask(data, m, paired | (only == i))
    return _replace(data, meta={"paired": paired})


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------
def gaussian_noise(data: ModalDataset, std: float, *, modality: str = "image", seed: int = 0) -> ModalDataset:
    """``x + σ ε`` with ``ε ~ N(0, I)``, ``σ = std`` (in the modality's own units)."""
    data = _check_data(data, "gaussian_noise")
    x = _check_modality(data, modality, "gaussian_noise", floating=True)
    if float(std) < 0:
        raise ValueError(f"gaussian_noise: std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=_generator(seed), dtype=x.dtype)
    return _replace(data, {modality: x + float(std) * noise})


def salt_and_pepper(data: ModalDataset, fraction: float, *, modality: str = "image",
                    seed: int = 0) -> ModalDataset:
    """Set a random ``fraction`` of the values to the split's minimum or maximum (half each)."""
    data = _check_data(data, "salt_and_pepper")
    x = _check_modality(data, modality, "salt_and_pepper", floating=True)
    fraction = _check_prob(fraction, "fraction", "salt_and_pepper")
    gen = _generator(seed)
    hit = torch.rand(x.shape, generator=gen) < fraction
    salt = torch.rand(x.shape, generator=gen) < 0.5
    low, high = x.min(), x.max()
    out = torch.where(hit & salt, high, torch.where(hit & ~salt, low, x))
    return _replace(data, {modality: out})


def occlusion(data: ModalDataset, size: int, *, modality: str = "image", seed: int = 0) -> ModalDataset:
    """Blank a ``size × size`` square at a random place in each image (set to the split's min)."""
    data = _check_data(data, "occlusion")
    x = _check_modality(data, modality, "occlusion", floating=True)
    if x.dim() != 4:
        raise ValueError(f"occlusion needs images (N, C, H, W); {modality!r} is {tuple(x.shape)}")
    size = int(size)
    H, W = x.shape[-2:]
    if not 0 <= size <= min(H, W):
        raise ValueError(f"occlusion: size must be in [0, {min(H, W)}], got {size}")
    if size == 0:
        return _replace(data, {modality: x.clone()})
    gen = _generator(seed)
    top = torch.randint(H - size + 1, (len(x),), generator=gen)
    left = torch.randint(W - size + 1, (len(x),), generator=gen)
    rows, cols = torch.arange(H), torch.arange(W)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + size)       # (N, H)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + size)     # (N, W)
    square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                     # (N, 1, H, W)
    return _replace(data, {modality: torch.where(square, x.min(), x)})


def noise_at_snr(data: ModalDataset, snr_db: float, *, modality: str = "audio",
                 seed: int = 0) -> ModalDataset:
    """Additive Gaussian noise at a signal-to-noise ratio of ``snr_db`` decibels, per sample:

    ``P_x = Var(x)`` over the sample's values, ``P_ε = P_x / 10^(SNR/10)``, ``x' = x + √P_ε · ε``.
    0 dB means noise as strong as the signal; lower is noisier.
    """
    data = _check_data(data, "noise_at_snr")
    x = _check_modality(data, modality, "noise_at_snr", floating=True)
    snr_db = float(snr_db)
    if snr_db != snr_db or snr_db == float("inf"):
        raise ValueError(f"noise_at_snr: snr_db must be a finite number, got {snr_db}")
    dims = tuple(range(1, x.dim()))
    power = x.var(dim=dims, keepdim=True, unbiased=False) if dims else x.var().expand_as(x)
    noise = torch.randn(x.shape, generator=_generator(seed), dtype=x.dtype)
    return _replace(data, {modality: x + (power / 10 ** (snr_db / 10)).sqrt() * noise})


def _real_tokens(ids: Tensor, first_word: int) -> Tensor:
    return ids >= first_word


def token_dropout(data: ModalDataset, p: float, *, modality: str = "text", seed: int = 0,
                  first_word: int = 4) -> ModalDataset:
    """Delete each word token with probability ``p``; the survivors move left, padding (id 0)
    fills the end. Ids below ``first_word`` (the special tokens) are never touched."""
    data = _check_data(data, "token_dropout")
    ids = _check_modality(data, modality, "token_dropout", floating=False)
    p = _check_prob(p, "p", "token_dropout")
    if ids.dim() != 2:
        raise ValueError(f"token_dropout needs (N, L) token ids; {modality!r} is {tuple(ids.shape)}")
    keep = ~(_real_tokens(ids, first_word) & (torch.rand(ids.shape, generator=_generator(seed)) < p))
    keep &= ids != 0
    # stable left-compaction: sort positions so kept tokens come first, in their order
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    out = torch.where(keep, ids, torch.zeros_like(ids)).gather(1, order)
    return _replace(data, {modality: out})


def token_substitution(data: ModalDataset, p: float, *, vocab_size: int, modality: str = "text",
                       seed: int = 0, first_word: int = 4) -> ModalDataset:
    """Replace each word token with probability ``p`` by a uniformly random word id in
    ``[first_word, vocab_size)`` (specials and padding are never touched)."""
    data = _check_data(data, "token_substitution")
    ids = _check_modality(data, modality, "token_substitution", floating=False)
    p = _check_prob(p, "p", "token_substitution")
    if int(vocab_size) <= first_word:
        raise ValueError(f"token_substitution: vocab_size must exceed {first_word}, got {vocab_size}")
    gen = _generator(seed)
    hit = _real_tokens(ids, first_word) & (torch.rand(ids.shape, generator=gen) < p)
    random_words = torch.randint(first_word, int(vocab_size), ids.shape, generator=gen)
    return _replace(data, {modality: torch.where(hit, random_words, ids)})


def label_noise(data: ModalDataset, p: float, *, num_classes: int | None = None, target: str = "label",
                seed: int = 0) -> ModalDataset:
    """With probability ``p`` replace ``y`` by a *different* class drawn uniformly (symmetric label
    noise). ``meta["clean_label"]`` keeps the true labels."""
    data = _check_data(data, "label_noise")
    p = _check_prob(p, "p", "label_noise")
    if target not in data:
        raise KeyError(f"label_noise: the split has no {target!r}; it has {list(data.keys)}")
    y = data.tensors[target]
    C = int(num_classes or int(y.max()) + 1)
    if C < 2:
        raise ValueError(f"label_noise needs at least 2 classes, got {C}")
    gen = _generator(seed)
    flip = torch.rand(len(y), generator=gen) < p
    offset = torch.randint(1, C, y.shape, generator=gen)         # 1..C-1: never the same class
    noisy = torch.where(flip, (y + offset) % C, y)
    return _replace(data, {target: noisy}, meta={"clean_label": y.clone()})


# --------------------------------------------------------------------------------------------
# asymmetry
# --------------------------------------------------------------------------------------------
def fewer_samples(data: ModalDataset, factor: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Only ``round(N / factor)`` samples (chosen at random) have ``modality``: e.g. ``factor=10``
    for a modality with 10× fewer samples than the others. Expressed as a presence mask."""
    data = _check_data(data, "fewer_samples")
    _check_modality(data, modality, "fewer_samples")
    if float(factor) < 1:
        raise ValueError(f"fewer_samples: factor must be >= 1, got {factor}")
    n = len(data)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=_generator(seed))[: max(1, round(n / float(factor)))]] = True
    return _with_mask(data, modality, keep)


def rescale(data: ModalDataset, scale: float, *, modality: str, shift: float = 0.0) -> ModalDataset:
    """``a·x + b``: the modality on another value range (e.g. raw 0..255 pixels beside unit-variance
    audio). ``seed`` is not needed: the corruption is deterministic."""
    data = _check_data(data, "rescale")
    x = _check_modality(data, modality, "rescale", floating=True)
    return _replace(data, {modality: x * float(scale) + float(shift)})


def resize(data: ModalDataset, size: int | tuple[int, int], *, modality: str = "image") -> ModalDataset:
    """Bilinear resampling of images ``(N, C, H, W)`` to ``size`` (another resolution)."""
    data = _check_data(data, "resize")
    x = _check_modality(data, modality, "resize", floating=True)
    if x.dim() != 4:
        raise ValueError(f"resize needs images (N, C, H, W); {modality!r} is {tuple(x.shape)}")
    size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return _replace(data, {modality: out}, shapes={modality: f"{tuple(out.shape[1:])} resized"})


def random_projection(data: ModalDataset, dim: int, *, modality: str, seed: int = 0) -> ModalDataset:
    """``x ↦ R vec(x)`` with a fixed Gaussian ``R ∈ R^(dim × D)``, ``R_ij ~ N(0, 1/D)``: the modality
    becomes a ``(N, dim)`` vector of another dimension (same ``R`` for every split with one seed)."""
    data = _check_data(data, "random_projection")
    x = _check_modality(data, modality, "random_projection", floating=True)
    if int(dim) < 1:
        raise ValueError(f"random_projection: dim must be >= 1, got {dim}")
    flat = x.reshape(len(x), -1)
    R = torch.randn(int(dim), flat.shape[1], generator=_generator(seed), dtype=x.dtype) / flat.shape[1] ** 0.5
    return _replace(data, {modality: flat @ R.T}, shapes={modality: f"({int(dim)},) random projection"})


# --------------------------------------------------------------------------------------------
# misalignment
# --------------------------------------------------------------------------------------------
def shuffle_pairs(data: ModalDataset, fraction: float, *, modality: str, seed: int = 0) -> ModalDataset:
    """Re-pair ``fraction`` of the samples: their ``modality`` is replaced by another chosen
    sample's (a cyclic shift over a random subset, so every chosen sample really changes partner).
    ``meta["mispaired"]`` (bool) marks them; labels stay with the *other* modalities."""
    data = _check_data(data, "shuffle_pairs")
    x = _check_modality(data, modality, "shuffle_pairs")
    fraction = _check_prob(fraction, "fraction", "shuffle_pairs")
    n = len(data)
    chosen = torch.randperm(n, generator=_generator(seed))[: round(fraction * n)]
    source = torch.arange(n)
    if len(chosen) >= 2:
        source[chosen] = chosen.roll(1)
    mispaired = source != torch.arange(n)
    changes = {modality: x[source]}
    mask_key = modality + MASK_SUFFIX
    if mask_key in data:
        changes[mask_key] = data.tensors[mask_key][source]
    return _replace(data, changes, meta={"mispaired": mispaired})


def time_shift(data: ModalDataset, shift: int, *, modality: str = "audio", random: bool = False,
               seed: int = 0) -> ModalDataset:
    """Shift the last (time) axis by ``shift`` frames: ``x'[..., t] = x[..., t − s]``, frames
    shifted in from outside filled with the clip's minimum (silence). With ``random=True`` each
    sample gets its own ``s`` uniform in ``[−shift, shift]``."""
    data = _check_data(data, "time_shift")
    x = _check_modality(data, modality, "time_shift", floating=True)
    T = x.shape[-1]
    shift = int(shift)
    if abs(shift) >= T:
        raise ValueError(f"time_shift: |shift| must be < {T} frames, got {shift}")
    n = len(x)
    if random:
        s = torch.randint(-abs(shift), abs(shift) + 1, (n,), generator=_generator(seed))
    else:
        s = torch.full((n,), shift)
    t = torch.arange(T)
    src = t[None] - s[:, None]                                             # (N, T)
    valid = (src >= 0) & (src < T)
    view = (n,) + (1,) * (x.dim() - 2) + (T,)
    index = src.clamp(0, T - 1).view(view).expand_as(x)
    floor = x.reshape(n, -1).min(1).values.view((n,) + (1,) * (x.dim() - 1))
    out = torch.where(valid.view(view), x.gather(-1, index), floor)
    return _replace(data, {modality: out}, meta={"time_shift": s})
