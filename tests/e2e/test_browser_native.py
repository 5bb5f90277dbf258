"""What the browser does by itself, in Chromium through jupyter-server-proxy
(notebook 03 in depth, its last three sections; nbval cannot see the page).

A scratch notebook (under ``tests/artifacts/``, git-ignored) uses the
notebook's own helpers, and the test proves, over http and https:

* ``EventSource`` comes back by itself after the kernel's server restarts on
  the same port, sends ``Last-Event-ID`` (the server notes it), and shows
  every event once: no gap, no duplicate;
* the page opens 6 of 7 ``EventSource`` streams to one HTTP/1.1 origin, and
  the 7th opens when one closes (JupyterLab serves HTTP/1.1 only);
* the browser's answer streams token by token and ends with ``done`` without
  reconnecting; after Close (the browser closes its EventSource) the server
  still generates the whole answer: jupyter-server-proxy 4.6 does not pass the
  close on (the notebook says so, measured here); Close and cancel (plus
  ``POST /answer/<n>/cancel``) stops it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from labdriver import NotebookPage

TIMEOUT = 20.0

CELLS = [
    """\
from IPython.display import display
from lab.lessons import http_streaming_browser as native
from lab.lessons import http_streaming_tokens as llm
from servers import runtime, sse, streaming
from servers.common import app_with

feed = sse.SSEFeed(retry_ms=300)
server = runtime.start("streaming", app_with(streaming.routes, feed.routes, state=feed))
resume = native.RestartDemo(retry_ms=1000)
display(resume)""",
    """\
limit = native.LimitProbe(server, streams=7, others=[resume.browser])
display(limit)""",
    """\
tokens = llm.TokenDemo(server, delay_s=0.1)
display(tokens)""",
]


def _write_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    path = folder / "e2e_browser_native.ipynb"
    nbformat.write(nb, path)
    return path


def _panels(nb: NotebookPage) -> dict:
    return nb.page.evaluate(
        """() => Object.fromEntries(
          [...document.querySelectorAll('.lab-browser-client')].map((e) => [
            e.querySelector('b').innerText,
            { status: e.dataset.status, received: Number(e.dataset.received),
              opens: Number(e.dataset.opens), gaps: Number(e.dataset.gaps),
              duplicates: Number(e.dataset.duplicates) },
          ]))"""
    )


def _wait(nb: NotebookPage, predicate, what: str, read=None) -> dict:
    read = read or (lambda: _panels(nb))
    waited = 0
    while True:
        shown = read()
        if predicate(shown):
            return shown
        if waited > TIMEOUT * 1000:
            raise AssertionError(f"timed out waiting for {what}; saw {shown}")
        nb.page.wait_for_timeout(200)
        waited += 200


def _kernel_json(nb: NotebookPage, expr: str):
    return json.loads(nb.run_in_kernel(f"import json; print(json.dumps({expr}))"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lab", ["http", "https"], indirect=True)
def test_eventsource_resume_limit_and_cancel(page, lab, artifacts) -> None:
    path = _write_notebook(artifacts).relative_to(lab.root).as_posix()
    nb = NotebookPage(page, path)
    nb.open(lab.url(f"lab/tree/{path}", reset=True))
    try:
        nb.command("notebook:run-all-above", active_cell=2)
        nb.wait_executed(range(2), 120)
        es = "your browser: EventSource"
        _wait(nb, lambda c: c[es]["status"] == "open", "the EventSource to open")

        # 1. The restart: the browser reconnects by itself, with Last-Event-ID.
        nb.run_in_kernel("resume.restart()")
        shown = _wait(
            nb,
            lambda c: c[es]["received"] == 6 and c[es]["opens"] >= 2 and c[es]["status"] == "open",
            "the browser to come back and receive all 6 events",
        )
        assert shown[es]["received"] == 6, shown
        assert shown[es]["gaps"] == 0 and shown[es]["duplicates"] == 0, shown
        seen = _kernel_json(nb, "resume.seen")
        last_before = _kernel_json(nb, "resume.sent[2].seq")
        assert ["browser", str(last_before)] in seen, seen  # the browser's own Last-Event-ID
        assert _kernel_json(nb, "resume.ports[0] == resume.ports[1]") is True

        # 2. Seven streams to one HTTP/1.1 origin: 6 open, the 7th when one closes.
        nb.run_in_kernel("limit.run()")
        probe = _wait(
            nb,
            lambda p: bool(p),
            "the page's measurement",
            read=lambda: _kernel_json(nb, "limit.probe.probe"),
        )
        assert probe["protocol"] == "http/1.1", probe
        assert probe["opened_first"] == 6 and probe["others_open"] == 0, probe
        assert probe["opened_after_free_ms"] is not None, probe
        _wait(nb, lambda c: "your browser: 7 EventSources" in c, "the probe's box")

        # 3. The answer, token by token: once to the end, once stopped.
        nb.command("notebook:run-cell", active_cell=2)
        nb.wait_executed(range(3), 60)
        answer = "your browser: the answer, token by token"
        nb.run_in_kernel("tokens.ask()")
        total = _kernel_json(nb, "tokens.stats.total")
        # Every token, then done (the count the page shows settles once the
        # kernel's echo of its synced state has come back, so wait for it).
        _wait(
            nb,
            lambda c: (
                c.get(answer, {}).get("status") == "done" and c[answer]["received"] == total + 1
            ),
            "a whole answer",
        )
        text = _kernel_json(nb, "tokens.answer.text")
        assert text == _kernel_json(nb, "tokens.stats.text"), text
        for action in ("close_answer", "cancel"):
            nb.run_in_kernel("tokens.ask()")
            _wait(nb, lambda c: c[answer]["received"] >= 5, f"the first tokens before {action}")
            nb.run_in_kernel(f"tokens.{action}()")
            closed = _wait(nb, lambda c: c[answer]["status"] == "closed", "the browser to close")
            assert closed[answer]["received"] < total, closed
            _wait(
                nb,
                lambda r: r[-1]["finished"] or r[-1]["cancelled"],
                f"the answer after {action} to end one way or the other",
                read=lambda: _kernel_json(nb, "tokens.stats.runs"),
            )
        runs = _kernel_json(nb, "tokens.stats.runs")
        assert [r["agent"].startswith("python") for r in runs] == [False] * 3, runs
        whole, closed_only, cancelled = runs
        assert whole["finished"] and whole["generated"] == total, runs
        # jupyter-server-proxy 4.6 keeps reading a streamed response after the browser
        # left (no close hook in _proxy_progressive): the server never hears of the
        # close and finishes the answer. Notebook 03 in depth says so; revisit it if
        # this changes.
        assert closed_only["finished"] and not closed_only["cancelled"], (
            "the server noticed the browser's close through jupyter-server-proxy: "
            f"revisit notebook 03 in depth, 'Is HTTP streaming still relevant?': {runs}"
        )
        # The explicit cancel request stops it.
        assert cancelled["how"] == "cancel request" and not cancelled["finished"], runs
        stopped = cancelled["generated"]
        assert stopped < total, runs
        page.wait_for_timeout(1000)  # ten tokens' time
        assert _kernel_json(nb, "tokens.stats.runs[-1]['generated']") == stopped
        page.screenshot(path=str(artifacts / f"browser-native-{lab.scheme}.png"), full_page=True)

        nb.run_in_kernel("for d in (resume, limit, tokens): d.close()\nruntime.stop_all()")
        assert not nb.errors()
    finally:
        nb.shutdown_kernel()
