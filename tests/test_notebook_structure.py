"""Every notebook follows the collection's skeleton (see README, "How it is
built"). Anchors that only ask for a structure drift; this test holds it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_ORDER = [
    "Overview",
    "Prerequisites",
    "Time to learn",
    "Imports",
    "Exercises",
    "Check your understanding",
    "Summary",
    "What's next",
    "References",
    "Clean up",
]
TIME_RE = re.compile(r"Teaching:\s*(\d+)\s*min.*?Exercises:\s*(\d+)\s*min", re.S)


def read(path: Path):
    return nbformat.read(path, as_version=4)


def headings(nb) -> list[str]:
    return [
        line[3:].strip()
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]


def section(nb, title: str) -> list:
    """The cells from the ``## title`` heading up to the next ``##``."""
    out, inside = [], False
    for cell in nb.cells:
        is_heading = cell.cell_type == "markdown" and cell.source.lstrip().startswith("## ")
        if is_heading:
            inside = cell.source.lstrip()[3:].splitlines()[0].strip() == title
        if inside:
            out.append(cell)
    return out


def declared_minutes(path: Path) -> tuple[int, int]:
    """(teaching, exercises) minutes from the notebook's "Time to learn"."""
    text = "\n".join(c.source for c in section(read(path), "Time to learn"))
    match = TIME_RE.search(text)
    if not match:
        raise AssertionError(
            f"{path.name}: 'Time to learn' lacks 'Teaching: N min · Exercises: M min'"
        )
    return int(match[1]), int(match[2])


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    dirty = [
        i
        for i, c in enumerate(read(path).cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton_sections_in_order(path):
    nb = read(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), (
        "title first"
    )
    found = headings(nb)
    missing = [h for h in REQUIRED_ORDER if h not in found]
    assert missing == [], f"{path.name}: missing sections {missing}"
    positions = [found.index(h) for h in REQUIRED_ORDER]
    assert positions == sorted(positions), f"{path.name}: sections out of order: {found}"
    content = found[found.index("Imports") + 1 : found.index("Exercises")]
    assert content, f"{path.name}: no content sections between Imports and Exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_overview_lists_the_content_sections(path):
    nb = read(path)
    overview = "\n".join(c.source for c in section(nb, "Overview"))
    items = re.findall(r"^\s*\d+\.\s", overview, re.M)
    found = headings(nb)
    content = found[found.index("Imports") + 1 : found.index("Exercises")]
    assert len(items) >= len(content), f"{path.name}: Overview has {len(items)} items for {content}"
    for title in content:
        assert title.lower() in overview.lower(), (
            f"{path.name}: Overview does not mention {title!r}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prerequisites_table_and_time_to_learn(path):
    nb = read(path)
    prereq = "\n".join(c.source for c in section(nb, "Prerequisites"))
    assert re.search(r"\|\s*Concept\s*\|\s*Importance\s*\|", prereq), f"{path.name}: no table"
    teaching, exercises = declared_minutes(path)
    assert teaching > 0 and exercises > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_come_first(path):
    cells = section(read(path), "Imports")
    assert any(c.cell_type == "code" and "import" in c.source for c in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_solutions_checkers_and_checkpoints(path):
    nb = read(path)
    cells = section(nb, "Exercises")
    loads = [
        m
        for c in cells
        if c.cell_type == "code"
        for m in re.findall(r"^# %load (solutions/\S+\.py)\s*$", c.source, re.M)
    ]
    assert len(loads) >= 2, (
        f"{path.name}: needs at least two exercises with '# %load solutions/...'"
    )
    for rel in loads:
        assert (path.parent / rel).is_file(), f"{path.name}: {rel} does not exist"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    for rel in loads:
        name = Path(rel).stem
        assert f'load_solution("{name}")' in code, f"{path.name}: no checkpoint checks {name}"
    assert "assert not" in code, f"{path.name}: no checkpoint proves a wrong answer is rejected"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checkpoints_assert(path):
    nb = read(path)
    asserting = [
        c for c in nb.cells if c.cell_type == "code" and re.search(r"^\s*assert ", c.source, re.M)
    ]
    assert len(asserting) >= 3, f"{path.name}: prove behaviour with asserts in checkpoint cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_questionnaire_has_answers(path):
    text = "\n".join(c.source for c in section(read(path), "Check your understanding"))
    questions = re.findall(r"^\s*\d+\.\s", text, re.M)
    assert len(questions) >= 3 and text.count("<details>") >= len(questions)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skipped_cells_say_why(path):
    for i, cell in enumerate(read(path).cells):
        tags = cell.get("metadata", {}).get("tags", [])
        skipped = "nbval-skip" in tags or "NBVAL_SKIP" in cell.source
        if skipped:
            first = cell.source.splitlines()[0] if cell.source else ""
            assert re.match(r"#\s*nbval-skip:\s*\S", first), (
                f"{path.name} cell {i}: skipped under nbval without '# nbval-skip: <reason>'"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_by_cleaning_up(path):
    nb = read(path)
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "runtime.stop_all()" in last_code.source, f"{path.name}: last cell must stop all servers"
    assert section(nb, "Clean up"), f"{path.name}: no Clean up section"
