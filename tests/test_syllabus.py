"""The README's syllabus, the notebook files and the exercise files tell the same story."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
ROW = re.compile(r"^\|\s*(\d\d)\s*\|\s*\[(\w+)\]\((notebooks/[\w.]+)\)\s*\|\s*(.*?)\s*\|\s*(.+?)\s*\|\s*$")
LINK = re.compile(r"\[[^\]]+\]\(([^)]+)\)")


def _syllabus_rows() -> list[tuple[str, str, str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Syllabus", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.match(line) for line in section.splitlines()]
    return [(m[1], m[2], m[3], m[4]) for m in rows if m]


def test_the_course_has_part_one_00_to_10_and_part_two_after_it():
    # names and numbering without gaps: test_course_structure.test_notebook_names_are_numbered_consecutively
    assert len(NOTEBOOKS) >= 11, ("Part I is chapters 00-10", NOTEBOOKS)
    text = (ROOT / "README.md").read_text().split("## Syllabus", 1)[1].split("\n## ", 1)[0]
    part_one, part_two = text.split("### Part I", 1)[1].split("### Part II", 1)
    assert [m[1] for m in map(ROW.match, part_one.splitlines()) if m] == [f"{i:02d}" for i in range(11)]
    assert all(int(m[1]) >= 11 for m in map(ROW.match, part_two.splitlines()) if m)


def test_readme_syllabus_lists_every_notebook_once_in_order():
    rows = _syllabus_rows()
    assert [f"notebooks/{n}" for n in NOTEBOOKS] == [path for _, _, path, _ in rows]
    for number, label, path, _ in rows:
        name = Path(path).stem
        assert name.startswith(number + "_") and name[3:] == label, (number, label, path)


def test_readme_syllabus_links_each_chapter_to_its_exercise_and_solution():
    for number, _, path, exercise_cell in _syllabus_rows():
        links = LINK.findall(exercise_cell)
        if number in ("00", "01"):
            assert not links, f"chapter {number} has no graded exercise"
            continue
        name = Path(path).name
        assert links == [f"exercises/{name}", f"solutions/{name}"], (number, links)
        for link in links:
            assert (ROOT / link).is_file(), f"README links {link}, which does not exist"


def test_every_exercise_belongs_to_a_chapter():
    """... except the capstone, which follows Part I and is listed right after its table."""
    for folder in ("exercises", "solutions"):
        names = sorted(p.name for p in (ROOT / folder).glob("*.ipynb"))
        assert [n for n in names if n != "capstone.ipynb"] == NOTEBOOKS[2:], (folder, names)
    part_one = (ROOT / "README.md").read_text().split("### Part I", 1)[1].split("### Part II", 1)[0]
    capstone = [line for line in part_one.splitlines() if "capstone" in line.lower()]
    assert len(capstone) == 1 and not ROW.match(capstone[0]), capstone
    assert LINK.findall(capstone[0]) == ["exercises/capstone.ipynb", "solutions/capstone.ipynb"]
