"""The set-up promises: two README commands, consistent environments, a cheap import."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _norm(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower()


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [s for s in pip_section if not s.startswith("-e")]
    assert sorted(map(_norm, listed)) == sorted(map(_norm, set(wanted)))
    assert "-e .[dev]" in pip_section
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_torch_is_bounded_below_the_next_release():
    """An unbounded torch would pull the newest CUDA build on a CPU machine."""
    torch_spec = next(d for d in _pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert "<" in torch_spec, torch_spec
    import torch
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    assert Version(torch.__version__.split("+")[0]) in SpecifierSet(torch_spec[len("torch"):])


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\s*(python3 course\.py \w+)\s*$", setup, flags=re.M)


def test_readme_names_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert commands == ["python3 course.py lab", "python3 course.py test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3 course\.py test\s*$", ci, flags=re.M), "CI must run the README's test command"
    assert "set -euo pipefail" in ci


def test_test_command_runs_lint_units_and_notebooks():
    source = (ROOT / "course.py").read_text()
    body = source.split("def cmd_test", 1)[1].split("\ndef ", 1)[0]
    for needed in ('"ruff", "check"', '"pytest", "tests", "notebooks"', '"--nbval-lax"',
                   "nbval_sanitize.cfg"):
        assert needed in body, needed


def test_import_is_cheap_and_lazy():
    code = (
        "import sys, time; t = time.perf_counter(); import mmcourse; "
        "dt = time.perf_counter() - t; "
        "print(dt, 'torch' in sys.modules, 'mmcourse.train' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, torch_loaded, train_loaded = out.stdout.split()
    assert float(seconds) < 3.0
    assert torch_loaded == "False" and train_loaded == "False"
    # and the lazy attributes resolve
    out = subprocess.run([sys.executable, "-c", "import mmcourse; print(mmcourse.train.fit.__name__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "fit"


def test_importing_every_module_does_no_work():
    code = (
        "import time, importlib, pkgutil, mmcourse; t = time.perf_counter()\n"
        "for m in pkgutil.walk_packages(mmcourse.__path__, 'mmcourse.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 6.0  # torch + matplotlib imports dominate; no data is loaded


def test_data_assets_ship_with_the_package():
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]["mmcourse.data"]
    assets = ROOT / "mmcourse" / "data" / "assets"
    shipped = [p.name for p in assets.iterdir()]
    assert "spoken_digits.npz" in shipped and "spoken_digits.npz.sha256" in shipped
    assert "assets/*.npz" in package_data and "assets/*.sha256" in package_data
