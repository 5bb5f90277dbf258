"""The widget kit every notebook uses: fire events, watch them arrive.

* ``TriggerPanel``: fire one event, a burst of N, or a steady stream at a
  rate set by a slider. Every control has a programmatic twin that a cell can
  use (``panel.fire_button.click()``, ``panel.rate.value = 20``), so nbval
  runs the very code a learner's click runs.
* ``ArrivalPanel``: one client's arrivals: a log of the last rows (seq, type,
  latency) and counters (sent / received / lost / duplicated).

Threads: clicks run on the kernel's thread; arrivals come on client threads.
Widgets are updated only by setting trait values (``HTML.value``), which is
safe from any thread, and never by printing: a ``with out:`` block does not
capture another thread's output. Updates are throttled (at most one redraw
every ``REFRESH_S``) so a burst of 1,000 events does not flood the browser.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from servers.events import Event

from .recorder import Arrival, ArrivalRecorder

REFRESH_S = 0.1
Publish = Callable[[str, dict], Event]


class Throttle:
    """Call ``fn`` soon after ``request()``, at most once per ``interval``.

    Safe from any thread. Keeps no thread alive while idle: at most one
    short-lived timer is pending.
    """

    def __init__(self, fn: Callable[[], None], interval: float = REFRESH_S) -> None:
        self.fn = fn
        self.interval = interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = 0.0

    def request(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a redraw is already coming and will include this change
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = time.monotonic()
        self.fn()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self.fn()

    def flush(self) -> None:
        """Redraw now and cancel any pending timer (used by checkpoint cells)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = time.monotonic()
        self.fn()


