"""Shared fixtures, the GPU marker's skip, and nbval settings for the notebooks."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collectstart(collector):
    # nbval compares text/plain and stdout of '# NBVAL_CHECK_OUTPUT' cells; stderr (progress
    # bars, warnings) and HTML reprs are volatile and are not compared.
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/javascript",
                                   "application/vnd.jupyter.widget-view+json")


def pytest_collection_modifyitems(config, items):
    import torch

    # the fast tier (`python3 course.py test --fast`, i.e. -m "not slow") leaves out every
    # notebook run and the real-browser test, as well as the tests marked slow by hand
    for item in items:
        if str(item.fspath).endswith(".ipynb") or "browser" in item.keywords:
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def av_digits():
    """AV-Digits with the default knobs (loaded once per test session)."""
    from mmcourse.data.av_digits import load_av_digits

    return load_av_digits(seed=0)


@pytest.fixture(scope="session")
def mnist_splits():
    """Clean MNIST-5k images only, in AV-Digits' train/val/test split."""
    from mmcourse.data.av_digits import clean_av_digits

    splits = clean_av_digits(seed=0)
    return tuple(s.select(["image", "label"]) for s in splits)


@pytest.fixture(scope="session")
def bubblewrap() -> str:
    """The grader's isolation mode, after installing bubblewrap with apt-get where it is missing
    and can be (root, Debian/Ubuntu); the grading tests then run in the best mode available."""
    from mmcourse.grading import isolation

    if shutil.which("bwrap") is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "bubblewrap"]
        if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
            subprocess.run(cmd, capture_output=True, env=env, timeout=900)
        isolation._bwrap_works.cache_clear()
    return isolation.mode()
