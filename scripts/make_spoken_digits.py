"""Synthesize the spoken-digit modality of AV-Digits once, offline, and commit it with its hash.

What it makes
    ``mmcourse/data/assets/spoken_digits.npz`` -- 32 x 32 uint8 log-mel spectrograms of the words
    "zero" .. "nine" spoken by many espeak-ng voices -- and ``spoken_digits.npz.sha256``
    (``<hex>  spoken_digits.npz``), which ``mmcourse.data.speech.load_spoken_digits`` checks.
    Students never run this script; they load the committed file.

How
    * A **speaker is one espeak-ng voice variant** (``!v/NAME``, listed by
      ``espeak-ng --voices=variant``). Every variant is tried; one that fails or produces
      silence for any word is dropped, and ``--speakers`` (default 75) of the rest are chosen
      with a seeded draw.
    * For each speaker and digit, ``--takes`` (default 4) takes with a seeded random English
      accent (``-v ACCENT+NAME``), speed ``-s`` 120..220 wpm and pitch ``-p`` 20..80. (espeak-ng
      1.51 has no pitch-range option.) The draws come from a generator seeded with
      ``(--seed, crc32(variant name))``, so a speaker's takes do not depend on which other
      variants are installed.
    * Each clip: 22.05 kHz int16 from ``espeak-ng --stdout`` -> 16 kHz with
      ``scipy.signal.resample_poly`` -> leading/trailing silence trimmed (10 ms frames whose RMS
      is more than 40 dB below the loudest frame) -> peak-normalised -> centred in a window of
      ``31 * hop + n_fft`` samples (zero-padded, or centre-cropped if longer) -> the package's
      own ``log_mel_spectrogram`` (n_fft 512, hop 480, 32 HTK mel bands 0..8 kHz, no centre
      padding: exactly 32 frames, 0.96 s) in dB relative to the clip's loudest bin -> clipped
      to [-80, 0] dB and quantised to uint8 0..255.
    * The npz is written with ``zipfile`` and a fixed entry date (1980-01-01), so re-running
      the script on the same machine gives a byte-identical file (checked: same SHA-256).
      A different espeak-ng / numpy / scipy version may change a few quantisation steps.

Run (needs ``apt-get install espeak-ng``; ~1-2 min on 2 cores)::

    python scripts/make_spoken_digits.py            # regenerate the asset and its .sha256
    python scripts/make_spoken_digits.py --check    # regenerate to a temp file and compare
                                                    # with the committed hash (exit 1 if not)
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmcourse.data.speech import (  # noqa: E402  (needs the repo root on sys.path)
    ASSET_PATH,
    DIGIT_WORDS,
    log_mel_spectrogram,
    quantize,
    sha256_file,
)

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")
SPEED_RANGE = (120, 220)  # words per minute, inclusive
PITCH_RANGE = (20, 80)  # espeak-ng -p, inclusive
SAMPLE_RATE = 16_000
N_FFT, HOP, N_MELS, N_FRAMES = 512, 480, 32, 32
FMIN, FMAX = 0.0, 8000.0
DB_MIN, DB_MAX = -80.0, 0.0
TRIM_DB = 40.0  # frames this far below the loudest 10 ms frame count as silence
MIN_PEAK = 1e-3  # a clip whose peak (full scale 1) is below this is "silence"
MAX_BYTES = 3 * 1024 * 1024
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def list_variants() -> list[str]:
    """Voice-variant names (without ``!v/``) from ``espeak-ng --voices=variant``, sorted."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split()[4][3:] for line in out.splitlines()[1:]
             if len(line.split()) >= 5 and line.split()[4].startswith("!v/")}
    return sorted(names)


def takes_for(variant: str, takes: int, seed: int) -> list[tuple[int, int, str, int, int]]:
    """``(digit, take, accent, speed, pitch)`` for every take of one speaker (seeded)."""
    rng = np.random.default_rng([seed, zlib.crc32(variant.encode())])
    plan = []
    for digit in range(10):
        for take in range(takes):
            accent = ACCENTS[rng.integers(len(ACCENTS))]
            speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
            pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
            plan.append((digit, take, accent, speed, pitch))
    return plan


