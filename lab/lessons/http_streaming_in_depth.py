"""What notebook 03 in depth uses, so its cells stay about the lesson.

* ``HeartbeatPanel``: a slider that sets the server's heartbeat interval,
  with the heartbeat and watchdog counters.
* ``stuck_reader``: a raw socket that asks for the SSE stream and never reads.
* ``access_log``: the server's access-log lines (``lab.wire.access_log``).
* ``BrowserRace``: your browser's ``fetch()`` of NDJSON against its
  ``EventSource``, both through jupyter-server-proxy (the Race button).
"""

from __future__ import annotations

import html
import socket
import threading
import time

from lab.waiting import wait_until
from lab.wire.access_log import access_log  # noqa: F401 (for the notebook)
from servers.runtime import ServerThread

# -- heartbeats ----------------------------------------------------------------------


class HeartbeatPanel:
    """A slider for the server's heartbeat interval and what it caused.

    ``interval.value = 0.2`` is the programmatic twin of moving the slider;
    0 turns heartbeats off. The counters show heartbeats the server sent,
    heartbeats the client saw, and the client's watchdog reconnections.
    """

    def __init__(self, feed, client) -> None:
        import ipywidgets as w

        self.feed = feed
        self.client = client
        self.interval = w.FloatSlider(
            value=min(feed.heartbeat_s, 5.0),  # shows the feed's setting; moving it changes it
            min=0.0,
            max=5.0,
            step=0.1,
            description="heartbeat every (s)",
            style={"description_width": "initial"},
        )
        self.status = w.HTML()
        self.refresh_button = w.Button(description="Refresh counters", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.interval.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.interval, self.refresh_button]), self.status])
        self.refresh()

    def _on_change(self, change: dict) -> None:
        self.feed.heartbeat_s = float(change["new"])
        self.refresh()

    def counts(self) -> dict:
        return {
            "heartbeats sent": self.feed.heartbeats_sent,
            "heartbeats seen by client": self.client.live_heartbeats,
            "watchdog reconnects": self.client.watchdog_reconnects,
            "connections": self.client.connections,
        }

    def refresh(self) -> None:
        cells = "".join(
            f"<td style='padding:0 8px'>{html.escape(k)}<br><b>{v}</b></td>"
            for k, v in self.counts().items()
        )
        self.status.value = f"<table><tr>{cells}</tr></table>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# -- slow readers ----------------------------------------------------------------------


def stuck_reader(
    server: ServerThread, feed, events: int = 300, size: int = 20_000, queue: int = 50
) -> dict:
    """Open the SSE stream on a raw socket with a tiny receive buffer that
    never reads, publish ``events`` events of ``size`` bytes, and report
    whether the server cut the reader off (``feed.queue_size = queue`` meanwhile)."""
    old_queue, feed.queue_size = feed.queue_size, queue
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = stuck.getsockname()[1]

    def subscribed() -> bool:
        # Found by the socket's port: other clients (your browser's too) come and go.
        return server.call(
            lambda: any(
                h.request.connection.context.address[1] == port
                and h.subscription is not None
                and not h.subscription.closed
                for h in list(feed.handlers)
            )
        )

    overflows = feed.overflows
    try:
        stuck.sendall(b"GET /stream/sse HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(subscribed, timeout=5)
        for _ in range(events):
            server.publish("price.tick", {"pad": "x" * size})
        wait_until(lambda: feed.overflows > overflows, timeout=10)
    finally:
        stuck.close()
        feed.queue_size = old_queue
    wait_until(lambda: not subscribed(), timeout=5)
    return {
        "published": events,
        "cut off (overflows)": feed.overflows - overflows,
        "stuck reader still subscribed": subscribed(),
        "subscribers left": server.call(lambda: server.hub.subscriber_count),
    }


# -- securing a stream ---------------------------------------------------------------


# -- the race in your browser ----------------------------------------------------------


class BrowserRace:
    """A Race button: a fresh ``fetch()`` of NDJSON (``Accept: */*``) and an
    ``EventSource`` (``Accept: text/event-stream``) in this page, both through
    jupyter-server-proxy, receive ``n`` events published ``gap_s`` apart."""

    def __init__(self, server: ServerThread, feed, n: int = 5, gap_s: float = 0.3) -> None:
        import ipywidgets as w

        from lab.clients.browser import BrowserEventSource
        from lab.widgets import side_by_side

        self.server, self.feed, self.n, self.gap_s = server, feed, n, gap_s
        self.sse = BrowserEventSource(
            server.port,
            "stream/sse",
            event_types=["race.tick"],
            title="your browser: EventSource (Accept: text/event-stream)",
        )
        self.fetch_box = w.Box([w.HTML("<i>fetch() starts when you click Race</i>")])
        self.button = w.Button(
            description=f"Race: {n} events, {gap_s} s apart", icon="flag", layout={"width": "auto"}
        )
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([self.button, side_by_side(self.fetch_box, self.sse)])
        self.thread: threading.Thread | None = None
        self.sent: list = []
        self.fetch_seen_by_server = False

    @property
    def started(self) -> bool:
        return self.thread is not None

    @property
    def fetch(self):
        return self.fetch_box.children[0] if hasattr(self.fetch_box.children[0], "kind") else None

    def _open_ndjson(self) -> int:
        def count() -> int:
            sse_open = sum(
                1 for h in list(self.feed.handlers) if h.subscription and not h.subscription.closed
            )
            return self.server.hub.subscriber_count - sse_open

        return self.server.call(count)

    def run(self) -> None:
        """What the button does: a fresh fetch(), then the events."""
        from lab.clients.browser import BrowserFetchStream

        if self.thread is not None and self.thread.is_alive():
            return  # one race at a time
        before = self._open_ndjson()
        fetch = BrowserFetchStream(
            self.server.port,
            f"stream/ndjson?after={self.server.hub.log.last_seq}&limit={self.n}",
            title="your browser: fetch() of NDJSON (Accept: */*)",
        )
        old, self.fetch_box.children = self.fetch_box.children, [fetch]
        for widget in old:
            widget.close()
        page = self.sse.status != "not rendered"  # no page (Run All headless): nobody to wait for

        def publish() -> None:
            self.fetch_seen_by_server = page and wait_until(
                lambda: self._open_ndjson() > before, timeout=4
            )
            self.sent = []
            for i in range(self.n):
                self.sent.append(self.server.publish("race.tick", {"n": i}))
                time.sleep(self.gap_s)

        self.thread = threading.Thread(target=publish, name="browser-race", daemon=True)
        self.thread.start()

    def wait(self, timeout: float = 20) -> dict:
        if self.thread is not None:
            self.thread.join(timeout)
        return {
            "published": [e.seq for e in self.sent],
            "fetch() reached the server": self.fetch_seen_by_server,
        }

    def report(self) -> list[str]:
        """What each browser client saw, as the page reported it."""
        out = []
        for client in (c for c in (self.fetch, self.sse) if c is not None):
            gaps = [row[3] for row in client.arrivals[-self.n :]]
            out.append(f"{client.title}: {client.status}, received {client.received}, gaps {gaps}")
        return out

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(5)
        for widget in (*self.fetch_box.children, self.sse, self.widget):
            widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
