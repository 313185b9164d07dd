"""The explorers in a real browser: JupyterLab + Debian's Chromium driven by playwright-core.

The test installs what it needs itself: Chromium with ``apt-get`` (when ``/usr/bin/chromium`` is
missing; it is skipped, saying why, only if that is impossible) and ``playwright-core`` with
``npm`` into ``.mmcourse-cache/playwright`` (no browser download). It then

The first test checks the explorers:

1. starts ``jupyter-lab`` directly (its PID is the server's) on 127.0.0.1 with a random token,
   a throw-away root directory holding a copy of ``docs/explorers.ipynb`` and hermetic
   Jupyter/IPython settings, with ``PYTHONPATH`` so that the kernel imports this ``mmcourse``;
2. opens the notebook in headless Chromium (fresh profile, no sandbox, no GPU, background
   networking off), waits for the kernel, runs all cells and waits for every explorer;
3. for each explorer focuses its first slider's handle, presses ArrowRight, waits for the
   figure (a new PNG) and its text to change; then, for an explorer with more controls than a
   slider, does what a user would next (``ACTIONS``: types prompts, clicks a decoder, moves
   another slider) and checks what its text then says; screenshots the explorer;
4. stops the server by its PID.

The second test checks the course as ``python3 course.py lab`` serves it (the same options,
``course.lab_arguments``, on a copy of ``notebooks/`` and ``exercises/``): the server's front page
opens chapter 00; every chapter's link to ``../exercises/NN_name.ipynb`` resolves through the
server's contents API; and in Chromium, chapter 02's closing link, clicked, opens its exercise.

Screenshots land in ``.mmcourse-cache/browser/``; with ``MMCOURSE_UPDATE_SCREENSHOTS=1`` they
are also copied (palette-compressed) to ``docs/img/``, the pictures the README shows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".mmcourse-cache"
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT_VERSION = "1.65.1"
NOTEBOOK = ROOT / "docs" / "explorers.ipynb"
EXPLORERS = ["softmax", "attention", "retrieval", "decoding", "fusion", "quality", "zero_shot", "alignment",
             "vqa", "generation"]
# what an explorer's text must show once its first slider has moved one step right
SLIDER_SHOWS = {"zero_shot": r"^scene #1: the true caption is", "vqa": r"^image \d+: .+ → \w+",
                "generation": r"τ = 1\.1, w = 3\.0"}
# then, in order: ``type`` (into its text box, then Enter), ``click`` (a button by its label) or
# ``slider`` (press ArrowRight on that slider, 0 = the first); ``expect``, a pattern its text must
# show afterwards (and the text must differ from before); ``figure``, whether the picture changes
ACTIONS = {
    "zero_shot": [{"type": "a red circle, a photo of a dog", "figure": True,
                   "expect": r"Words the model never saw \(read as <unk>\): dog, photo"}],
    "alignment": [{"click": "prefix beam", "figure": False, "expect": r"prefix beam K=4: "},
                  {"slider": 1, "figure": False, "expect": r"prefix beam K=5: "}],
    "vqa": [{"type": "is there a purple dragon?", "figure": True,
             "expect": r"not in the vocabulary \(read as <unk>\): purple, dragon"}],
    "generation": [{"type": "a large green triangle", "figure": True,
                    "expect": r"a large green triangle — τ = 1\.1, w = 3\.0"}],
}
RUN_TIMEOUT_S = 420

pytestmark = pytest.mark.browser


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _apt_install(*packages: str) -> str:
    """Install Debian packages (``apt-get update`` first if the plain install fails); returns
    the error text, or "" on success."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "there is no apt-get on this machine"
    if os.geteuid() != 0:
        return "apt-get needs root and this test does not run as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *packages]
    done = _run(install, 900, env=env)
    if done.returncode != 0:
        _run([apt, "update", "-q", "-o", "DPkg::Lock::Timeout=300"], 600, env=env)
        done = _run(install, 900, env=env)
    return "" if done.returncode == 0 else (done.stderr or done.stdout)[-800:]


def ensure_chromium() -> float:
    """``/usr/bin/chromium`` (installed with apt-get when missing); seconds spent installing."""
    start = time.perf_counter()
    if not CHROMIUM.exists():
        error = _apt_install("chromium")
        if not CHROMIUM.exists():
            pytest.skip(f"Chromium is not installed at {CHROMIUM} and could not be installed: {error}")
    return time.perf_counter() - start


