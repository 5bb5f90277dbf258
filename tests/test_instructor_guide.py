"""docs/instructor.md's schedule is built from the notebooks' declared times.

The guide has two tables: "In the room" (Start | Min | Notebook | Part |
Sections) and "Left for self-study" (Min | Notebook | Part | Sections). For
every notebook, its teaching rows (room + self-study) add up to the
notebook's declared Teaching minutes and its exercise rows to its declared
Exercises minutes; the room adds up to exactly 180 minutes with breaks, and
its start times follow from the minutes. Every section named exists in that
notebook, and every content section and exercise is placed exactly once, so
a notebook that changes its sections or times makes this test fail until
the guide follows.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from test_notebook_structure import NOTEBOOKS, declared_minutes, headings, read

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "instructor.md"
ROOM_MINUTES = 180
ROOM_HEADING = "### In the room"
SELF_HEADING = "### Left for self-study"


def table_after(text: str, heading: str) -> list[dict[str, str]]:
    """The first markdown table after ``heading``, as a list of row dicts."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    header, divider, *body = rows
    assert all(set(cell) <= set("-: ") for cell in divider), divider
    return [dict(zip(header, row, strict=True)) for row in body]


def minutes_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def section_titles(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def content_sections(path: Path) -> list[str]:
    found = headings(read(path))
    return found[found.index("Imports") + 1 : found.index("Exercises")]


def exercise_titles(path: Path) -> list[str]:
    return [
        line[4:].strip()
        for cell in read(path).cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if re.match(r"### Exercise \d+", line)
    ]


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def room(guide) -> list[dict[str, str]]:
    return table_after(guide, ROOM_HEADING)


@pytest.fixture(scope="module")
def self_study(guide) -> list[dict[str, str]]:
    return table_after(guide, SELF_HEADING)


def test_tables_have_the_expected_columns(room, self_study):
    assert list(room[0]) == ["Start", "Min", "Notebook", "Part", "Sections"]
    assert list(self_study[0]) == ["Min", "Notebook", "Part", "Sections"]
    stems = {p.stem for p in NOTEBOOKS}
    for row in room + self_study:
        assert row["Notebook"] in stems | {"break"}, row
        assert row["Part"] in ({"teaching", "exercises"} if row["Notebook"] != "break" else {""})
        assert int(row["Min"]) > 0, row


def test_the_room_is_exactly_three_hours(room):
    assert sum(int(r["Min"]) for r in room) == ROOM_MINUTES


def test_start_times_follow_from_the_minutes(room):
    clock = 0
    for row in room:
        assert minutes_of(row["Start"]) == clock, row
        clock += int(row["Min"])
    assert clock == ROOM_MINUTES


def test_there_are_breaks(room):
    assert sum(1 for r in room if r["Notebook"] == "break") >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_minutes_match_the_declared_time(path, room, self_study):
    rows = [r for r in room + self_study if r["Notebook"] == path.stem]
    assert rows, f"{path.name} is missing from the schedule"
    teaching, exercises = declared_minutes(path)
    planned = Counter()
    for r in rows:
        planned[r["Part"]] += int(r["Min"])
    assert planned["teaching"] == teaching, (path.name, planned, teaching)
    assert planned["exercises"] == exercises, (path.name, planned, exercises)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_section_and_exercise_is_placed_once(path, room, self_study):
    rows = [r for r in room + self_study if r["Notebook"] == path.stem]
    taught = [t for r in rows if r["Part"] == "teaching" for t in section_titles(r["Sections"])]
    practised = [t for r in rows if r["Part"] == "exercises" for t in section_titles(r["Sections"])]
    assert sorted(taught) == sorted(content_sections(path)), path.name
    assert sorted(practised) == sorted(exercise_titles(path)), path.name


def test_the_room_teaches_every_core_notebook_and_no_in_depth_one(room):
    """The room plan uses the core notebooks 00-05; their in-depth companions and the
    notebooks after the decision notebook (06 network weather) are self-study."""
    in_room = {r["Notebook"] for r in room} - {"break"}
    core = {p.stem for p in NOTEBOOKS if p.name < "06" and not p.stem.endswith("_in_depth")}
    assert in_room == core


def test_the_guide_covers_what_an_instructor_needs(guide):
    for heading in (
        "## Demo live, or leave to learners",
        "## Failure demos that work best on a projector",
        "## Common learner problems and their fixes",
        "## How to reset",
        "## Pre-workshop checklist",
        "## Windows notes",
    ):
        assert heading in guide, heading
    for needle in ("python -m lab.setup_check", "runtime.stop_all()", "outbox.reset", "NO_PROXY",
                   "Your turn", "Predict"):  # fmt: skip
        assert needle in guide, needle


def test_sections_quoted_in_the_prose_exist(guide):
    """Every ("NN, "Section name") reference in the guide's prose names a real heading."""
    prose = re.sub(r"\s+", " ", guide)
    refs = re.findall(r"\b(0\d)[,:]? \"([^\"]+)\"", prose)
    assert refs, 'expected section references such as (01, "...")'
    for number, title in refs:
        # "01" names the core notebook and its in-depth companion alike.
        titles = [
            line.lstrip("#").strip()
            for path in NOTEBOOKS
            if path.name[:2] == number
            for cell in read(path).cells
            if cell.cell_type == "markdown"
            for line in cell.source.splitlines()
            if line.startswith(("## ", "### "))
        ]
        assert title in titles, (number, title)


def test_self_study_heading_says_its_total(guide, self_study):
    stated = re.search(r"^### Left for self-study \((\d+) min\)", guide, re.M)
    assert stated and int(stated[1]) == sum(int(r["Min"]) for r in self_study)
