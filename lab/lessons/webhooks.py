"""Notebook-side panels for the webhooks notebook.

* ``FailureModeSelector``: flips the receiver between healthy / 500 / slow /
  down / flaky / 429 / 410. "down" really stops the receiver's server (the
  provider then gets "connection refused"); leaving it starts it again on
  the same port.
* ``ReceiptLog``: what the receiver saw, request by request: verdict,
  status, latency.
* ``DeadLetterPanel``: the provider's dead letters and a replay button.
* ``delivery_timeline``: every attempt on a time axis, one row per message.
* ``kernel_files``: this kernel's SQLite files (outbox, inboxes), emptied,
  and the ones left behind by kernels that no longer run deleted.

``ExpectedRecorder`` (the recorder that knows which events the receiver
should get) is in ``lab/recorder.py``; ``request_view`` (the exact bytes of
one delivery request) in ``lab/wire/http.py``.

Widgets are updated by setting trait values only (safe from any thread);
a cell acts on a control only when the learner has not (``ensure``).
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from typing import Any

import ipywidgets as w
import psutil

from lab.turn import act_unless_done
from lab.widgets import Throttle
from servers.webhooks.receipts import Receipt
from servers.webhooks.receiver import Receiver
from servers.webhooks.sqlitefiles import reset

MODES = ("healthy", "500", "slow", "down", "flaky", "429", "410")


class FailureModeSelector:
    """Break the receiver on purpose, from a widget or a cell."""

    def __init__(self, receiver: Receiver, server: Any) -> None:
        self.receiver = receiver
        self.server = server
        self.mode = w.ToggleButtons(options=list(MODES), value="healthy", description="receiver")
        self.flaky = w.IntSlider(value=30, min=0, max=100, step=5, description="flaky %")
        self.status = w.HTML()
        self._lock = threading.Lock()
        self.mode.observe(self._apply, names="value")
        self.flaky.observe(self._apply, names="value")
        self.widget = w.VBox([self.mode, self.flaky, self.status])
        self._show()

    def _apply(self, _change: dict | None = None) -> None:
        with self._lock:
            mode = self.mode.value
            if mode == "down":
                self.server.stop()  # the real thing: connection refused
            else:
                if not self.server.running:
                    self.server.start()  # back on the same port
                self.receiver.set_mode(mode, self.flaky.value)
        self._show()

    def ensure(self, mode: str) -> str:
        """The learner's turn (``lab.turn.act_unless_done``): pick ``mode`` only
        if the learner has not picked it already; a sentence saying who did."""
        done = lambda: self.mode.value == mode  # noqa: E731
        return act_unless_done(done, lambda: setattr(self.mode, "value", mode), f"receiver {mode}")

    def _show(self) -> None:
        up = "listening" if self.server.running else "<b style='color:#b00'>stopped</b>"
        extra = f" ({self.flaky.value}% of requests fail)" if self.mode.value == "flaky" else ""
        self.status.value = f"receiver mode: <b>{self.mode.value}</b>{extra}; server {up}"

    def close(self) -> None:
        self.mode.unobserve(self._apply, names="value")
        self.flaky.unobserve(self._apply, names="value")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class ReceiptLog:
    """The receiver's last requests: status, verdict, latency."""

    def __init__(self, receiver: Receiver, rows: int = 8, title: str = "receiver log") -> None:
        self.receiver = receiver
        self.rows = rows
        self.html = w.HTML()
        self.widget = w.VBox(
            [w.HTML(f"<b>{html.escape(title)}</b>"), self.html],
            layout=w.Layout(border="1px solid #ccc", padding="4px", min_width="420px"),
        )
        self._throttle = Throttle(self.redraw)
        receiver.add_listener(self._on_receipt)
        self.redraw()

    def _on_receipt(self, _receipt: Receipt) -> None:
        self._throttle.request()

    def redraw(self) -> None:
        self.html.value = (
            receipts_table(self.receiver.last_receipts(self.rows)[::-1])
            + ("<div>" + ", ".join(f"{k}: <b>{v}</b>" for k, v in self.receiver.summary().items()))
            + "</div>"
        )

    # refresh/close/display: the same small widget protocol as
    # lab.widgets.ArrivalPanel (a listener on a different source), kept apart.
    def refresh(self) -> None:
        self._throttle.flush()

    def close(self) -> None:
        self.receiver.remove_listener(self._on_receipt)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def receipts_table(receipts: list[Receipt]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{r.seq if r.seq is not None else ''}</td>"
        f"<td>{html.escape(r.event_type or '')}</td>"
        f"<td>{html.escape((r.msg_id or '')[:14])}</td>"
        f"<td style='color:{'#1a7f37' if r.status < 300 else '#b00'}'>{r.status}</td>"
        f"<td>{html.escape(r.verdict[:70])}</td>"
        f"<td style='text-align:right'>{_fmt(r.latency_ms, '{:.1f} ms')}</td>"
        "</tr>"
        for r in receipts
    )
    return (
        "<table style='font-family:monospace;font-size:12px'><tr><th>seq</th><th>type</th>"
        "<th>webhook-id</th><th>status</th><th>verdict</th><th>latency</th></tr>"
        f"{rows}</table>"
    )


