"""The provider's health view for notebook 01 in depth: one endpoint's health
and the alerts, live, with a "Re-enable and replay" button.

The numbers come from the provider (``servers.webhooks.health``): after
every attempt it calls this view's listener on its own loop, which takes a
snapshot there and asks for a redraw at most every 0.1 s (``Throttle``), so
the table follows the attempts while the learner watches.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as w

from lab.widgets import Throttle
from servers.webhooks.health import SVIX_DISABLE_AFTER_S

COLUMNS = (
    ("status", "status"),
    ("success rate", "success_rate"),
    ("attempts counted", "attempts_counted"),
    ("consecutive failures", "consecutive_failures"),
    ("last success", "last_success_at"),
    ("last failure", "last_failure_at"),
    ("failing for", "failing_for_s"),
    ("held", "held"),
)


class HealthView:
    """One endpoint's health at ``provider`` (a ``ProviderHandle``), and the
    alerts recorded after alert id ``alerts_after``."""

    def __init__(self, provider: Any, endpoint_id: str, alerts_after: int | None = None) -> None:
        self.provider, self.endpoint_id = provider, endpoint_id
        self.alerts_after = len(provider.alerts()) if alerts_after is None else alerts_after
        self.reenabled = 0  # re-enables done from this view (button or cell)
        self.html = w.HTML()
        self.button = w.Button(description="Re-enable and replay", icon="redo")
        self.button.button_style = "warning"
        self.button.on_click(lambda _: self.reenable())
        self.widget = w.VBox([self.button, self.html])
        self._snapshot: tuple[list, list] = ([], [])
        self._throttle = Throttle(self._draw)
        provider._call(lambda p: p.health.listeners.append(self._on_change))
        self.refresh()

    def _on_change(self) -> None:
        """On the provider's loop, after every change: snapshot, then redraw soon."""
        health = self.provider.provider.health
        self._snapshot = (health.report(self.endpoint_id), health.alerts(self.alerts_after))
        self._throttle.request()

    def refresh(self) -> dict:
        """Redraw from the provider now; returns the endpoint's health row."""
        rows = self.provider.health(self.endpoint_id)
        self._snapshot = (rows, self.provider.alerts(self.alerts_after))
        self._draw()
        return rows[0]

    def alerts(self) -> list[dict]:
        return self.provider.alerts(self.alerts_after)

    def reenable(self) -> str:
        """Re-enable the endpoint and replay what it missed (held and dead)."""
        try:
            done = self.provider.reenable(self.endpoint_id)
        except ValueError as exc:  # already active: say so in the view
            self.html.value = f"<i>{html.escape(str(exc))}</i>" + self.html.value
            return str(exc)
        self.reenabled += 1
        self.refresh()
        return f"re-enabled: {done['released']} held and {done['replayed']} dead letters sent"

    def settle(self, timeout: float = 10.0) -> None:
        """After the learner's clicks in any order: active again, nothing
        pending, nothing left in the dead letters (replayed once more)."""
        if self.provider.health(self.endpoint_id)[0]["status"] == "disabled":
            self.reenable()
        self.provider.wait_idle(timeout)
        if self.provider.dead_letters():
            self.provider.replay()
            self.provider.wait_idle(timeout)
        self.refresh()

    def _draw(self) -> None:
        rows, alerts = self._snapshot
        if not rows:
            return
        row, now = rows[0], time.time()
        cells = "".join(
            f"<td>{html.escape(_show(key, row.get(key), now))}</td>" for _, key in COLUMNS
        )
        head = "".join(f"<th>{name}</th>" for name, _ in COLUMNS)
        color = {"active": "#060", "disabled": "#b00"}.get(row["status"], "#000")
        reason = html.escape(row["disabled_reason"] or "")
        alert_rows = "".join(
            f"<tr><td>{a['id']}</td><td>{html.escape(a['kind'])}</td>"
            f"<td>{_ago(a['at'], now)}</td><td>{html.escape(a['detail'])}</td></tr>"
            for a in alerts[-8:]
        )
        self.html.value = (
            f"<b>endpoint {html.escape(self.endpoint_id)}: "
            f"<span style='color:{color}'>{row['status']}</span></b> {reason}"
            f"<table style='font-size:12px'><tr>{head}</tr><tr>{cells}</tr></table>"
            f"<b>alerts: {len(alerts)}</b>"
            "<table style='font-size:12px'><tr><th>id</th><th>kind</th><th>when</th>"
            f"<th>detail</th></tr>{alert_rows}</table>"
        )

    def close(self) -> None:
        try:
            self.provider._call(lambda p: p.health.listeners.remove(self._on_change))
        except (ValueError, RuntimeError):  # a provider restarted or stopped since
            pass

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _ago(at: float | None, now: float) -> str:
    return "never" if at is None else f"{max(0.0, now - at):.1f} s ago"


def _show(key: str, value: Any, now: float) -> str:
    if key.endswith("_at"):
        return _ago(value, now)
    if key == "success_rate":
        return "-" if value is None else f"{value:.0%}"
    if key == "failing_for_s":
        return "-" if value is None else f"{value:.1f} s"
    return str(value)


__all__ = ["SVIX_DISABLE_AFTER_S", "HealthView"]
