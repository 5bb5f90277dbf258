"""Every notebook, as a learner runs it: in JupyterLab, in Chromium.

For each ``notebooks/NN_*.ipynb``: open it, deal with first-run dialogs, run
every cell above "## Clean up", wait for the kernel to go idle, and assert no
error output anywhere (error outputs, tracebacks printed by threads, widgets
that failed to render), and that every Mermaid diagram is drawn as an SVG.
Then click each visible "Fire event" button with the mouse and check that an
arrival panel's "received" counter goes up, and, when
the notebook shows browser-side clients (``lab.clients.browser``), that one of them
received events too. Finally run the clean-up cells and check they pass.

nbval proves the kernel side; this proves the page: the widgets render, the
click reaches the kernel, and the counters a learner watches move.

Every notebook runs in a JupyterLab served over http. The notebooks with
browser-side clients (those that use ``lab.clients.browser``: their page opens
connections through jupyter-server-proxy, where http and https differ) run a
second time in a JupyterLab served over https, as mybinder.org serves every
session. Running the whole suite twice would add minutes for notebooks whose
page makes no connection of its own, so those run over http only.
Screenshots land in ``tests/artifacts/`` (after Run All, after the clicks,
and on failure).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from labdriver import NotebookPage

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Notebooks whose page connects to the kernel's servers itself (lab.clients.browser).
WITH_BROWSER_CLIENTS = [
    p for p in NOTEBOOKS if "lab.clients.browser" in p.read_text(encoding="utf-8")
]
RUNS = [(p, "http") for p in NOTEBOOKS] + [(p, "https") for p in WITH_BROWSER_CLIENTS]
RUN_ALL_TIMEOUT = 240  # seconds for all cells above the clean-up
ARRIVAL_TIMEOUT = 20  # seconds for a click to show up in a counter
DIAGRAM_TIMEOUT = 30  # seconds for JupyterLab to load Mermaid and draw every diagram
MERMAID_FENCE = re.compile(r"^```mermaid\s*$", re.M)


def _received(counters: dict, cell: int | None = None) -> list[int]:
    return [p["value"] for p in counters["panels"] if cell is None or p["cell"] == cell]


def _grew(before: list[int], after: list[int]) -> list[bool]:
    return [b > a for a, b in zip(before, after, strict=False)]


def _wait_for_arrivals(nb: NotebookPage, before: dict, cell: int, timeout: float) -> dict:
    """Wait until every panel in the button's cell shows more received events
    (or, when that cell holds no panel, until any panel does)."""
    same_cell = bool(_received(before, cell))
    deadline = time.monotonic() + timeout
    while True:
        now = nb.counters()
        if same_cell:
            done = all(_grew(_received(before, cell), _received(now, cell)))
        else:
            done = any(_grew(_received(before), _received(now)))
        if done or now["notSent"] or time.monotonic() > deadline:
            return now
        nb.page.wait_for_timeout(250)


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "notebook, lab", RUNS, ids=[f"{p.stem}-{scheme}" for p, scheme in RUNS], indirect=["lab"]
)
def test_notebook_runs_and_reacts_to_clicks(notebook: Path, page, lab, artifacts) -> None:
    path = notebook.relative_to(REPO).as_posix()
    shot = f"{notebook.stem}-{lab.scheme}"
    nb = NotebookPage(page, path)
    nb.open(lab.url(f"lab/tree/{path}", reset=True))
    try:
        _, cells = nb.state()
        cleanup = nb.cleanup_index()
        if cleanup is None:
            nb.command("notebook:run-all-cells")
            nb.wait_executed(range(len(cells)), RUN_ALL_TIMEOUT)
        else:
            nb.command("notebook:run-all-above", active_cell=cleanup)
            nb.wait_executed(range(cleanup), RUN_ALL_TIMEOUT)
        page.screenshot(path=str(artifacts / f"{shot}-run-all.png"), full_page=True)

        # Every ```mermaid block in a markdown cell is drawn as an SVG, none as a
        # parse warning (JupyterLab loads Mermaid lazily, so wait for it).
        expected = sum(len(MERMAID_FENCE.findall(c.source)) for c in cells if c.type == "markdown")
        deadline = time.monotonic() + DIAGRAM_TIMEOUT
        drawn = nb.diagrams()
        while drawn["rendered"] < expected and not drawn["warnings"]:
            if time.monotonic() > deadline:
                break
            page.wait_for_timeout(250)
            drawn = nb.diagrams()
        assert not drawn["warnings"], f"{path}: Mermaid could not draw: {drawn['warnings']}"
        assert drawn["rendered"] == expected, (
            f"{path}: {expected} Mermaid diagrams in the notebook, {drawn['rendered']} drawn as SVG"
        )

        start = nb.counters()
        assert not start["notSent"], (
            f"a trigger panel shows an error after Run All: {start['notSent']}"
        )
        buttons = nb.panel_locator().get_by_role("button", name="Fire event")
        visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        if start["panels"]:
            assert visible, f"{path} shows arrival panels but no visible 'Fire event' button"
        for number, button in enumerate(visible, 1):
            button.scroll_into_view_if_needed()
            cell = nb.cell_index(button)
            before = nb.counters()
            button.click()  # a real mouse click at the button's position
            after = _wait_for_arrivals(nb, before, cell, ARRIVAL_TIMEOUT)
            where = f"{path}: 'Fire event' button {number} of {len(visible)} (cell {cell})"
            assert not after["notSent"], f"{where}: the trigger reports {after['notSent']}"
            if _received(before, cell):
                # The contract: every arrival panel shown with a trigger receives its events.
                assert all(_grew(_received(before, cell), _received(after, cell))), (
                    f"{where} was clicked but not every arrival panel in its cell shows a new "
                    f"event within {ARRIVAL_TIMEOUT} s: received before {_received(before, cell)}, "
                    f"after {_received(after, cell)}"
                )
            else:
                assert any(_grew(_received(before), _received(after))), (
                    f"{where} was clicked but no arrival panel shows a new event within "
                    f"{ARRIVAL_TIMEOUT} s: before {_received(before)}, after {_received(after)}"
                )
        nb.wait_idle()
        end = nb.counters()
        if visible and start["browser"]:
            grew = [
                f"{a['kind']}: {a['received']} -> {b['received']}"
                for a, b in zip(start["browser"], end["browser"], strict=False)
                if b["received"] > a["received"]
            ]
            assert grew, (
                f"{path}: no browser-side client received the clicked events: {end['browser']}"
            )
        errors = nb.errors()
        assert not errors, f"{path}: error output after the clicks:\n" + "\n".join(errors)
        page.screenshot(path=str(artifacts / f"{shot}-after-clicks.png"), full_page=True)

        if cleanup is not None:
            nb.command("notebook:run-all-below", active_cell=cleanup)
            nb.wait_executed(range(cleanup, len(cells)), 120)
    finally:
        nb.shutdown_kernel()
