"""Spoken digit strings: utterances of 1-7 spoken digits, with the true boundary of every digit.

Built from the course's synthesized digit clips (``mmcourse/data/speech.py``): each clip is a
32 x 32 log-mel spectrogram of one word, centred in silence (exactly ``db_min`` dB). An utterance
is made of one voice saying ``n ~ U{min_digits..max_digits}`` uniformly drawn digits:

    x = [ sil(e_0) | w(d_1) | sil(p_1) | w(d_2) | ... | w(d_n) | sil(e_1) ]

where ``w(d)`` is a take of digit ``d`` by that voice **cropped to its voiced frames** (the frames
whose loudest mel band is above ``db_min``), ``sil(k)`` is ``k`` frames of silence, the pauses
``p_i ~ U{pause}`` and the edges ``e_0, e_1 ~ U{edge}``. Digit ``i`` occupies frames
``[start_i, end_i)`` of ``x`` -- the *true boundaries*, kept in ``meta["boundaries"]`` and never in
a batch, so no model can see them; they only measure an alignment. One frame is 30 ms
(hop 480 samples at 16 kHz).

Noise (``snr_db``) is added as in AV-Digits (``add_noise_at_snr``, mel-power domain, per
utterance). Voices are split train/val/test exactly as AV-Digits splits them for the same seed,
so test voices are never heard in training. Log-mels are standardised with the train split's
mean and standard deviation over real (unpadded) frames; padding is the standardised silence.

A split holds (``N`` utterances, ``T`` the longest one, ``S = max_digits``):

* ``audio``          float32 ``(N, 32, T)`` standardised log-mel [mel, frame], padded with silence
* ``audio_lengths``  int64 ``(N,)`` frames of each utterance
* ``digits``         int64 ``(N, S)`` the digit string, padded with ``-1``
* ``digit_lengths``  int64 ``(N,)`` digits in each utterance

and ``meta``: ``text`` ("4 0 7"), ``speaker``, ``boundaries`` (an ``(n, 2)`` int array per
utterance: ``start, end`` frames, end exclusive).
"""

from __future__ import annotations

import numpy as np
import torch

from mmcourse.data.av_digits import DEFAULTS as AV_DEFAULTS
from mmcourse.data.av_digits import add_noise_at_snr, voice_split
from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.speech import dequantize, load_spoken_digits

__all__ = ["BLANK", "FRAME_MS", "NOISY_SNR_DB", "SIZES", "crop_to_voice", "digits_to_text",
           "load_digit_strings", "make_utterance", "say"]

#: CTC's blank symbol: classes 0..9 are the digits themselves, class 10 is the blank.
BLANK = 10
FRAME_MS = 30.0
SIZES = {"train": 2000, "val": 200, "test": 400}
#: The dataset's noise level: AV-Digits' default audio SNR.
NOISY_SNR_DB = AV_DEFAULTS["audio_snr_db"]
SHAPES = {
    "audio": "(32, T) standardised log-mel [mel, frame], silence-padded",
    "audio_lengths": "() frames in the utterance",
    "digits": "(S,) digit string, -1 padded",
    "digit_lengths": "() digits in the utterance",
}


def digits_to_text(digits) -> str:
    """``[4, 0, 7]`` -> ``"4 0 7"`` (space-separated, as word error rate tools expect)."""
    return " ".join(str(int(d)) for d in digits)


def crop_to_voice(db: np.ndarray, db_min: float) -> np.ndarray:
    """The voiced frames of one clip ``(mels, frames)``: from the first to the last frame whose
    loudest band is above ``db_min`` (the synthesizer's clips are centred in exact silence)."""
    voiced = np.flatnonzero(db.max(axis=0) > db_min + 1e-3)
    if len(voiced) == 0:
        raise ValueError("the clip is all silence: no voiced frame to keep")
    return db[:, voiced[0]: voiced[-1] + 1]


def make_utterance(words: list[np.ndarray], rng: np.random.Generator, db_min: float,
                   pause: tuple[int, int] = (0, 8), edge: tuple[int, int] = (2, 6)):
    """Concatenate cropped words ``(mels, frames_i)`` with random pauses and edges of silence.

    Returns ``(db (mels, T), boundaries (n, 2))`` with ``boundaries[i] = [start_i, end_i)``.
    """
    if not words:
        raise ValueError("an utterance needs at least one word")
    mels = words[0].shape[0]
    pieces, bounds, t = [], [], 0

    def silence(k):
        nonlocal t
        pieces.append(np.full((mels, k), db_min, dtype=np.float32))
        t += k

    silence(int(rng.integers(edge[0], edge[1] + 1)))
    for i, w in enumerate(words):
        if i:
            silence(int(rng.integers(pause[0], pause[1] + 1)))
        bounds.append((t, t + w.shape[1]))
        pieces.append(w.astype(np.float32))
        t += w.shape[1]
    silence(int(rng.integers(edge[0], edge[1] + 1)))
    return np.concatenate(pieces, axis=1), np.array(bounds, dtype=np.int64)


