"""Notebook 03 in depth, the browser's own behaviour: what its cells call.

* ``RestartDemo``: an SSE server restarted on the same port with its log
  intact, followed by your browser's ``EventSource`` and a kernel client; the
  server notes every request's ``Last-Event-ID``.
* ``LimitProbe``: your browser opens 7 streams to one origin (the HTTP/1.1
  per-host limit), and ``python_streams`` does the same from the kernel.
* the language model's answer, token by token: ``http_streaming_tokens.py``.

Under "Run All" the page reports back only when the run ends (the kernel
reads its messages between cells), so checkpoints assert the kernel's side.
"""

from __future__ import annotations

import html
import secrets
import time

import ipywidgets as w
import requests
from tornado.web import Application

from lab.clients.browser import BrowserEventSource, BrowserStreamLimit
from lab.clients.sse import ReconnectingSSEClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import side_by_side
from servers import runtime, sse
from servers.hub import HubClosedError


def _who(user_agent: str) -> str:
    return "kernel (python-requests)" if user_agent.startswith("python-requests") else "browser"


class _NotedSSE(sse.SSEHandler):
    """``servers/sse.py``'s handler, noting who asked and their ``Last-Event-ID``."""

    def initialize(self, hub, feed, private: bool = False, seen: list | None = None) -> None:
        super().initialize(hub, feed, private)
        self.seen = seen if seen is not None else []

    def prepare(self) -> None:
        agent = self.request.headers.get("User-Agent", "")
        self.seen.append((_who(agent), self.request.headers.get("Last-Event-ID")))


def _table(rows: list[tuple], head: tuple) -> w.HTML:
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in r)  # noqa: E731
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return w.HTML(f"<table><tr>{cells(head, 'th')}</tr>{body}</table>")


# -- EventSource across a server restart ------------------------------------------------


class RestartDemo:
    """A Restart button: 3 events, stop, a refused publish, start on the same
    port, 3 more events. Both clients come back by themselves."""

    def __init__(self, retry_ms: int = 1000) -> None:
        self.feed = sse.SSEFeed(retry_ms=retry_ms)
        self.seen: list[tuple[str, str | None]] = []  # (who, Last-Event-ID) per request
        kw = {"hub": None, "feed": self.feed, "seen": self.seen}

        def app(hub):
            return Application([(r"/stream/sse", _NotedSSE, {**kw, "hub": hub})], hub=hub)

        self.server = runtime.start("resume", app)
        start = self.server.hub.log.last_seq
        self.client = ReconnectingSSEClient(
            self.server.url, last_event_id=start, recorder=ArrivalRecorder("kernel", start + 1)
        )
        assert self.client.start().wait_connected()
        self.browser = BrowserEventSource(
            self.server.port,
            f"stream/sse?lastEventId={start}",  # a page that joins late still starts here
            event_types=["price.tick"],
            track_order=True,
            title="your browser: EventSource",
        )
        self.button = w.Button(
            description="Restart the server", icon="refresh", layout={"width": "auto"}
        )
        self.button.on_click(lambda _: self.restart())
        self.log = w.HTML("<i>not restarted yet</i>")
        self.widget = w.VBox([self.button, side_by_side(self.browser, self.log)])
        self.sent: list = []
        self.refused = ""
        self.ports: tuple[int, int] | None = None

    @property
    def restarted(self) -> bool:
        return self.ports is not None

    def _browser_streams(self) -> int:
        return sum(who == "browser" for who, _ in self.seen)

    def restart(self) -> None:
        if self.restarted:
            return
        if self.browser.status != "not rendered":  # a page is showing it: let it connect first
            wait_until(lambda: self._browser_streams() >= 1, timeout=4)
        publish = lambda i: self.server.publish("price.tick", {"n": i})  # noqa: E731
        self.sent = [publish(i) for i in range(3)]
        self.client.recorder.wait_for(self.sent[-1].seq, timeout=5)
        time.sleep(0.2)  # and through the proxy to the page
        port = self.server.port
        self.server.stop()
        try:
            publish(-1)
        except HubClosedError as exc:
            self.refused = str(exc)
        self.server.start()  # same ServerThread: same hub, same log, same port if free
        self.ports = (port, self.server.port)
        self.sent += [publish(i) for i in range(3, 6)]
        self.log.value = (
            f"stopped and started again on port {self.server.port}; "
            f"published seq {self.sent[0].seq}..{self.sent[-1].seq}; "
            f"while it was down, publish said: <i>{html.escape(self.refused)}</i>"
        )

    def wait(self) -> dict:
        self.client.recorder.wait_for(self.sent[-1].seq, timeout=10)
        rec = self.client.recorder
        return {
            "kernel received": rec.unique,
            "missing": rec.missing(self.sent[-1].seq),
            "duplicates": rec.duplicates,
            "connections": self.client.connections,
            "Last-Event-ID sent": self.client.sent_last_event_ids[-1],
        }

    def requests_seen(self) -> w.HTML:
        return _table(self.seen, ("who asked", "Last-Event-ID"))

    def report(self) -> str:
        b = self.browser
        if b.status == "not rendered":
            return "no page has reported yet (run this cell again once the page shows the box)"
        return (
            f"your browser: {b.status}, opened {b.opens} connection(s), received {b.received} "
            f"(last seq {b.last_seq}), gaps {b.gaps}, duplicates {b.duplicates}"
        )

    def close(self) -> None:
        self.client.stop()
        for widget in (self.browser, self.widget):
            widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# -- the per-origin connection limit ----------------------------------------------------


def python_streams(server, feed, n: int = 7) -> int:
    """Open ``n`` SSE streams from the kernel at once; how many the server held.

    Only the kernel's own streams are counted (they carry a header of their
    own): the page may be opening or closing its streams at the same moment."""
    probe = {"X-Lab-Probe": secrets.token_hex(8)}

    def held() -> int:
        mine = [
            h for h in feed.handlers if h.request.headers.get("X-Lab-Probe") == probe["X-Lab-Probe"]
        ]
        return len(mine)

    responses = [
        requests.get(f"{server.url}/stream/sse", headers=probe, stream=True, timeout=10)
        for _ in range(n)
    ]
    try:
        wait_until(lambda: server.call(held) >= n, timeout=15)  # a slow machine waits longer
        return server.call(held)
    finally:
        for resp in responses:
            resp.close()


class LimitProbe:
    """An "Open 7 streams" button: this page's other streams close first, then
    the page measures (``lab.clients.browser.BrowserStreamLimit``)."""

    def __init__(self, server, streams: int = 7, others=()) -> None:
        self.others = list(others)
        self.probe = BrowserStreamLimit(
            server.port,
            "stream/sse",
            title=f"your browser: {streams} EventSources",
            streams=streams,
        )
        self.button = w.Button(
            description=f"Open {streams} streams", icon="plug", layout={"width": "auto"}
        )
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([self.button, self.probe])

    @property
    def requested(self) -> bool:
        return self.probe.requested

    def run(self) -> None:
        for other in self.others:
            other.disconnect()  # its slot would count against the limit
        self.probe.run()

    def report(self) -> str:
        p = self.probe.probe
        if not p:
            return "no page has reported yet (run this cell again in a moment)"
        return f"measured in your browser: {p['verdict']} (open times, ms: {p['opened_ms']})"

    def close(self) -> None:
        self.widget.close()
        self.probe.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