def ensure_playwright() -> tuple[Path, float]:
    """``playwright-core`` in the cache (npm, no browser download); the folder and seconds spent."""
    start = time.perf_counter()
    if shutil.which("node") is None or shutil.which("npm") is None:
        error = _apt_install("nodejs", "npm")
        assert shutil.which("node") and shutil.which("npm"), f"could not install Node.js and npm: {error}"
    folder = CACHE / "playwright"
    package = folder / "node_modules" / "playwright-core" / "package.json"
    if not package.exists() or json.loads(package.read_text())["version"] != PLAYWRIGHT_VERSION:
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        done = _run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(folder),
                     f"playwright-core@{PLAYWRIGHT_VERSION}"], 600, env=env)
        assert done.returncode == 0 and package.exists(), \
            f"npm install playwright-core failed:\n{done.stderr[-2000:]}"
    return folder, time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _course_module():
    """``course.py`` (the repository's entry script) as a module, for its ``hermetic_env``."""
    spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_lab_settings(folder: Path) -> None:
    """JupyterLab user settings: every cell attached to the page (no windowing), the notebook's
    kernel started without asking, no news."""
    settings = {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start_jupyter_lab(root: Path, scratch: Path, port: int, token: str,
                      options: list[str] | None = None) -> subprocess.Popen:
    """``jupyter-lab`` from this Python's environment, started directly (no forking launcher),
    rooted at ``root`` unless ``options`` (e.g. ``course.py lab``'s own) say otherwise."""
    binary = Path(sys.executable).parent / "jupyter-lab"
    assert binary.exists(), f"jupyter-lab is not installed beside {sys.executable}"
    settings = scratch / "lab-settings"
    write_lab_settings(settings)
    env = _course_module().hermetic_env(scratch)  # the same Jupyter isolation as `course.py test`
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces"),
    })
    log = open(scratch / "jupyter-lab.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [str(binary), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--allow-root",
         *(options if options is not None else [f"--ServerApp.root_dir={root}"])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)


def wait_for_server(proc: subprocess.Popen, port: int, token: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter-lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"jupyter-lab did not answer on port {port} in {timeout} s:\n"
                         f"{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server (and its kernels, in its process group) by its PID."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def shrink_png(src: Path, dst: Path, colours: int = 96) -> None:
    """A palette PNG: screenshots of flat figures lose nothing visible and shrink ~3x."""
    from PIL import Image

    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def test_explorers_in_jupyterlab_with_chromium(tmp_path):
    t0 = time.perf_counter()
    chromium_s = ensure_chromium()
    playwright, npm_s = ensure_playwright()
    install_s = time.perf_counter() - t0
    root, scratch = tmp_path / "lab", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)        # JupyterLab saves into its copy, not docs/
    shots = CACHE / "browser"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    port, token = free_port(), secrets.token_hex(16)
    proc = start_jupyter_lab(root, scratch, port, token)
    try:
        wait_for_server(proc, port, token, scratch / "jupyter-lab.log")
        config = {"url": f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}",
                  "chromium": str(CHROMIUM), "profile": str(scratch / "chromium-profile"),
                  "outdir": str(shots), "explorers": EXPLORERS, "actions": ACTIONS,
                  "run_timeout_ms": RUN_TIMEOUT_S * 1000}
        driver = _run(["node", str(ROOT / "tests" / "browser_explorers.js"), json.dumps(config)],
                      RUN_TIMEOUT_S + 240, env={**os.environ, "PLAYWRIGHT_DIR": str(playwright)})
    finally:
        stop(proc)
    assert proc.poll() is not None, "jupyter-lab is still running"
    lines = [line for line in driver.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the browser driver printed no result (exit {driver.returncode}):\n{driver.stderr[-3000:]}"
    result = json.loads(lines[-1])
    result.update(install_s=round(install_s, 1), chromium_install_s=round(chromium_s, 1),
                  npm_install_s=round(npm_s, 1), test_s=round(time.perf_counter() - t0 - install_s, 1))
    (shots / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "explorers"}),
          [(e["name"], e["changed_ms"]) for e in result["explorers"]])
    assert not result["errors"], f"browser errors: {result['errors']} (see {shots / 'failure.png'})"
    assert result["tracebacks"] == 0, "a notebook cell raised; run docs/explorers.ipynb to see it"
    assert [e["name"] for e in result["explorers"]] == EXPLORERS
    for e in result["explorers"]:
        assert e["src_changed"] and e["text_after"] != e["text_before"], f"{e['name']}: no visible change"
        assert re.search(SLIDER_SHOWS.get(e["name"], ""), e["text_after"]), (e["name"], e["text_after"])
        assert len(e["actions"]) == len(ACTIONS.get(e["name"], [])), e
        for want, done in zip(ACTIONS.get(e["name"], []), e["actions"]):
            assert done["text_after"] != done["text_before"], f"{e['name']}: {want} changed no text"
            assert re.search(want["expect"], done["text_after"]), (e["name"], want, done["text_after"])
            if want["figure"]:
                assert done["src_changed"], f"{e['name']}: {want} changed no figure"
        assert Path(e["screenshot"]).stat().st_size > 5000, f"{e['name']}: empty screenshot"
    if os.environ.get("MMCOURSE_UPDATE_SCREENSHOTS") == "1":
        for e in result["explorers"]:
            shrink_png(Path(e["screenshot"]), ROOT / "docs" / "img" / f"explorer-{e['name']}.png")