def parse_wav(raw: bytes) -> tuple[np.ndarray, int]:
    """Mono int16 WAV bytes from ``espeak-ng --stdout`` -> (float wave in [-1, 1], rate).

    The streamed header carries placeholder sizes (0x7fffffff), so the chunk sizes are ignored
    and the data run to the end of the stream.
    """
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    channels = int.from_bytes(raw[22:24], "little")
    rate = int.from_bytes(raw[24:28], "little")
    bits = int.from_bytes(raw[34:36], "little")
    if channels != 1 or bits != 16:
        raise ValueError(f"expected mono 16-bit, got {channels} channels, {bits} bits")
    start = raw.find(b"data", 36) + 8
    data = raw[start: start + (len(raw) - start) // 2 * 2]
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0, rate


def trim_silence(wave: np.ndarray, sr: int, threshold_db: float = TRIM_DB) -> np.ndarray:
    """Drop leading/trailing 10 ms frames whose RMS is ``threshold_db`` below the loudest one."""
    frame = sr // 100
    n = len(wave) // frame
    if n == 0:
        return wave
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-threshold_db / 20))
    return wave[loud[0] * frame: (loud[-1] + 1) * frame]


def fit_window(wave: np.ndarray, length: int) -> np.ndarray:
    """Centre ``wave`` in ``length`` samples: zero-pad both sides, or centre-crop."""
    if len(wave) >= length:
        start = (len(wave) - length) // 2
        return wave[start: start + length]
    out = np.zeros(length)
    start = (length - len(wave)) // 2
    out[start: start + len(wave)] = wave
    return out


