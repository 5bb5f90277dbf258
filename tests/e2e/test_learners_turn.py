"""The learner's turn, clicked in a real browser: a learner who clicks Fire
event before running the next cell sees *their* events counted.

Each core notebook has steps like "**Your turn.** Click **Fire event** three
times, then run the next cell"; that next cell calls ``lab.turn.top_up``,
which fires only what the learner did not. ``test_notebooks_in_browser``
runs every notebook with nobody clicking first (top_up fires it all); this
test takes the learner's path for the first such step of each notebook: run
the cells above it, click Fire event with the mouse, run the cell, and read
what it printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from labdriver import NotebookPage

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CLICKS = 2  # every first "Your turn" asks for at least two events


def first_turn(path: Path) -> int | None:
    """Index of the first top_up cell right after a "Your turn ... Fire event"
    prompt, or None."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells[1:], 1):
        before = cells[i - 1]
        if (
            cell.cell_type == "code"
            and "top_up(" in cell.source
            and before.cell_type == "markdown"
            and "Your turn" in before.source
            and "Fire event" in before.source
        ):
            return i
    return None


TURNS = [(p, first_turn(p)) for p in NOTEBOOKS if first_turn(p) is not None]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook, turn", TURNS, ids=[p.stem for p, _ in TURNS])
def test_the_next_cell_counts_the_learners_clicks(notebook: Path, turn, page, lab, artifacts):
    index, clicks = turn, CLICKS
    path = notebook.relative_to(REPO).as_posix()
    nb = NotebookPage(page, path)
    nb.open(lab.url(f"lab/tree/{path}", reset=True))
    try:
        nb.command("notebook:run-all-above", active_cell=index)
        nb.wait_executed(range(index), 180)
        buttons = nb.panel_locator().get_by_role("button", name="Fire event")
        visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        assert visible, f"{path}: the step before cell {index} shows no Fire event button"
        button = visible[-1]  # the trigger of the step the learner just reached
        button.scroll_into_view_if_needed()
        for _ in range(clicks):
            button.click()  # a real mouse click
            page.wait_for_timeout(200)
        nb.command("notebook:run-cell", active_cell=index)
        nb.wait_executed(range(index + 1), 60)
        said = nb.output_text(index)
        page.screenshot(path=str(artifacts / f"{notebook.stem}-your-turn.png"), full_page=True)
        match = re.search(r"You fired (\d+) event", said)
        assert match and int(match[1]) >= clicks, (
            f"{path}: after {clicks} clicks, cell {index} said {said[:300]!r}"
        )
    finally:
        nb.shutdown_kernel()
