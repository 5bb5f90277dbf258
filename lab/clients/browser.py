"""The learner's own browser as a client: native ``EventSource``, ``WebSocket``
and ``fetch()``, rendered in the notebook and connected to an in-kernel server.

The kernel-side clients in ``lab.clients`` run in the kernel's process. These
run in the browser tab that shows the notebook, exactly as a web page would:

* ``BrowserEventSource(port, "stream/sse")``: the browser's ``EventSource``
  (Server-Sent Events). It reconnects on its own and sends ``Last-Event-ID``.
* ``BrowserWebSocket(port, "ws")``: the browser's ``WebSocket``. ``.send(text)``
  sends a frame from the browser to the server.
* ``BrowserFetchStream(port, "stream/ndjson")``: ``fetch()`` reading an NDJSON
  body line by line with a stream reader: the buffering lesson. Through
  jupyter-server-proxy the body only arrives when the response ends, while
  ``EventSource`` (which sends ``Accept: text/event-stream``) arrives live.

The URL is derived in the browser from the page itself, never typed in:
Jupyter's base URL (``/`` locally, ``/user/<name>/`` on Binder or JupyterHub)
+ ``proxy/<port>/<path>``, with ``ws:``/``wss:`` following the page's
``http:``/``https:``. The request therefore goes through jupyter-server-proxy
(which the Jupyter login protects) to the server on 127.0.0.1, and the same
code works on a laptop and on Binder's https.

What the browser received is synced back to the kernel (``.received``,
``.last_seq``, ``.arrivals``, ``.status``, ``.url``, ``.error``), so a cell
can compare it with the kernel-side client. Under nbval there is no browser:
these traits then stay at their initial values, so checkpoint cells must not
assert on them (the browser test suite in ``tests/e2e`` does).

The rendered element carries ``data-kind``, ``data-status`` and
``data-received`` attributes so a browser test can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import anywidget
import traitlets as t

MAX_ROWS = 200  # arrivals kept (and synced back) per client

# The browser side (JavaScript, an anywidget module) lives beside this file.
_ESM = (Path(__file__).parent / "browser.js").read_text(encoding="utf-8")


class _BrowserClient(anywidget.AnyWidget):
    """Common state of the three browser clients (see the module docstring)."""

    _esm = _ESM
    kind = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    port = t.Int().tag(sync=True)
    path = t.Unicode("").tag(sync=True)
    event_types = t.List(t.Unicode()).tag(sync=True)
    active = t.Bool(True).tag(sync=True)
    max_rows = t.Int(MAX_ROWS).tag(sync=True)
    show_rows = t.Int(8).tag(sync=True)
    # Written by the browser, read by the kernel.
    url = t.Unicode("").tag(sync=True)
    status = t.Unicode("not rendered").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    received = t.Int(0).tag(sync=True)
    last_seq = t.Int(0).tag(sync=True)
    arrivals = t.List().tag(sync=True)  # [seq, type, t_ms since connect, ms since previous]
    page_origin = t.Unicode("").tag(sync=True)  # location.origin of the page showing it
    # Kernel -> browser: False makes the page wait before connecting (see BrowserWebSocket).
    origin_admitted = t.Bool(True).tag(sync=True)
    # EventSource only. track_order: count gaps and duplicates by seq, and the
    # connections it opened (more than one: it reconnected by itself).
    track_order = t.Bool(False).tag(sync=True)
    opens = t.Int(0).tag(sync=True)
    gaps = t.Int(0).tag(sync=True)
    duplicates = t.Int(0).tag(sync=True)
    # text_field: append each event's JSON field of that name to ``text`` (an answer
    # streamed token by token); close_on: event types after which it closes for good.
    text_field = t.Unicode("").tag(sync=True)
    text = t.Unicode("").tag(sync=True)
    close_on = t.List(t.Unicode()).tag(sync=True)
    probe = t.Dict().tag(sync=True)  # BrowserStreamLimit's measurement

    def __init__(self, port: int, path: str, title: str | None = None, **kwargs) -> None:
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be 1..65535, got {port!r}")
        super().__init__(port=int(port), path=path.lstrip("/"), **kwargs)
        self.title = title or f"browser {self.kind} ({self.proxy_path})"

    @property
    def proxy_path(self) -> str:
        """The path the browser asks for, relative to Jupyter's base URL."""
        return proxy_path(self.port, self.path)

    def arrival_times_ms(self) -> list[float]:
        """Arrival times (ms since the browser connected) of the kept events."""
        return [row[2] for row in self.arrivals]

    def disconnect(self) -> None:
        """Ask the browser to close its connection (the widget stays shown)."""
        self.send({"action": "close"})

    def close(self) -> None:
        """Close the connection and the widget (the clean-up cell calls this)."""
        if self.comm is not None:
            self.disconnect()
        super().close()


