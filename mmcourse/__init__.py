"""mmcourse: the tested helper package behind the multimodal machine learning course.

Import what you need from the submodules, e.g. ``from mmcourse.train import fit``. Importing
``mmcourse`` itself is cheap: submodules (and PyTorch) load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "interpret", "metrics", "models", "plots", "reports", "robustness",
               "tensors", "train")
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mmcourse' has no attribute {name!r}")
