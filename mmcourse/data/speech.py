"""Spoken digits: the log-mel front end and the committed, checksummed speech array.

The speech modality of AV-Digits is the words "zero" .. "nine" synthesized offline, once, with
espeak-ng by ``scripts/make_spoken_digits.py`` across many voices ("speakers"). The script turns
every clip into a 32 x 32 log-mel spectrogram with :func:`log_mel_spectrogram` below -- the same
code a notebook uses, so the course and the data share one implementation -- quantises it to
``uint8`` and commits the small array ``assets/spoken_digits.npz`` next to its SHA-256 in
``assets/spoken_digits.npz.sha256``. Students never need espeak-ng: :func:`load_spoken_digits`
reads the committed file and checks its hash before parsing it.

The front end, step by step (numpy only):

1. **Framing.** Frame ``t`` is ``wave[t*hop : t*hop + n_fft]`` (with ``center=True`` the wave is
   first zero-padded by ``n_fft // 2`` on both sides, so frame ``t`` is centred on sample
   ``t*hop``). A wave shorter than one frame is zero-padded to ``n_fft``.
2. **Window + FFT.** Each frame is multiplied by a periodic Hann window
   ``w[n] = 0.5 - 0.5 cos(2 pi n / n_fft)`` and transformed with ``numpy.fft.rfft``; the power
   spectrum is ``|X[k]|^2`` for bins ``k = 0 .. n_fft/2`` at frequencies ``k * sr / n_fft``.
3. **Mel filterbank.** ``n_mels`` triangular filters equally spaced on the HTK mel scale
   ``mel = 2595 log10(1 + f / 700)`` (inverse ``f = 700 (10^(mel / 2595) - 1)``), each with peak
   1 at its centre frequency, are applied to the power spectrum: ``M = F @ |X|^2``.
4. **Decibels.** ``dB = 10 log10(max(M, eps)) - 10 log10(max(ref, eps))``; ``ref="max"`` makes the
   loudest mel bin of the clip 0 dB.

Only numpy (and nothing heavier) is imported here, so ``import mmcourse.data.speech`` is cheap.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = [
    "ASSET_PATH",
    "ChecksumError",
    "DIGIT_WORDS",
    "dequantize",
    "hz_to_mel",
    "load_spoken_digits",
    "log_mel_spectrogram",
    "mel_band_edges",
    "mel_filterbank",
    "mel_to_hz",
    "power_spectrogram",
    "quantize",
    "sha256_file",
]

#: The committed array and its checksum, found relative to this module file.
ASSET_PATH = Path(__file__).resolve().parent / "assets" / "spoken_digits.npz"
REGENERATE_HINT = (
    "regenerate it with `python scripts/make_spoken_digits.py` (needs `apt-get install "
    "espeak-ng`) or restore it from git with `git checkout -- mmcourse/data/assets/`"
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class ChecksumError(ValueError):
    """The committed speech array does not match its recorded SHA-256."""


# --------------------------------------------------------------------------------------------
# mel scale and filterbank
# --------------------------------------------------------------------------------------------
def hz_to_mel(f):
    """HTK mel scale: ``mel = 2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`: ``f = 700 (10^(mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_edges(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` frequencies (Hz) equally spaced in mel between ``fmin`` and ``fmax``.

    Filter ``m`` rises from ``edges[m]`` to its peak at ``edges[m + 1]`` (its centre) and falls
    to zero at ``edges[m + 2]``.
    """
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: float, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``, float64.

    Uses the **HTK** mel scale ``mel = 2595 log10(1 + f / 700)``: the filter centres are equally
    spaced in mel between ``fmin`` and ``fmax`` (default ``sample_rate / 2``). Filter ``m`` is the
    triangle through ``(lo, 0), (centre, 1), (hi, 0)`` with ``lo, centre, hi =
    edges[m], edges[m+1], edges[m+2]`` from :func:`mel_band_edges`, evaluated at the FFT bin
    frequencies ``k * sample_rate / n_fft``. Peaks are 1 (no area normalisation), so a tone at
    ``f`` Hz excites most the filter whose centre is nearest ``f`` in mel.
    """
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got n_mels={n_mels}, n_fft={n_fft}")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(
            f"need 0 <= fmin < fmax <= sample_rate/2 = {sample_rate / 2}, got fmin={fmin}, "
            f"fmax={fmax}"
        )
    edges = mel_band_edges(n_mels, fmin, fmax)
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lo) / (centre - lo)
    falling = (hi - freqs[None, :]) / (hi - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


# --------------------------------------------------------------------------------------------
# spectrograms
# --------------------------------------------------------------------------------------------
def power_spectrogram(wave, n_fft: int, hop: int, center: bool = False) -> np.ndarray:
    """``|rfft(hann * frame)|^2`` for every frame, shape ``(n_fft // 2 + 1, frames)``.

    Hand-written framing (see the module docstring): frame ``t`` starts at ``t * hop``; with
    ``center=True`` the wave is zero-padded by ``n_fft // 2`` on both sides first.
    ``frames = 1 + (len(wave) - n_fft) // hop`` (after padding; at least 1).
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D, got shape {wave.shape}")
    if hop < 1:
        raise ValueError(f"hop must be >= 1, got {hop}")
    if center:
        wave = np.pad(wave, n_fft // 2)
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    frames = 1 + (len(wave) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spec = np.fft.rfft(wave[idx] * window, axis=1)
    return (spec.real**2 + spec.imag**2).T


def log_mel_spectrogram(
    wave,
    sample_rate: float,
    n_fft: int,
    hop: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    center: bool = False,
    ref: float | str = 1.0,
    eps: float = 1e-10,
) -> np.ndarray:
    """Log-mel spectrogram in dB, shape ``(n_mels, frames)``, float64.

    ``dB = 10 log10(max(F @ |STFT|^2, eps)) - 10 log10(max(ref, eps))`` with the Hann-window
    power spectrogram of :func:`power_spectrogram` and the HTK filterbank of
    :func:`mel_filterbank`. ``ref="max"`` measures dB relative to the clip's loudest mel bin
    (so the maximum is 0 dB); silence gives ``10 log10(eps) - 10 log10(ref)``.
    """
    power = power_spectrogram(wave, n_fft, hop, center=center)
    mel = mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax) @ power
    db = 10.0 * np.log10(np.maximum(mel, eps))
    if isinstance(ref, str):
        if ref != "max":
            raise ValueError(f"ref must be a number or 'max', got {ref!r}")
        ref = float(mel.max())
    return db - 10.0 * np.log10(max(float(ref), eps))


def quantize(db, db_min: float, db_max: float) -> np.ndarray:
    """Clip dB to ``[db_min, db_max]`` and map it linearly onto ``uint8`` 0 .. 255."""
    db = np.clip(np.asarray(db, dtype=np.float64), db_min, db_max)
    scaled = (db - db_min) / (db_max - db_min)
    return np.round(scaled * 255.0).astype(np.uint8)


def dequantize(logmel_uint8, db_min: float, db_max: float) -> np.ndarray:
    """Inverse of :func:`quantize`: ``db_min + q / 255 * (db_max - db_min)`` as float32 dB.

    The round trip is exact to within half a step, ``(db_max - db_min) / 510`` dB.
    """
    q = np.asarray(logmel_uint8)
    if q.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {q.dtype}")
    step = (float(db_max) - float(db_min)) / 255.0
    return (float(db_min) + q.astype(np.float32) * np.float32(step)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the committed array
# --------------------------------------------------------------------------------------------
def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_hash(path: Path) -> str:
    sha_path = path.with_name(path.name + ".sha256")
    if not sha_path.is_file():
        raise FileNotFoundError(
            f"checksum file {sha_path} not found next to {path}; {REGENERATE_HINT}"
        )
    text = sha_path.read_text().split()
    if not text or len(text[0]) != 64:
        raise ChecksumError(f"checksum file {sha_path} is malformed; {REGENERATE_HINT}")
    return text[0].lower()


def load_spoken_digits(path=None, verify: bool = True) -> dict:
    """Load the committed spoken-digit array, checking its SHA-256 first.

    ``path`` defaults to :data:`ASSET_PATH`; the checksum is read from ``<path>.sha256``
    (format ``<hex>  spoken_digits.npz``). With ``verify=True`` the file's hash is compared to it
    **before** the file is parsed; a mismatch raises :class:`ChecksumError`.

    Returns a dict of numpy arrays (N clips; ``db_min`` etc. as Python scalars):

    ==================  =================  ===========================================================
    key                 dtype, shape       meaning
    ==================  =================  ===========================================================
    ``logmel``          uint8 (N, 32, 32)  log-mel [mel band, frame], quantised dB (see below)
    ``digit``           uint8 (N,)         the spoken digit 0 .. 9
    ``speaker``         uint16 (N,)        index into ``speakers``
    ``speakers``        str (S,)           espeak-ng voice-variant names, one per speaker
    ``accent``          str (N,)           espeak-ng English voice used for the clip
    ``speed``           uint16 (N,)        words per minute (``espeak-ng -s``)
    ``pitch``           uint8 (N,)         pitch 0 .. 99 (``espeak-ng -p``)
    ``db_min``          float              dB of ``logmel == 0`` (-80)
    ``db_max``          float              dB of ``logmel == 255`` (0, the clip's loudest bin)
    ``sample_rate``     int                the front-end settings, as are ``n_fft``, ``hop``, ``n_mels``
    ``fmin``, ``fmax``  float              the mel filterbank's range (Hz)
    ==================  =================  ===========================================================

    Turn ``logmel`` into dB with :func:`dequantize` (``data["logmel"], data["db_min"],
    data["db_max"]``).
    """
    path = ASSET_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spoken-digit array {path} not found; {REGENERATE_HINT}")
    if verify:
        expected = _expected_hash(path)
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
                f"The file is corrupt or was changed without updating its .sha256; "
                f"{REGENERATE_HINT}"
            )
    scalars = ("db_min", "db_max", "sample_rate", "n_fft", "hop", "n_mels")
    with np.load(path, allow_pickle=False) as npz:
        out = {key: npz[key] for key in npz.files}
    for key in scalars + ("fmin", "fmax"):
        if key in out:
            out[key] = out[key].item()
    return out
