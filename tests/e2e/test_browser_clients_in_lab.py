"""The browser as a client, through jupyter-server-proxy, in a real JupyterLab.

A scratch notebook (written under ``tests/artifacts/``, git-ignored) starts a
small server in its kernel (``browser_apps``) and shows the ``lab.clients.browser``
widgets. The page derives each URL itself (Jupyter's base URL +
``proxy/<port>/``), so this proves, in Chromium:

* ``EventSource`` receives each event live, one at a time;
* ``fetch()`` of NDJSON through the proxy is buffered: nothing arrives while
  the stream is open, even though EventSource already has the events; a
  finite response arrives when it ends (the streaming notebook's lesson);
* ``WebSocket`` through the proxy receives pushed events and the server's
  echo of a frame the browser sent;
* what the browser received is synced back to the kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from labdriver import NotebookPage

E2E = Path(__file__).resolve().parent
TIMEOUT = 20.0

SETUP = f"""\
import sys
sys.path.insert(0, {str(E2E)!r})
import browser_apps
from IPython.display import display
from lab.clients.browser import BrowserEventSource, BrowserFetchStream, BrowserWebSocket
from servers import runtime

server = runtime.start("browser-e2e", browser_apps.make_app)
server.publish("warmup", {{}})  # seq 1: the finite NDJSON reader starts after it
"""

WIDGETS = """\
clients = {
    "es": BrowserEventSource(server.port, "sse", event_types=["tick"], title="EventSource /sse"),
    "ws": BrowserWebSocket(server.port, "ws", title="WebSocket /ws"),
    "ndjson": BrowserFetchStream(server.port, "stream/ndjson", title="fetch() endless NDJSON"),
    "finite": BrowserFetchStream(
        server.port, "ndjson-finite?after=1&count=3", title="fetch() 3 lines"
    ),
}
if browser_apps.has_route("/stream/sse"):
    clients["project_sse"] = BrowserEventSource(
        server.port, "stream/sse", event_types=["tick"],
        title="EventSource /stream/sse (servers.sse)",
    )
for client in clients.values():
    display(client)