class TriggerPanel:
    """Buttons and a slider that publish events through ``publish``."""

    def __init__(
        self,
        publish: Publish,
        event_types: Sequence[str] = ("order.created",),
        payload: Callable[[int], dict] | None = None,
        max_rate: float = 50.0,
    ) -> None:
        self._publish = publish
        self._payload = payload or (lambda n: {"n": n})
        self._lock = threading.Lock()
        self.sent = 0
        self.last_seq = 0
        self.errors: list[str] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._rate_thread: threading.Thread | None = None
        self._rate_stop = threading.Event()

        self.event_type = w.Dropdown(options=list(event_types), description="type")
        self.fire_button = w.Button(description="Fire event", button_style="primary", icon="bolt")
        self.burst_size = w.BoundedIntText(value=10, min=1, max=1000, description="burst of")
        self.burst_button = w.Button(description="Fire burst", icon="forward")
        self.rate = w.FloatSlider(
            value=5.0, min=0.5, max=max_rate, step=0.5, description="events/s"
        )
        self.stream_toggle = w.ToggleButton(description="Stream at rate", icon="play")
        self.status = w.HTML()

        self.fire_button.on_click(lambda _: self.fire())
        self.burst_button.on_click(lambda _: self.fire_burst(self.burst_size.value))
        self.stream_toggle.observe(self._on_toggle, names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.event_type, self.fire_button]),
                w.HBox([self.burst_size, self.burst_button]),
                w.HBox([self.rate, self.stream_toggle]),
                self.status,
            ]
        )
        self._show_status()

    def fire(self) -> Event | None:
        """Publish one event of the selected type (the "Fire event" button)."""
        with self._lock:
            n = self.sent + 1
        try:
            event = self._publish(self.event_type.value, self._payload(n))
        except Exception as exc:  # shown in the panel: a click must never raise silently
            self.errors.append(str(exc))
            self.status.value = f"<span style='color:#b00'>not sent: {html.escape(str(exc))}</span>"
            return None
        with self._lock:
            self.sent += 1
            self.last_seq = max(self.last_seq, event.seq)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        self._show_status()
        return event

    def fire_burst(self, n: int) -> list[Event]:
        return [e for e in (self.fire() for _ in range(n)) if e is not None]

    def on_fire(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _on_toggle(self, change: dict) -> None:
        if change["new"]:
            self._start_stream()
        else:
            self._stop_stream()

    def _start_stream(self) -> None:
        self._rate_stop.clear()
        self._rate_thread = threading.Thread(
            target=self._stream_loop, name="trigger-rate", daemon=True
        )
        self._rate_thread.start()
        self.stream_toggle.icon = "stop"

    def _stream_loop(self) -> None:
        next_at = time.monotonic()
        while not self._rate_stop.is_set():
            self.fire()
            # Read the slider each time, so moving it changes the rate live.
            next_at += 1.0 / max(self.rate.value, 0.01)
            self._rate_stop.wait(max(0.0, next_at - time.monotonic()))

    def _stop_stream(self) -> None:
        self._rate_stop.set()
        if self._rate_thread is not None:
            self._rate_thread.join(2)
            self._rate_thread = None
        self.stream_toggle.icon = "play"

    def _show_status(self) -> None:
        self.status.value = f"sent: <b>{self.sent}</b> (last seq {self.last_seq})"

    def close(self) -> None:
        """Stop the rate thread (the clean-up cell calls this)."""
        self.stream_toggle.value = False
        self._stop_stream()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class ArrivalPanel:
    """What one client received: counters and a log of the latest arrivals."""

    def __init__(
        self,
        recorder: ArrivalRecorder,
        title: str | None = None,
        sent: Callable[[], int] | None = None,
        rows: int = 8,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.recorder = recorder
        self.title = title or recorder.name
        self._sent = sent
        self._extra = extra
        self._rows: deque[Arrival] = deque(maxlen=rows)
        self._lock = threading.Lock()
        self.counters = w.HTML()
        self.log = w.HTML()
        self.widget = w.VBox(
            [w.HTML(f"<b>{html.escape(self.title)}</b>"), self.counters, self.log],
            layout=w.Layout(
                border="1px solid #ccc", padding="4px", min_width="240px", flex="1 1 280px"
            ),
        )
        self._throttle = Throttle(self.redraw)
        recorder.add_listener(self._on_arrival)
        self.redraw()

    @classmethod
    def for_trigger(
        cls, recorder: ArrivalRecorder, trigger: TriggerPanel, **kwargs
    ) -> ArrivalPanel:
        """A panel whose "sent" counter follows ``trigger``.

        Cells may also publish without the trigger (a demo, a measurement);
        those events reach the client too, so "sent" never stays below the
        newest seq the client has seen."""
        panel = cls(recorder, sent=lambda: max(trigger.last_seq, recorder.highest_seq), **kwargs)
        trigger.on_fire(lambda _e: panel._throttle.request())
        return panel

    def _on_arrival(self, arrival: Arrival) -> None:
        with self._lock:
            self._rows.appendleft(arrival)
        self._throttle.request()

    def counts(self) -> dict[str, int]:
        """The numbers the counters show (a checkpoint cell asserts on these).

        ``sent`` counts the events published since this client joined (from
        its recorder's ``first_seq`` to the last seq sent). ``lost`` counts
        gaps: seqs never received although a later one was. Events newer
        than the newest received are ``not yet`` (a poller simply has not
        asked yet), not lost.
        """
        first = self.recorder.first_seq
        highest = self.recorder.highest_seq
        last_sent = self._sent() if self._sent else highest
        return {
            "sent": max(0, last_sent - first + 1),
            "received": self.recorder.received,
            "lost": self.recorder.lost(),
            "duplicated": self.recorder.duplicates,
            "not yet": max(0, last_sent - max(highest, first - 1)),
        }

    def redraw(self) -> None:
        counts = self.counts()
        extra = self._extra() if self._extra else {}
        # A row that wraps (flex) so narrow panels side by side stay readable.
        style = "padding:0 10px 4px 0;white-space:nowrap"
        cells = "".join(
            f"<td style='{style}'>{html.escape(k)}<br><b>{v}</b></td>"
            for k, v in {**counts, **extra}.items()
        )
        self.counters.value = f"<table><tr style='display:flex;flex-wrap:wrap'>{cells}</tr></table>"
        with self._lock:
            rows = list(self._rows)
        body = "".join(
            f"<tr><td>{a.seq}</td><td>{html.escape(a.type)}</td>"
            f"<td style='text-align:right'>{a.latency_ms:.1f} ms</td>"
            f"<td>{'dup' if a.duplicate else ''}</td></tr>"
            for a in rows
        )
        self.log.value = (
            "<table style='font-family:monospace;font-size:12px'>"
            "<tr><th>seq</th><th>type</th><th>latency</th><th></th></tr>"
            f"{body}</table>"
        )

    # refresh/close/display: lab/lessons/webhooks.py's ReceiptLog follows the same
    # small widget protocol on another source (duplicates pairs them), kept apart.
    def refresh(self) -> None:
        """Redraw now (checkpoint cells call this before reading the widget)."""
        self._throttle.flush()

    def close(self) -> None:
        self.recorder.remove_listener(self._on_arrival)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def side_by_side(*panels: Any) -> w.HBox:
    """Panels (or widgets) next to each other."""
    return w.HBox([getattr(p, "widget", p) for p in panels], layout=w.Layout(flex_flow="row wrap"))