EXERCISE_LINK = re.compile(r"\]\((\.\./exercises/[^)\s]+\.ipynb)\)")
CLICKED_CHAPTER = "notebooks/02_cnn_for_images_and_spectrograms.ipynb"


def exercise_links(notebooks: Path) -> dict[str, str]:
    """``{chapter path: exercise path}`` (relative to the repository) for every markdown link of a
    chapter to ``../exercises/...``."""
    links = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] == "markdown":
                for target in EXERCISE_LINK.findall(source):
                    links[f"notebooks/{path.name}"] = os.path.normpath(f"notebooks/{target}")
    return links


def api_status(port: int, token: str, path: str) -> int:
    """HTTP status of ``GET /api/contents/<path>``: what JupyterLab asks when a link is opened."""
    url = f"http://127.0.0.1:{port}/api/contents/{path}?content=0&token={token}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_course_lab_opens_chapter_00_and_a_chapter_link_opens_its_exercise(tmp_path):
    course = _course_module()
    links = exercise_links(ROOT / "notebooks")
    assert CLICKED_CHAPTER in links, f"{CLICKED_CHAPTER} has no link to its exercise"
    ensure_chromium()
    playwright, _ = ensure_playwright()
    root, scratch = tmp_path / "course", tmp_path / "scratch"
    scratch.mkdir()
    for folder in ("notebooks", "exercises"):      # what the links need; JupyterLab saves into the copy
        shutil.copytree(ROOT / folder, root / folder)
    shots = CACHE / "browser-course"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    port, token = free_port(), secrets.token_hex(16)
    proc = start_jupyter_lab(root, scratch, port, token, options=course.lab_arguments(root))
    try:
        wait_for_server(proc, port, token, scratch / "jupyter-lab.log")
        statuses = {chapter: api_status(port, token, target) for chapter, target in links.items()}
        config = {"mode": "course", "url": f"http://127.0.0.1:{port}/?token={token}",
                  "chapter_url": f"http://127.0.0.1:{port}/lab/tree/{CLICKED_CHAPTER}?token={token}",
                  "first": course.FIRST_NOTEBOOK, "exercise": links[CLICKED_CHAPTER],
                  "chromium": str(CHROMIUM), "profile": str(scratch / "chromium-profile"),
                  "outdir": str(shots)}
        driver = _run(["node", str(ROOT / "tests" / "browser_explorers.js"), json.dumps(config)],
                      400, env={**os.environ, "PLAYWRIGHT_DIR": str(playwright)})
    finally:
        stop(proc)
    broken = {chapter: (links[chapter], code) for chapter, code in statuses.items() if code != 200}
    assert not broken, f"chapter links the server cannot open (chapter: (target, HTTP status)): {broken}"
    lines = [line for line in driver.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the browser driver printed no result (exit {driver.returncode}):\n{driver.stderr[-3000:]}"
    result = json.loads(lines[-1])
    (shots / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    assert not result["errors"], f"browser errors: {result['errors']} (see {shots / 'failure.png'})"
    assert result["landing_url"].split("?")[0].endswith(f"/lab/tree/{course.FIRST_NOTEBOOK}"), result
    assert result["landing_tab"] == Path(course.FIRST_NOTEBOOK).name, result
    assert result["exercise_url"].split("?")[0].endswith(f"/lab/tree/{links[CLICKED_CHAPTER]}"), result
    assert "check(" in result["exercise_text"], "the exercise notebook opened without its cells"
    assert not result["load_error"], result["load_error"]
