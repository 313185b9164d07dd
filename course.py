#!/usr/bin/env python3
"""The course's single entry point: set-up, the lab, the tests and the benchmarks.

    python3 course.py lab      # create/reuse .venv, install, open JupyterLab on the course (chapter 00)
    python3 course.py test     # create/reuse .venv, install, run lint + unit tests + notebooks
    python3 course.py test --fast   # the same without the slow tier (a few minutes)
    python3 course.py bench    # print the benchmark figures
    python3 course.py site     # build the course website into build/site/ (docs/site/build.py)

Only the Python standard library is used here, so it runs on a fresh machine with Python and
pip. The virtual environment is re-installed whenever ``pyproject.toml`` changes.

Environment variables:
    MMCOURSE_VENV         where the virtual environment lives (default: .venv beside this file)
    MMCOURSE_TORCH_INDEX  an extra package index for torch, e.g. a CUDA build for Windows:
                          https://download.pytorch.org/whl/cu128
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 11)


def venv_dir() -> Path:
    return Path(os.environ.get("MMCOURSE_VENV", ROOT / ".venv")).resolve()


def venv_bin(name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return venv_dir() / sub / f"{name}{suffix}"


def run(cmd: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def install_fingerprint() -> str:
    text = (ROOT / "pyproject.toml").read_bytes() + os.environ.get("MMCOURSE_TORCH_INDEX", "").encode()
    return hashlib.sha256(text).hexdigest()


def ensure_env() -> Path:
    """Create (or reuse) the virtual environment and install the course into it."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"mmcourse needs Python >= {'.'.join(map(str, MIN_PYTHON))}, "
                 f"this is {sys.version.split()[0]}")
    python = venv_bin("python")
    if not python.exists():
        run([sys.executable, "-m", "venv", venv_dir()])
    stamp = venv_dir() / ".mmcourse-installed"
    want = install_fingerprint()
    if stamp.exists() and stamp.read_text().strip() == want:
        return python
    start = time.perf_counter()
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    index = os.environ.get("MMCOURSE_TORCH_INDEX")
    if index:
        # e.g. CUDA wheels for Windows, where PyPI's torch is CPU-only
        run(pip + ["--extra-index-url", index, "torch>=2.2,<2.14"])
    # torch's bounds live in pyproject.toml; pip takes a CUDA build from PyPI on Linux, and the
    # local CPU wheel where the machine's pip configuration offers one.
    run(pip + ["-e", f"{ROOT}[dev]"])
    stamp.write_text(want + "\n")
    print(f"environment ready in {time.perf_counter() - start:.0f} s: {venv_dir()}", flush=True)
    return python


def hermetic_env(scratch: Path) -> dict:
    """Variables that make test runs reproducible and independent of the user's settings;
    Jupyter, IPython and matplotlib keep their state under ``scratch``."""
    env = dict(os.environ)
    env.update({
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "JUPYTER_CONFIG_DIR": str(scratch / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(scratch / "jupyter-data"),
        "IPYTHONDIR": str(scratch / "ipython"),
        "MPLCONFIGDIR": str(scratch / "matplotlib"),
        "MMCOURSE_PROFILE": env.get("MMCOURSE_PROFILE", "default"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


#: the page `lab` opens first: where the README tells a student to start
FIRST_NOTEBOOK = "notebooks/00_setup_and_tour.ipynb"


def lab_arguments(root: Path = ROOT) -> list[str]:
    """JupyterLab's options for the course: the server is rooted at the repository, so that
    ``notebooks/``, ``exercises/`` and ``solutions/`` are all reachable (each chapter's closing
    link ``../exercises/NN_name.ipynb`` opens), and it opens on the first chapter."""
    return [f"--ServerApp.root_dir={root}", f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}"]


def cmd_lab(args: list[str]) -> None:
    ensure_env()
    jupyter = venv_bin("jupyter-lab")
    os.chdir(ROOT)
    run([jupyter, *lab_arguments(ROOT), *args])


def cmd_site(args: list[str]) -> None:
    python = ensure_env()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="mmcourse-site-") as scratch:
        run([python, ROOT / "docs" / "site" / "build.py", *args], env=hermetic_env(Path(scratch)))


def cmd_test(args: list[str]) -> None:
    """Everything CI runs; ``--fast`` leaves out the slow tier (training to a stated accuracy,
    every notebook, the real browser): ``pytest -m "not slow"``, for developers between edits."""
    if "--fast" in args:
        args = [a for a in args if a != "--fast"] + ["-m", "not slow"]
    python = ensure_env()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="mmcourse-test-") as scratch:
        env = hermetic_env(Path(scratch))
        run([python, "-m", "ruff", "check", "course.py", "mmcourse", "tests", "benchmarks",
             "scripts", "docs/site"], env=env)
        run([python, "-m", "pytest", "tests", "notebooks", "solutions", "--nbval-lax", "--nbval-current-env",
             "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-p", "no:cacheprovider",
             "--durations=15", *args], env=env)


def cmd_bench(args: list[str]) -> None:
    python = ensure_env()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="mmcourse-bench-") as scratch:
        env = hermetic_env(Path(scratch))
        for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
            run([python, script, *args], env=env)


COMMANDS = {"lab": cmd_lab, "test": cmd_test, "bench": cmd_bench, "site": cmd_site,
            "setup": lambda a: ensure_env()}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        sys.exit(f"usage: python3 course.py {{{'|'.join(COMMANDS)}}} [args...]\n\n{__doc__}")
    try:
        COMMANDS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as err:
        sys.exit(f"course.py {argv[0]}: command failed with exit code {err.returncode}: "
                 f"{' '.join(map(str, err.cmd))}")


if __name__ == "__main__":
    main(sys.argv[1:])
