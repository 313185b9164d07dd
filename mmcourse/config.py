"""Reproducibility, device choice and the run profile.

Everything the notebooks and tests need to run the same way twice:

* ``seed_everything(seed)`` seeds Python's ``random``, NumPy and PyTorch, and switches PyTorch to
  deterministic algorithms, so a seeded run on the CPU is bit-identical from run to run.
* ``seeded(seed)`` is a ``with`` block that builds something reproducibly (a model's initial
  weights) without reseeding the caller's global RNG.
* ``device()`` picks where tensors live: ``cuda`` > ``mps`` > ``cpu``, unless the environment
  variable ``MMCOURSE_DEVICE`` names one.
* ``profile()`` reads ``MMCOURSE_PROFILE``: ``default`` is what the committed notebooks and CI
  run on a 2-core CPU; ``full`` uses more data, bigger inputs and more epochs, for a GPU.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

DEFAULT_SEED = 0
DEVICE_ENV = "MMCOURSE_DEVICE"
PROFILE_ENV = "MMCOURSE_PROFILE"


def seed_everything(seed: int = DEFAULT_SEED, *, deterministic: bool = True) -> int:
    """Seed ``random``, NumPy and PyTorch (all devices) with ``seed`` and return it.

    With ``deterministic=True`` PyTorch is asked for deterministic kernels (cuDNN autotuning off,
    ``torch.use_deterministic_algorithms``), which makes seeded CPU runs bit-identical. Ops that
    have no deterministic CUDA kernel only warn rather than fail.
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


@contextmanager
def seeded(seed: int | None):
    """Run a block (e.g. building a model) with PyTorch's RNG seeded by ``seed``, then put the
    global RNG back as it was: the block is reproducible and the caller's random stream is
    untouched. ``seed=None`` runs the block on the global RNG as it is."""
    import torch

    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device(name: str | None = None):
    """The ``torch.device`` to compute on: ``cuda`` if present, else ``mps``, else ``cpu``.

    ``name`` (or the ``MMCOURSE_DEVICE`` environment variable) forces a choice such as ``"cpu"``,
    ``"cuda"`` or ``"cuda:1"``; asking for a device this machine lacks is an error, not a silent
    fallback.
    """
    import torch

    requested = name if name is not None else os.environ.get(DEVICE_ENV, "").strip()
    if not requested:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(
            f"{DEVICE_ENV}={requested!r} is not a device; expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but CUDA is not available here")
    if dev.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {requested!r} was requested but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {requested!r} is not supported; expected 'cpu', 'cuda' or 'mps'")
    return dev


@dataclass(frozen=True)
class Profile:
    """How big a run is. Notebooks and benchmarks read sizes from here, never hard-code them.

    ``epoch_scale`` multiplies every notebook's epoch count; the ``shapes_*`` fields size the
    procedural Shapes dataset; ``batch_size`` is the default for ``fit()``. ``av_copies`` is how
    many copies of the AV-Digits training split to train on (1: the split itself; more: the
    split plus randomly shifted copies, ``mmcourse.data.augment.shifted_copies``);
    ``model_scale`` multiplies the widths of the chapter models; ``captioner`` names the
    captioning decoder (``"gru"``: ``Captioner``, ``"transformer"``: ``TransformerCaptioner``).
    """

    name: str
    epoch_scale: float
    batch_size: int
    shapes_train: int
    shapes_val: int
    shapes_test: int
    shapes_image_size: int
    av_copies: int = 1
    model_scale: int = 1
    captioner: str = "gru"

    def __post_init__(self):
        if self.captioner not in ("gru", "transformer"):
            raise ValueError(f"captioner must be 'gru' or 'transformer', got {self.captioner!r}")
        for key in ("batch_size", "av_copies", "model_scale"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"profile field {key} must be a positive int, got {value!r}")

    def epochs(self, base: int) -> int:
        """Scale a notebook's base epoch count by this profile (at least one epoch)."""
        return max(1, round(base * self.epoch_scale))


PROFILES: dict[str, Profile] = {
    "default": Profile(
        name="default",
        epoch_scale=1.0,
        batch_size=64,
        shapes_train=4000,
        shapes_val=500,
        shapes_test=1000,
        shapes_image_size=32,
    ),
    # sized so that every chapter's model trains in about a minute on one GPU: 40,000 scenes at
    # 64 px took ~25 s just to render (measured on the 2-core CPU) and 2 GB to hold
    "full": Profile(
        name="full",
        epoch_scale=2.0,
        batch_size=256,
        shapes_train=20000,
        shapes_val=1000,
        shapes_test=2000,
        shapes_image_size=48,
        av_copies=4,
        model_scale=2,
        captioner="transformer",
    ),
}


def profile(name: str | None = None) -> Profile:
    """The run profile named by ``name`` or by ``MMCOURSE_PROFILE`` (``default`` if unset)."""
    key = name if name is not None else os.environ.get(PROFILE_ENV, "").strip() or "default"
    try:
        return PROFILES[key]
    except KeyError:
        raise ValueError(
            f"unknown profile {key!r} (from {'argument' if name is not None else PROFILE_ENV}); "
            f"expected one of {sorted(PROFILES)}"
        ) from None


def with_overrides(base: Profile, **changes) -> Profile:
    """A copy of ``base`` with some fields changed, e.g. for a tiny test run."""
    unknown = set(changes) - set(Profile.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown profile fields {sorted(unknown)}; expected some of "
            f"{sorted(Profile.__dataclass_fields__)}"
        )
    return replace(base, **changes)