def say(digits, voice: str, seed: int = 0, pause: tuple[int, int] = (0, 8),
        edge: tuple[int, int] = (2, 6)):
    """One clean utterance of ``digits`` by the named voice (``meta["speaker"]`` of a split), in dB:
    ``(db (32, T) float32, boundaries (n, 2))``, seeded. To compare two voices saying the same
    string (DTW), or to hear a string no split contains."""
    speech = load_spoken_digits()
    names = [str(v) for v in speech["speakers"]]
    if voice not in names:
        raise ValueError(f"unknown voice {voice!r}; the voices are the split's meta['speaker'] names, "
                         f"e.g. {names[:3]}")
    speaker = names.index(voice)
    rng = np.random.default_rng(np.random.SeedSequence([seed, speaker]))
    db_min = float(speech["db_min"])
    words = []
    for d in digits:
        if not 0 <= int(d) <= 9:
            raise ValueError(f"digits must be 0..9, got {list(digits)}")
        takes = np.flatnonzero((speech["speaker"] == speaker) & (speech["digit"] == int(d)))
        clip = dequantize(speech["logmel"][int(rng.choice(takes))], db_min, float(speech["db_max"]))
        words.append(crop_to_voice(clip, db_min))
    return make_utterance(words, rng, db_min, pause, edge)


def load_digit_strings(*, seed: int = 0, sizes: dict[str, int] | None = None, min_digits: int = 1,
                       max_digits: int = 7, snr_db: float | None = None,
                       pause: tuple[int, int] = (0, 8), edge: tuple[int, int] = (2, 6),
                       extra_train: int = 0) -> Splits:
    """Spoken digit strings, train (2,000) / val (200) / test (400) utterances, seeded, offline.

    ``snr_db=None`` gives clean strings; ``snr_db=NOISY_SNR_DB`` (-6 dB) the dataset's noise level.
    ``pause``/``edge``: inclusive ranges of silent frames between digits and at both ends.
    ``extra_train``: that many more training strings by the training voices (their own random
    stream, appended after the first ``sizes["train"]``): the val and test strings, the first
    training strings and the standardisation stay exactly those of ``extra_train=0``.
    Generating the default splits takes about a second.
    """
    sizes = dict(SIZES if sizes is None else sizes)
    if set(sizes) != {"train", "val", "test"} or min(sizes.values()) < 1:
        raise ValueError(f"sizes must give train, val and test (each >= 1), got {sizes}")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    for name, (lo, hi) in (("pause", pause), ("edge", edge)):
        if not 0 <= lo <= hi:
            raise ValueError(f"{name} must be a range (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
    if isinstance(extra_train, bool) or not isinstance(extra_train, int) or extra_train < 0:
        raise ValueError(f"extra_train must be an int >= 0, got {extra_train!r}")
    if snr_db is not None and not np.isfinite(float(snr_db)):
        raise ValueError(f"snr_db must be a finite number or None, got {snr_db}")

    # the same voice split as load_av_digits(seed=seed): its third stream
    streams = np.random.SeedSequence(seed).spawn(5)
    voice_rng = np.random.default_rng(streams[2])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    speech = load_spoken_digits()
    voices = voice_split(speech["speaker"], voice_rng)
    db_min = float(speech["db_min"])
    db = dequantize(speech["logmel"], db_min, float(speech["db_max"]))

    def utterances(count, names, rng):
        out = []
        for _ in range(count):
            voice = int(rng.choice(names))
            n = int(rng.integers(min_digits, max_digits + 1))
            digits = rng.integers(0, 10, size=n)
            words = []
            for d in digits:
                takes = np.flatnonzero((speech["speaker"] == voice) & (speech["digit"] == d))
                words.append(crop_to_voice(db[int(rng.choice(takes))], db_min))
            x, bounds = make_utterance(words, rng, db_min, pause, edge)
            if snr_db is not None:
                x = add_noise_at_snr(x[None], float(snr_db), db_min, rng)[0]
            out.append((x, digits, bounds, str(speech["speakers"][voice])))
        return out

    raw = {name: utterances(sizes[name], voices[name], rng) for name in ("train", "val", "test")}
    frames = np.concatenate([x for x, *_ in raw["train"]], axis=1)
    mean, std = float(frames.mean()), float(frames.std()) + 1e-6
    if extra_train:           # their own random stream, after the standardisation: nothing else moves
        raw["train"] += utterances(int(extra_train), voices["train"],
                                   np.random.default_rng(np.random.SeedSequence([seed, 17])))
    splits = []
    for name, utterances in raw.items():
        t_max = max(x.shape[1] for x, *_ in utterances)
        audio = np.full((len(utterances), db.shape[1], t_max), (db_min - mean) / std, np.float32)
        digits = np.full((len(utterances), max_digits), -1, dtype=np.int64)
        for i, (x, d, _, _) in enumerate(utterances):
            audio[i, :, : x.shape[1]] = (x - mean) / std
            digits[i, : len(d)] = d
        splits.append(ModalDataset(
            {"audio": torch.from_numpy(audio),
             "audio_lengths": torch.tensor([x.shape[1] for x, *_ in utterances]),
             "digits": torch.from_numpy(digits),
             "digit_lengths": torch.tensor([len(d) for _, d, _, _ in utterances])},
            name=name,
            meta={"text": [digits_to_text(d) for _, d, _, _ in utterances],
                  "speaker": [s for *_, s in utterances],
                  "boundaries": [b for _, _, b, _ in utterances]},
            shapes=SHAPES,
        ))
    info = {"title": "Spoken digit strings (synthesized voices, true boundaries kept aside)",
            "seed": seed, "snr_db": snr_db, "digits": (min_digits, max_digits),
            "voices": {n: len(voices[n]) for n in raw}, "frame_ms": FRAME_MS, "blank": BLANK,
            "standardise": (mean, std)}
    return Splits(*splits, info=info)