class DeadLetterPanel:
    """The dead-letter list, and a button that replays it."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.html = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.replay_button = w.Button(
            description="Replay dead letters", icon="redo", button_style="warning"
        )
        self.replayed = 0
        self.refresh_button.on_click(lambda _: self.refresh())
        self.replay_button.on_click(lambda _: self.replay())
        self.widget = w.VBox([w.HBox([self.refresh_button, self.replay_button]), self.html])
        self.refresh()

    def refresh(self) -> list:
        dead = self.provider.dead_letters()
        rows = "".join(
            f"<tr><td>{m.id}</td><td>{m.seq}</td><td>{html.escape(m.event_type)}</td>"
            f"<td>{html.escape(m.msg_id[:14])}</td><td>{m.attempts}</td>"
            f"<td>{html.escape(m.last_error or '')}</td></tr>"
            for m in dead
        )
        self.html.value = (
            f"<b>dead letters: {len(dead)}</b>"
            "<table style='font-family:monospace;font-size:12px'><tr><th>row</th><th>seq</th>"
            "<th>type</th><th>webhook-id</th><th>attempts</th><th>last error</th></tr>"
            f"{rows}</table>"
        )
        return dead

    def replay(self) -> int:
        self.replayed = self.provider.replay()
        self.refresh()
        return self.replayed

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def attempts_table(attempts: list[dict], last: int = 12) -> str:
    rows = "".join(
        f"<tr><td>{a['seq']}</td><td>{a['attempt']}</td>"
        f"<td>{'' if a['status_code'] is None else a['status_code']}</td>"
        f"<td>{a['duration_ms']:.1f} ms</td><td>{html.escape(a['outcome'])}</td>"
        f"<td>{_fmt(a['next_delay_s'], '{:.3f} s')}</td>"
        f"<td>{html.escape((a['error'] or '')[:80])}</td></tr>"
        for a in attempts[-last:]
    )
    return (
        "<table style='font-family:monospace;font-size:12px'><tr><th>seq</th><th>attempt</th>"
        "<th>status</th><th>took</th><th>outcome</th><th>next try in</th><th>error</th></tr>"
        f"{rows}</table>"
    )


OUTCOME_STYLE = {
    "delivered": ("o", "#1a7f37", "delivered (2xx)"),
    "retry": ("x", "#d62728", "failed, will retry"),
    "dead": ("X", "black", "failed, dead letter"),
    "gone": ("s", "#9467bd", "410: subscription disabled"),
}


def _style(attempt: dict) -> tuple[str, str, str]:
    if attempt["outcome"] == "retry":
        error = attempt["error"] or ""
        if "timed out" in error:
            return "x", "#ff7f0e", "timed out, will retry"
        if "Refused" in error or "Error" in error:
            return "x", "#8c564b", "connection failed, will retry"
        return "x", "#d62728", "HTTP error, will retry"
    return OUTCOME_STYLE.get(attempt["outcome"], ("$?$", "grey", attempt["outcome"]))


def delivery_timeline(attempts: list[dict], title: str = "delivery attempts", ax: Any = None):
    """One row per message, one marker per attempt, at the time it started."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(
            figsize=(9, 0.35 * max(4, len({a["message"] for a in attempts})) + 1)
        )
    else:
        fig = ax.figure
    if not attempts:
        ax.set_title(f"{title}: no attempts yet")
        return fig
    t0 = min(a["started_at"] for a in attempts)
    messages = sorted({(a["seq"], a["message"]) for a in attempts})
    row = {m[1]: i for i, m in enumerate(messages)}
    by_message: dict[int, list[dict]] = {}
    for a in attempts:
        by_message.setdefault(a["message"], []).append(a)
    for message, items in by_message.items():
        xs = [a["started_at"] - t0 for a in items]
        ax.plot(xs, [row[message]] * len(xs), color="#bbb", lw=1, zorder=1)
    seen_labels: set[str] = set()
    for a in attempts:
        marker, color, label = _style(a)
        ax.scatter(
            a["started_at"] - t0,
            row[a["message"]],
            marker=marker,
            color=color,
            s=50,
            zorder=2,
            label=None if label in seen_labels else label,
        )
        seen_labels.add(label)
    ax.set_yticks(range(len(messages)), [f"seq {s}" for s, _ in messages])
    ax.set_xlabel("seconds since the first attempt shown")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    return fig


def html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<i>(nothing)</i>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return f"<table style='font-size:12px'><tr>{head}</tr>{body}</table>"


def kernel_files(*kinds: str) -> list[Path]:
    """``webhooks-<kind>-<pid>.sqlite3`` for each kind, deleted for a fresh
    start: one set per kernel process, so two kernels running the notebook
    never share a file. Files of kernels that no longer run are deleted too."""
    for old in Path().glob("webhooks-*-*.sqlite3"):
        pid = old.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
            reset(old)  # an interrupted run's file
    paths = [Path(f"webhooks-{kind}-{os.getpid()}.sqlite3") for kind in kinds]
    for path in paths:
        reset(path)
    return paths