class BrowserEventSource(_BrowserClient):
    """The browser's native ``EventSource`` on ``<base>proxy/<port>/<path>``.

    ``event_types``: the SSE ``event:`` names to listen to. ``EventSource``
    delivers unnamed events to ``onmessage`` but named ones only to listeners
    registered for that exact name.
    """

    def __init__(
        self,
        port: int,
        path: str = "stream/sse",
        event_types: Sequence[str] = (),
        title: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            port, path, title, kind="eventsource", event_types=list(event_types), **kwargs
        )


class BrowserStreamLimit(_BrowserClient):
    """Measures the per-origin connection limit in this page.

    ``run()`` asks the page to open ``streams`` ``EventSource`` connections
    to ``<base>proxy/<port>/<path>`` at once, count those open within
    ``wait_ms``, close one, see whether a waiting one then opens, and close
    them all. ``.probe`` is what the page measured: ``protocol`` (the page's
    ``nextHopProtocol``: ``http/1.1``, ``h2``...), ``opened_first``,
    ``opened_after_free_ms``, ``verdict``. Empty until a page ran it.
    """

    streams = t.Int(7).tag(sync=True)
    wait_ms = t.Int(1500).tag(sync=True)

    def __init__(self, port: int, path: str = "stream/sse", title: str | None = None, **kw):
        super().__init__(port, path, title, kind="limit", **kw)
        self.requested = False

    def run(self) -> None:
        self.requested = True
        self.send({"action": "probe"})


class BrowserWebSocket(_BrowserClient):
    """The browser's native ``WebSocket`` on ``ws(s)://<host><base>proxy/<port>/<path>``.

    ``admit``: for a server that checks ``Origin`` against an allowlist (the
    room's ``OriginAllowlist.add``). The page reports its own origin
    (``location.origin``: ``https://hub.mybinder.org``, ``http://localhost:8888``)
    and connects only once the kernel has passed it to ``admit``. Nothing in
    the request can tell the server that origin: jupyter-server-proxy hands
    it on with an http scheme and the page's ``Host``, whatever the page used.
    The kernel reads the message between cells, so under "Run All" the page
    joins when the run ends.
    """

    def __init__(
        self,
        port: int,
        path: str = "ws",
        title: str | None = None,
        admit: Callable[[str], None] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            port, path, title, kind="websocket", origin_admitted=admit is None, **kwargs
        )
        self._admit = admit
        if admit is not None:
            self.observe(self._on_page_origin, "page_origin")

    def _on_page_origin(self, change: dict) -> None:
        origin = change["new"]
        if not origin or self.origin_admitted:
            return
        self._admit(origin)  # raises for anything that is not an origin: the page stays out
        self.origin_admitted = True

    def send_text(self, text: str) -> None:
        """Send one text frame from the browser to the server."""
        self.send({"action": "send", "text": text})


class BrowserFetchStream(_BrowserClient):
    """``fetch()`` of an NDJSON stream, read line by line as bytes arrive."""

    def __init__(
        self, port: int, path: str = "stream/ndjson", title: str | None = None, **kwargs
    ) -> None:
        super().__init__(port, path, title, kind="fetch", **kwargs)


def proxy_path(port: int, path: str) -> str:
    """``proxy/<port>/<path>``: appended to Jupyter's base URL by the browser."""
    return f"proxy/{int(port)}/{path.lstrip('/')}"


def kernel_side_proxy_url(port: int, path: str = "", base_url: str | None = None) -> str:
    """The same proxy path as the kernel can know it (for printing a link).

    The kernel does not know the page's host, so this is a path: on Binder
    and JupyterHub ``JUPYTERHUB_SERVICE_PREFIX`` (e.g. ``/user/abc/``) is the
    base, locally ``/``.
    """
    import os

    base = base_url if base_url is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if not base.endswith("/"):
        base += "/"
    return base + proxy_path(port, path)
