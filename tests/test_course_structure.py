"""The course's shape: notebooks are numbered 00, 01, ... without gaps, and never redefine
what the ``mmcourse`` package already provides (they import it instead).

The README-table consistency checks live beside these (added by the lead).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmcourse"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME = re.compile(r"^(\d{2})_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")


def package_names(package: Path = PACKAGE) -> dict[str, str]:
    """Public module-level functions and classes of every ``mmcourse`` module: ``{name: module}``.

    Read with ``ast`` (nothing is imported), so a module with heavy imports costs nothing here.
    """
    names = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not node.name.startswith("_"):
                    names.setdefault(node.name, module)
    return names


def _code(source: str) -> str:
    """A code cell's source as Python: IPython magics and shell escapes become blank lines."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def notebook_definitions(nb) -> list[tuple[int, str]]:
    """``(cell index, name)`` of every function and class a notebook's code cells define.

    Methods inside a class are not counted (``forward`` or ``loss`` on a small adapter class is
    not a copy of a package function); nested functions are.
    """
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        tree = ast.parse(_code(source))
        methods = {id(item) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                   for item in node.body}
        for node in ast.walk(tree):
            defines = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if defines and id(node) not in methods:
                found.append((index, node.name))
    return found


def duplicated_definitions(nb, names: dict[str, str]) -> list[str]:
    """Messages for each definition in ``nb`` whose name the package already provides."""
    return [f"cell {index} defines {name!r}, which {names[name]} already provides: import it"
            for index, name in notebook_definitions(nb) if name in names]


def test_package_names_are_found():
    names = package_names()
    for expected in ("seed_everything", "fit", "History", "conv2d_unfold", "JointClassifier",
                     "scaled_dot_product_attention", "expected_calibration_error"):
        assert expected in names, f"{expected} not found among mmcourse's definitions"


def test_a_copied_definition_is_caught():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\nimport torch"),
        nbformat.v4.new_code_cell("def conv2d_unfold(x, w):\n    return x"),
        nbformat.v4.new_code_cell("class History:\n    pass\n\n"
                                  "class Adapter:\n    def fit(self):\n        pass"),
        nbformat.v4.new_markdown_cell("def seed_everything(): markdown is not code"),
    ]
    problems = duplicated_definitions(nb, package_names())
    assert len(problems) == 2, problems
    assert "cell 1 defines 'conv2d_unfold'" in problems[0] and "mmcourse.models.cnn" in problems[0]
    assert "cell 2 defines 'History'" in problems[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_does_not_redefine_package_code(path):
    problems = duplicated_definitions(json.loads(path.read_text()), package_names())
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_notebook_names_are_numbered_consecutively():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks found"
    bad = [n for n in names if not NAME.match(n)]
    assert not bad, f"notebook names must look like NN_lower_case_name.ipynb, got {bad}"
    numbers = [int(NAME.match(n).group(1)) for n in names]
    assert numbers == list(range(len(names))), (
        f"notebooks must be numbered 00, 01, ... without gaps or repeats, got {names}"
    )


def test_every_test_the_package_cites_exists():
    """Docstrings and comments that send a reader to a test must name one that exists: a file
    under tests/, and the test function when they name one."""
    root = Path(__file__).resolve().parents[1]
    cited = []
    for path in sorted((root / "mmcourse").rglob("*.py")):
        text = path.read_text()
        for file, name in re.findall(r"(tests/test_\w+\.py)(?:::(\w+))?", text):
            cited.append((path.name, file, name))
        for name, file in re.findall(r"``(test_\w+)`` in\s+``(tests/test_\w+\.py)``", text):
            cited.append((path.name, file, name))
    assert cited, "no citation found: the pattern is wrong"
    for source, file, name in cited:
        assert (root / file).exists(), f"{source} cites {file}, which does not exist"
        if name:
            assert f"def {name}(" in (root / file).read_text(), f"{source} cites {file}::{name}"
