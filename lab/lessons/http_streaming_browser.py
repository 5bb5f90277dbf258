"""Notebook 03 in depth, the browser's own behaviour: what its cells call.

* ``RestartDemo``: an SSE server restarted on the same port with its log
  intact, followed by your browser's ``EventSource`` and a kernel client; the
  server notes every request's ``Last-Event-ID``.
* ``LimitProbe``: your browser opens 7 streams to one origin (the HTTP/1.1
  per-host limit), and ``python_streams`` does the same from the kernel.
* ``TokenDemo``: a fake language model's answer (``servers/sse_tokens.py``)
  streamed token by token to your browser, next to the live price feed, with
  Ask and Stop; ``kernel_answer`` reads (or cancels) one from the kernel.

Under "Run All" the page reports back only when the run ends (the kernel
reads its messages between cells), so checkpoints assert the kernel's side.
"""

from __future__ import annotations

import html
import json
import threading
import time

import ipywidgets as w
import requests
import sseclient
from tornado.web import Application

from lab.clients.browser import BrowserEventSource, BrowserStreamLimit
from lab.clients.sse import ReconnectingSSEClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import side_by_side
from servers import runtime, sse, sse_tokens
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
        self.button = w.Button(description="Restart the server", icon="refresh")
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
    """Open ``n`` SSE streams from the kernel at once; how many the server held."""
    before = server.call(lambda: len(feed.handlers))
    responses = [requests.get(f"{server.url}/stream/sse", stream=True, timeout=5) for _ in range(n)]
    try:
        wait_until(lambda: server.call(lambda: len(feed.handlers)) - before >= n, timeout=5)
        return server.call(lambda: len(feed.handlers)) - before
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
        self.button = w.Button(description=f"Open {streams} streams", icon="plug")
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


# -- a language model's answer, token by token ----------------------------------------


def kernel_answer(url: str, stop_after: int | None = None, delay: float = 0.01) -> dict:
    """Read ``/answer`` with requests + sseclient-py; close after ``stop_after`` tokens."""
    tokens: list[str] = []
    with requests.get(
        f"{url}/answer", params={"delay": delay}, stream=True, timeout=10
    ) as resp:  # leaving the block closes the connection: that is the cancel
        for event in sseclient.SSEClient(resp).events():
            if event.event == "token":
                tokens.append(json.loads(event.data)["text"])
            if event.event == "done" or (stop_after and len(tokens) >= stop_after):
                break
    return {"tokens read": len(tokens), "text": "".join(tokens)}


class TokenDemo:
    """Ask and Stop for your browser's answer, beside the live price feed."""

    def __init__(self, feed_server, delay_s: float = 0.05) -> None:
        self.stats = sse_tokens.TokenStats(delay_s=delay_s)
        self.server = runtime.start("tokens", lambda hub: sse_tokens.make_app(hub, self.stats))
        self.feed_server = feed_server
        self.prices = BrowserEventSource(
            feed_server.port, "stream/sse", event_types=["price.tick"], title="live price feed"
        )
        self.ask_button = w.Button(description="Ask", icon="comment")
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.ask_button.on_click(lambda _: self.ask())
        self.stop_button.on_click(lambda _: self.stop())
        self.answer_box = w.Box([w.HTML("<i>the answer appears when you click Ask</i>")])
        self.widget = w.VBox(
            [
                w.HBox([self.ask_button, self.stop_button]),
                side_by_side(self.answer_box, self.prices),
            ]
        )
        self.answer: BrowserEventSource | None = None
        self.ticker: threading.Thread | None = None

    @property
    def asked(self) -> bool:
        return self.answer is not None

    def ask(self) -> None:
        """A fresh browser EventSource on /answer, and price ticks while it streams."""
        old, self.answer = (
            self.answer,
            BrowserEventSource(
                self.server.port,
                "answer",
                event_types=["token", "done"],
                close_on=["done"],
                text_field="text",
                show_rows=3,
                title="your browser: the answer, token by token",
            ),
        )
        self.answer_box.children = [self.answer]
        if old is not None:
            old.close()
        seconds = self.stats.total * self.stats.delay_s
        if self.ticker is None or not self.ticker.is_alive():
            self.ticker = threading.Thread(
                target=self._tick, args=(seconds,), name="tokens-ticker", daemon=True
            )
            self.ticker.start()

    def _tick(self, seconds: float) -> None:
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end and self.feed_server.running:
            n += 1
            self.feed_server.publish("price.tick", {"symbol": "ACME", "price": 100 + n / 4})
            time.sleep(0.3)

    def stop(self) -> None:
        """The browser closes its EventSource: the server should notice."""
        if self.answer is not None:
            self.answer.disconnect()

    def runs(self) -> w.HTML:
        rows = [
            (
                r["answer"],
                _who(r["agent"]),
                r["generated"],
                r["total"],
                r["cancelled"],
                r["finished"],
            )
            for r in self.stats.runs
        ]
        return _table(rows, ("answer", "who asked", "generated", "of", "cancelled", "finished"))

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.join(10)
        for widget in (self.answer, self.prices, self.widget):
            if widget is not None:
                widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
