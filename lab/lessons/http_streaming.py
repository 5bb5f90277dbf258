"""What notebook 03 shows about HTTP streaming: the bytes and the timing.

* The wire views (``raw_request``, ``WireView``) live in ``lab/wire/http.py``.
* **The buffering trap**: ``measure_arrivals()`` publishes a few paced
  events and records when each one reaches a ``requests`` reader;
  ``plot_buffering()`` draws arrival time against send time. A live stream
  lies on the diagonal; a buffered one is a vertical wall after the last send.
* ``JupyterServerProxy`` (``lab/scale/jupyter_proxy.py``): a real
  jupyter_server with jupyter-server-proxy in a subprocess (the proxy Binder
  users go through), for the measured run; ``proxy_runs`` measures through it.
* **Break it**: ``watch(server, paths)`` puts a kernel SSE client and an
  arrival panel on each path of a server whose handler was broken on purpose.

The in-depth companion's helpers are in ``lab/lessons/http_streaming_in_depth.py``.
"""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sseclient

from lab.clients.sse import ReconnectingSSEClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import ArrivalPanel
from servers.events import Event
from servers.runtime import ServerThread

# -- the buffering trap ------------------------------------------------------------


@dataclass
class BufferingRun:
    """When each event was sent and when it reached the reader (ms since the first send)."""

    label: str
    sends_ms: list[float]
    arrivals_ms: list[float | None]
    status: int | None = None
    response_headers: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def received(self) -> int:
        return sum(a is not None for a in self.arrivals_ms)

    @property
    def first_arrival_ms(self) -> float:
        return min(a for a in self.arrivals_ms if a is not None)

    @property
    def last_send_ms(self) -> float:
        return max(self.sends_ms)

    @property
    def held_until_end(self) -> bool:
        """True when nothing arrived before the last event was sent: the
        response was buffered somewhere."""
        return self.received > 0 and self.first_arrival_ms > self.last_send_ms

    def row(self) -> dict:
        return {
            "variant": self.label,
            "received": f"{self.received}/{len(self.sends_ms)}",
            "first arrival (ms)": round(self.first_arrival_ms, 1) if self.received else None,
            "last send (ms)": round(self.last_send_ms, 1),
            "buffered": self.held_until_end,
        }


def _subscriptions(server: ServerThread) -> set:
    # The objects themselves (not a count): a connection that closes while a
    # new one opens would leave the count unchanged.
    return server.call(lambda: set(server.hub._subscriptions))


def measure_arrivals(
    server: ServerThread,
    url: str,
    kind: str,
    label: str,
    n: int = 6,
    gap_s: float = 0.15,
    headers: dict | None = None,
    timeout: float = 15.0,
) -> BufferingRun:
    """Open ``url`` (which must end after ``n`` events: ``limit=n``) with
    ``requests``, publish ``n`` events ``gap_s`` apart on ``server``, and
    record when each one reached the reader. ``kind``: ``"ndjson"`` or
    ``"sse"``. The reader is the same for every variant: whatever differs
    is on the wire or in between."""
    if kind not in ("ndjson", "sse"):
        raise ValueError("kind must be 'ndjson' or 'sse'")
    arrivals: dict[int, int] = {}
    result: dict = {}

    def read() -> None:
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(5, timeout)) as resp:
                result["status"] = resp.status_code
                result["headers"] = dict(resp.headers)
                if kind == "ndjson":
                    for line in resp.iter_lines(chunk_size=None):
                        obj = json.loads(line) if line else {}
                        if "seq" in obj:
                            arrivals.setdefault(obj["seq"], time.monotonic_ns())
                else:
                    for message in sseclient.SSEClient(resp.iter_content(chunk_size=None)).events():
                        if message.event != "resync":
                            arrivals.setdefault(
                                Event.from_json(message.data).seq, time.monotonic_ns()
                            )
        except Exception as exc:  # reported in the result, never raised in the thread
            result["error"] = f"{type(exc).__name__}: {exc}"

    before = _subscriptions(server)
    reader = threading.Thread(target=read, name="buffering-reader", daemon=True)
    reader.start()
    # Until the reader's request reached the server (directly or via the proxy).
    wait_until(lambda: not reader.is_alive() or bool(_subscriptions(server) - before), 10)
    before.clear()
    sent: list[Event] = []
    for i in range(n):
        if i:
            time.sleep(gap_s)
        sent.append(server.publish("price.tick", {"variant": label, "i": i}))
    reader.join(timeout)
    t0 = sent[0].sent_ns
    return BufferingRun(
        label=label,
        sends_ms=[(e.sent_ns - t0) / 1e6 for e in sent],
        arrivals_ms=[(arrivals[e.seq] - t0) / 1e6 if e.seq in arrivals else None for e in sent],
        status=result.get("status"),
        response_headers=result.get("headers", {}),
        error=result.get("error") or ("reader still running" if reader.is_alive() else None),
    )


