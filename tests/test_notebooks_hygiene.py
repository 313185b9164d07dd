"""Committed notebooks are executed top to bottom, carry their outputs, and download nothing.

nbval (run by ``python3 course.py test``) re-executes each notebook; these checks guard what
nbval's lax mode does not: stale or partial outputs, and cells that reach the network.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NETWORK = re.compile(r"urlopen|urlretrieve|requests\.|wget |curl |download=True|from_pretrained|"
                     r"hf_hub|torchvision\.datasets|load_dataset\(")


def test_there_is_a_tour_notebook():
    assert (ROOT / "notebooks" / "00_setup_and_tour.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_in_order_with_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, f"{path.name}: re-execute it; some cells were never run"
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom once"
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name}: a cell raised {out.get('ename')}"
    assert any(c["outputs"] for c in code), f"{path.name}: committed without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_downloads_nothing(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert not NETWORK.search(source), f"{path.name}: network access in\n{source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_checks_some_outputs_and_seeds(path):
    nb = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("# NBVAL_CHECK_OUTPUT" in s for s in sources), "no cell's output is checked"
    assert "seed_everything(" in sources[0], "seed everything in the first code cell"