"""


def _write_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(WIDGETS)]
    path = folder / "e2e_browser_clients.ipynb"
    nbformat.write(nb, path)
    return path


def _clients(nb: NotebookPage) -> dict:
    """What each widget shows in the page, by title."""
    return nb.page.evaluate(
        """() => Object.fromEntries(
          [...document.querySelectorAll('.lab-browser-client')].map((e) => [
            e.querySelector('b').innerText,
            { kind: e.dataset.kind, status: e.dataset.status,
              received: Number(e.dataset.received) },
          ]))"""
    )


def _wait(nb: NotebookPage, predicate, what: str) -> dict:
    deadline_ms = TIMEOUT * 1000
    waited = 0
    while True:
        shown = _clients(nb)
        if predicate(shown):
            return shown
        if waited > deadline_ms:
            raise AssertionError(f"timed out waiting for {what}; the page shows {shown}")
        nb.page.wait_for_timeout(200)
        waited += 200


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lab", ["http", "https"], indirect=True)
def test_browser_clients_through_jupyter_server_proxy(page, lab, artifacts) -> None:
    path = _write_notebook(artifacts).relative_to(lab.root).as_posix()
    nb = NotebookPage(page, path)
    nb.open(lab.url(f"lab/tree/{path}", reset=True))
    try:
        nb.command("notebook:run-all-cells")
        nb.wait_executed(range(2), 120)
        es, ws = "EventSource /sse", "WebSocket /ws"
        ndjson, finite = "fetch() endless NDJSON", "fetch() 3 lines"
        _wait(
            nb,
            lambda c: c[es]["status"] == "open" and c[ws]["status"] == "open",
            "open connections",
        )
        port = int(nb.run_in_kernel("print(server.port)"))
        # The kernel runs in the environment under test (Binder's, under CI).
        kernel_prefix = nb.run_in_kernel("import sys; print(sys.prefix)").strip()
        assert kernel_prefix == lab.prefix(), (kernel_prefix, lab.python)

        # The URL came from the page: Jupyter's base URL + proxy/<port>/, ws: for ws.
        urls = json.loads(
            nb.run_in_kernel(
                "import json; print(json.dumps({k: c.url for k, c in clients.items()}))"
            )
        )
        assert urls["es"] == f"{lab.base}proxy/{port}/sse", urls
        ws_scheme = "wss" if lab.scheme == "https" else "ws"  # wss: from an https page
        assert urls["ws"] == f"{ws_scheme}://127.0.0.1:{lab.port}/proxy/{port}/ws", urls
        # What jupyter-server-proxy hands on to the in-kernel server (notebook 02 and
        # servers.websocket.origin_refusal rely on it): the page's own Origin and Host,
        # over plain http whatever the page's scheme, no forwarded scheme or host of
        # its own, and (Chromium 156) no Sec-Fetch-* headers on the handshake.
        seen = json.loads(nb.run_in_kernel("print(json.dumps(browser_apps.HANDSHAKES))"))
        assert len(seen) == 1, seen
        headers = {k.lower(): v for k, v in seen[0].items()}
        assert headers["origin"] == lab.base.rstrip("/"), headers
        assert headers["host"] == f"127.0.0.1:{lab.port}", headers
        assert headers["scheme"] == "http", headers
        stated = [h for h in headers if h.startswith(("x-forwarded", "forwarded", "sec-fetch"))]
        assert stated == [], f"the proxy or browser now sends {stated}: revisit notebook 02"

        # One event: EventSource and WebSocket show it; fetch() of NDJSON does not,
        # because the proxy holds any response not requested as text/event-stream.
        nb.run_in_kernel("server.publish('tick', {'n': 1})")
        shown = _wait(
            nb, lambda c: c[es]["received"] >= 1 and c[ws]["received"] >= 1, "event 1 live"
        )
        assert shown[ndjson]["received"] == 0 and shown[finite]["received"] == 0, shown
        nb.run_in_kernel("server.publish('tick', {'n': 2})")
        shown = _wait(
            nb, lambda c: c[es]["received"] >= 2 and c[ws]["received"] >= 2, "event 2 live"
        )
        assert shown[ndjson]["received"] == 0 and shown[finite]["received"] == 0, shown

        # The third event ends the finite response: all three lines arrive together.
        nb.run_in_kernel("server.publish('tick', {'n': 3})")
        shown = _wait(
            nb,
            lambda c: (
                c[finite]["received"] == 3 and c[es]["received"] >= 3 and c[ws]["received"] >= 3
            ),
            "the finite body and event 3 on the live clients",
        )
        assert shown[es]["received"] == 3 and shown[ws]["received"] == 3, shown
        assert shown[ndjson]["received"] == 0, shown  # the endless one is still held by the proxy
        project = "EventSource /stream/sse (servers.sse)"
        if project in shown:
            _wait(nb, lambda c: c[project]["received"] >= 3, "servers.sse's /stream/sse")

        # The browser sends a frame; the server's echo comes back over the same socket.
        nb.run_in_kernel("clients['ws'].send_text('hello from the kernel, via the browser')")
        _wait(nb, lambda c: c[ws]["received"] == 4, "the WebSocket echo")

        # What the browser saw is synced back to the kernel (throttled, so poll:
        # a waiting loop inside the kernel would block the very messages it awaits).
        expected = {"es": [3, 4], "ws": [4, 4], "finite": [3, 4]}
        if project in shown:
            expected["project_sse"] = [3, 4]
        for _ in range(50):
            synced = json.loads(
                nb.run_in_kernel(
                    "print(json.dumps({k: [c.received, c.last_seq, [r[1] for r in c.arrivals]] "
                    "for k, c in clients.items()}))"
                )
            )
            if all(synced[k][:2] == v for k, v in expected.items()):
                break
            page.wait_for_timeout(200)
        assert all(synced[k][:2] == v for k, v in expected.items()), synced  # seq 1 was the warm-up
        assert synced["ws"][2] == ["tick", "tick", "tick", "echo"], synced
        page.screenshot(path=str(artifacts / f"browser-clients-{lab.scheme}.png"), full_page=True)

        nb.run_in_kernel("for c in clients.values(): c.close()\nruntime.stop_all()")
        assert not nb.errors()
    finally:
        nb.shutdown_kernel()