def plot_buffering(runs: list[BufferingRun], title: str = "When did each event arrive?"):
    """Arrival time against send time, one panel per variant."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), sharey=True)
    axes = [axes] if len(runs) == 1 else list(axes)
    top = max(
        [r.last_send_ms for r in runs] + [a for r in runs for a in r.arrivals_ms if a is not None]
    )
    for ax, run in zip(axes, runs, strict=True):
        pairs = [
            (s, a) for s, a in zip(run.sends_ms, run.arrivals_ms, strict=True) if a is not None
        ]
        ax.plot([0, top], [0, top], color="#bbb", lw=1, ls="--", label="arrives when sent")
        ax.axvline(run.last_send_ms, color="#d33", lw=0.8, ls=":", label="last send")
        if pairs:
            xs, ys = zip(*pairs, strict=True)
            ax.plot(xs, ys, "o", color="#d33" if run.held_until_end else "#1a7f37")
        ax.set_title(run.label + ("\n(buffered)" if run.held_until_end else "\n(live)"), fontsize=9)
        ax.set_xlabel("sent at (ms)")
        ax.set_xlim(-20, top * 1.08)
        ax.set_ylim(-20, top * 1.08)
    axes[0].set_ylabel("arrived at (ms)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def proxy_runs(
    server: ServerThread,
    url_for,
    headers: dict | None = None,
    n: int = 5,
    gap_s: float = 0.15,
    label: str = "proxy",
) -> list[BufferingRun]:
    """The same SSE feed through a proxy, with ``Accept: */*`` (what
    ``fetch()`` and ``requests`` send) and ``Accept: text/event-stream``
    (what ``EventSource`` sends)."""
    runs = []
    for accept in ("*/*", "text/event-stream"):
        runs.append(
            measure_arrivals(
                server,
                url_for(f"stream/sse?limit={n}"),
                "sse",
                f"{label}, Accept: {accept}",
                n=n,
                gap_s=gap_s,
                headers={**(headers or {}), "Accept": accept},
            )
        )
    return runs


# -- break it on purpose ---------------------------------------------------------------


class Watcher:
    """A kernel SSE client on one path of ``server`` and its arrival panel,
    with the body bytes it received (events or not)."""

    def __init__(self, server: ServerThread, path: str) -> None:
        recorder = ArrivalRecorder(path, server.hub.log.last_seq + 1)
        # No watchdog: a stream that sends nothing must stay open for the demo.
        self.client = ReconnectingSSEClient(server.url, path, watchdog_s=None, recorder=recorder)
        self.panel = ArrivalPanel(
            recorder, sent=lambda: server.hub.log.last_seq, extra=lambda: {"bytes": self.bytes}
        )
        self.widget = self.panel.widget
        self.client.start()

    @property
    def bytes(self) -> int:
        tap = self.client._tap  # the open connection's byte count (lab/clients/sse.py RawTap)
        return self.client.bytes_received + (tap.bytes if tap is not None else 0)

    def stop(self) -> None:
        self.panel.refresh()
        self.panel.close()
        self.client.stop()


def watch(server: ServerThread, paths: list[str]) -> list[Watcher]:
    """One ``Watcher`` per path; returns once the server holds a subscription for each."""
    before = server.call(lambda: server.hub.subscriber_count)
    watchers = [Watcher(server, path) for path in paths]
    wait_until(lambda: server.call(lambda: server.hub.subscriber_count) >= before + len(paths))
    return watchers


def table(rows: list[dict]):
    """A list of dicts as an HTML table."""
    from IPython.display import HTML

    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return HTML(f"<table><tr>{head}</tr>{body}</table>")


def stored_proxy_table():
    """The stored measurement through a real jupyter-server-proxy
    (``python -m benchmarks.streaming``), as a table."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "streaming.json"
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    rows = stored.get("buffering", {}).get("jupyter_server_proxy")
    if not rows:
        return "no stored measurement: run python -m benchmarks.streaming"
    return table(rows)
