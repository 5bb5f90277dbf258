"""Every notebook, as a learner runs it: in JupyterLab, in Chromium.

For each ``notebooks/NN_*.ipynb``: open it, deal with first-run dialogs, run
every cell above "## Clean up", wait for the kernel to go idle, and assert no
error output anywhere (error outputs, tracebacks printed by threads, widgets
that failed to render). Then click each visible "Fire event" button with the
mouse and check that an arrival panel's "received" counter goes up, and, when
the notebook shows browser-side clients (``lab.browser``), that one of them
received events too. Finally run the clean-up cells and check they pass.

nbval proves the kernel side; this proves the page: the widgets render, the
click reaches the kernel, and the counters a learner watches move.
Screenshots land in ``tests/artifacts/`` (after Run All, after the clicks,
and on failure).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from labdriver import NotebookPage

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_ALL_TIMEOUT = 240  # seconds for all cells above the clean-up
ARRIVAL_TIMEOUT = 20  # seconds for a click to show up in a counter


def _wait_for_increase(nb: NotebookPage, before: dict, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        now = nb.counters()
        grew = [b > a for a, b in zip(before["panels"], now["panels"], strict=False)]
        if any(grew) or now["notSent"] or time.monotonic() > deadline:
            return now
        nb.page.wait_for_timeout(250)


@pytest.mark.timeout(480)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_reacts_to_clicks(notebook: Path, page, jupyter_lab, artifacts) -> None:
    path = notebook.relative_to(REPO).as_posix()
    nb = NotebookPage(page, path)
    nb.open(jupyter_lab.url(f"lab/tree/{path}"))
    try:
        _, cells = nb.state()
        cleanup = nb.cleanup_index()
        if cleanup is None:
            nb.command("notebook:run-all-cells")
            nb.wait_executed(range(len(cells)), RUN_ALL_TIMEOUT)
        else:
            nb.command("notebook:run-all-above", active_cell=cleanup)
            nb.wait_executed(range(cleanup), RUN_ALL_TIMEOUT)
        page.screenshot(path=str(artifacts / f"{notebook.stem}-run-all.png"), full_page=True)

        start = nb.counters()
        assert not start["notSent"], (
            f"a trigger panel shows an error after Run All: {start['notSent']}"
        )
        buttons = page.get_by_role("button", name="Fire event")
        visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        if start["panels"]:
            assert visible, f"{path} shows arrival panels but no visible 'Fire event' button"
        for number, button in enumerate(visible, 1):
            before = nb.counters()
            button.scroll_into_view_if_needed()
            button.click()  # a real mouse click at the button's position
            after = _wait_for_increase(nb, before, ARRIVAL_TIMEOUT)
            assert not after["notSent"], f"button {number}: the trigger reports {after['notSent']}"
            assert any(b > a for a, b in zip(before["panels"], after["panels"], strict=False)), (
                f"{path}: 'Fire event' button {number} of {len(visible)} was clicked but "
                f"no arrival panel's received counter went up within {ARRIVAL_TIMEOUT} s "
                f"(before {before['panels']}, after {after['panels']})"
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
        page.screenshot(path=str(artifacts / f"{notebook.stem}-after-clicks.png"), full_page=True)

        if cleanup is not None:
            nb.command("notebook:run-all-below", active_cell=cleanup)
            nb.wait_executed(range(cleanup, len(cells)), 120)
    finally:
        nb.shutdown_kernel()
