"""The set-up promises: two README commands, consistent environments, a cheap import."""

import importlib.util
import os
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


def _course():
    """course.py, imported as a module (it only defines functions; nothing runs on import)."""
    spec = importlib.util.spec_from_file_location("course_under_test", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_spec() -> str:
    return next(d for d in _pyproject()["project"]["dependencies"] if d.startswith("torch"))


def test_hermetic_env_makes_runs_reproducible_and_keeps_state_in_scratch(tmp_path, monkeypatch):
    course = _course()
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    monkeypatch.setenv("MPLBACKEND", "TkAgg")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "users-own-jupyter"))
    monkeypatch.delenv("MMCOURSE_PROFILE", raising=False)
    env = course.hermetic_env(tmp_path / "scratch")
    assert env["PYTHONHASHSEED"] == "0" and env["MPLBACKEND"] == "Agg"
    assert env["MMCOURSE_PROFILE"] == "default"
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR",
                "MPLCONFIGDIR"):
        assert Path(env[var]).is_relative_to(tmp_path / "scratch"), var
    assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on
    assert os.environ["PYTHONHASHSEED"] == "random"  # and the caller's own is left alone
    # two runs in it hash strings alike and draw headless: what makes outputs comparable
    code = "import matplotlib; print(hash('mmcourse'), matplotlib.get_backend().lower())"
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and outs[0].split()[1] == "agg"
    monkeypatch.setenv("MMCOURSE_PROFILE", "full")  # a profile the user chose is kept
    assert course.hermetic_env(tmp_path)["MMCOURSE_PROFILE"] == "full"


def test_setup_installs_the_package_with_its_dev_extra_once(tmp_path, monkeypatch):
    course = _course()
    monkeypatch.setenv("MMCOURSE_VENV", str(tmp_path / "venv"))
    monkeypatch.delenv("MMCOURSE_TORCH_INDEX", raising=False)
    python = course.venv_bin("python")
    python.parent.mkdir(parents=True)
    python.touch()  # the virtual environment exists; what gets installed into it is the question
    calls = []
    monkeypatch.setattr(course, "run", lambda cmd, **kwargs: calls.append([str(c) for c in cmd]))
    assert course.ensure_env() == python
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    assert calls == [[*pip, "-e", f"{ROOT}[dev]"]]  # one call: pip resolves torch's bounds itself
    calls.clear()
    course.ensure_env()
    assert calls == []  # nothing changed, nothing reinstalled
    monkeypatch.setenv("MMCOURSE_TORCH_INDEX", "https://example.invalid/whl")
    course.ensure_env()  # another index: torch from it first, within pyproject's bounds
    assert calls == [[*pip, "--extra-index-url", "https://example.invalid/whl", _torch_spec()],
                     [*pip, "-e", f"{ROOT}[dev]"]]


def test_the_test_command_lints_then_runs_units_notebooks_and_solutions(tmp_path, monkeypatch):
    course = _course()
    python = "/venv/bin/python"
    calls = []
    monkeypatch.setattr(course, "ensure_env", lambda: Path(python))
    monkeypatch.setattr(course, "run",
                        lambda cmd, **kwargs: calls.append(([str(c) for c in cmd], kwargs.get("env"))))
    monkeypatch.chdir(tmp_path)  # cmd_test moves to the repository; restored afterwards
    course.cmd_test(["-k", "shapes"])
    assert Path.cwd() == ROOT
    (lint, lint_env), (tests, tests_env) = calls
    assert lint[:4] == [python, "-m", "ruff", "check"]
    assert {"course.py", "mmcourse", "tests"} <= set(lint[4:])
    assert all((ROOT / target).exists() for target in lint[4:])
    assert tests[:3] == [python, "-m", "pytest"]
    assert {"tests", "notebooks", "solutions", "--nbval-lax", "--nbval-current-env"} <= set(tests)
    sanitizer = tests[tests.index("--nbval-sanitize-with") + 1]
    assert (ROOT / sanitizer).is_file()
    assert tests[-2:] == ["-k", "shapes"]  # the user's arguments reach pytest
    assert lint_env["PYTHONHASHSEED"] == tests_env["PYTHONHASHSEED"] == "0"
    assert tests_env["MPLBACKEND"] == "Agg"


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