def synth_one(job: tuple[str, int, str, int, int]) -> tuple[np.ndarray | None, float]:
    """One clip -> (uint8 log-mel (32, 32) or None if it failed / was silent, seconds)."""
    variant, digit, accent, speed, pitch = job
    cmd = ["espeak-ng", "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch),
           "--stdout", DIGIT_WORDS[digit]]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=30)
        if proc.returncode != 0:
            return None, 0.0
        wave, rate = parse_wav(proc.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        return None, 0.0
    if rate != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, rate)
        wave = resample_poly(wave, SAMPLE_RATE // g, rate // g)
    if len(wave) == 0 or np.abs(wave).max() < MIN_PEAK:
        return None, 0.0
    wave = trim_silence(wave, SAMPLE_RATE)
    if len(wave) < SAMPLE_RATE // 20:  # under 50 ms of sound: not a word
        return None, 0.0
    seconds = len(wave) / SAMPLE_RATE
    wave = 0.9 * wave / np.abs(wave).max()
    wave = fit_window(wave, (N_FRAMES - 1) * HOP + N_FFT)
    db = log_mel_spectrogram(wave, SAMPLE_RATE, N_FFT, HOP, N_MELS, fmin=FMIN, fmax=FMAX,
                             ref="max")
    assert db.shape == (N_MELS, N_FRAMES), db.shape
    return quantize(db, DB_MIN, DB_MAX), seconds


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` equivalent with fixed zip entry dates (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def build(out: Path, n_speakers: int, takes: int, seed: int, workers: int) -> dict:
    t0 = time.perf_counter()
    variants = list_variants()
    plans = {v: takes_for(v, takes, seed) for v in variants}
    jobs = [(v, d, a, s, p) for v in variants for (d, _, a, s, p) in plans[v]]
    with mp.get_context("spawn").Pool(max(1, min(workers, 2))) as pool:
        results = pool.map(synth_one, jobs, chunksize=20)
    by_variant: dict[str, list] = {v: [] for v in variants}
    for job, res in zip(jobs, results, strict=True):
        by_variant[job[0]].append((job, res))
    good = [v for v in variants if all(r[0] is not None for _, r in by_variant[v])]
    dropped = sorted(set(variants) - set(good))
    if len(good) < n_speakers:
        raise SystemExit(f"only {len(good)} usable voice variants, need {n_speakers}")
    rng = np.random.default_rng(seed)
    speakers = sorted(rng.choice(good, size=n_speakers, replace=False).tolist())

    logmel, digit, speaker, accent, speed, pitch, secs = [], [], [], [], [], [], []
    for s_idx, v in enumerate(speakers):
        for (_, d, a, sp, p), (lm, sec) in by_variant[v]:
            logmel.append(lm)
            digit.append(d)
            speaker.append(s_idx)
            accent.append(a)
            speed.append(sp)
            pitch.append(p)
            secs.append(sec)
    arrays = {
        "logmel": np.stack(logmel).astype(np.uint8),
        "digit": np.array(digit, dtype=np.uint8),
        "speaker": np.array(speaker, dtype=np.uint16),
        "speakers": np.array(speakers, dtype=str),
        "accent": np.array(accent, dtype=str),
        "speed": np.array(speed, dtype=np.uint16),
        "pitch": np.array(pitch, dtype=np.uint8),
        "db_min": np.float32(DB_MIN),
        "db_max": np.float32(DB_MAX),
        "sample_rate": np.int32(SAMPLE_RATE),
        "n_fft": np.int32(N_FFT),
        "hop": np.int32(HOP),
        "n_mels": np.int32(N_MELS),
        "fmin": np.float32(FMIN),
        "fmax": np.float32(FMAX),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, arrays)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{out} is {size} bytes, over the {MAX_BYTES}-byte budget")
    secs = np.array(secs)
    window = ((N_FRAMES - 1) * HOP + N_FFT) / SAMPLE_RATE
    return {
        "clips": len(digit), "speakers": len(speakers), "variants_tried": len(variants),
        "dropped": dropped, "bytes": size, "sha256": sha256_file(out),
        "seconds": time.perf_counter() - t0,
        "speech_s": (float(secs.min()), float(np.median(secs)), float(secs.max())),
        "cropped": int((secs > window).sum()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ASSET_PATH)
    ap.add_argument("--speakers", type=int, default=75)
    ap.add_argument("--takes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="at most 2")
    ap.add_argument("--check", action="store_true",
                    help="regenerate to a temporary file and compare with the committed hash")
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: `apt-get install espeak-ng` (only needed to "
                         "regenerate; the package loads the committed file)")

    if args.check:
        sha_path = ASSET_PATH.with_name(ASSET_PATH.name + ".sha256")
        expected = sha_path.read_text().split()[0]
        with tempfile.TemporaryDirectory() as tmp:
            info = build(Path(tmp) / ASSET_PATH.name, args.speakers, args.takes, args.seed,
                         args.workers)
        same = info["sha256"] == expected
        print(f"regenerated sha256 {info['sha256']}\ncommitted   sha256 {expected}\n"
              f"{'byte-identical' if same else 'DIFFERENT'} ({info['seconds']:.1f} s)")
        return 0 if same else 1

    info = build(args.out, args.speakers, args.takes, args.seed, args.workers)
    sha_path = args.out.with_name(args.out.name + ".sha256")
    sha_path.write_text(f"{info['sha256']}  {args.out.name}\n")
    lo, med, hi = info["speech_s"]
    print(f"clips     {info['clips']} ({info['speakers']} speakers x 10 digits x {args.takes} "
          f"takes)\n"
          f"variants  {info['variants_tried']} tried, dropped {info['dropped'] or 'none'}\n"
          f"speech    {lo:.2f} / {med:.2f} / {hi:.2f} s (min / median / max after trimming), "
          f"{info['cropped']} clips centre-cropped to the window\n"
          f"file      {args.out} ({info['bytes'] / 1024:.0f} KiB)\n"
          f"sha256    {info['sha256']}  -> {sha_path.name}\n"
          f"time      {info['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
