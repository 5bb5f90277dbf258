"""What notebook 03 in depth uses: the heartbeat slider, the slow reader,
the access-log capture and the browser race.

* ``HeartbeatPanel``: a slider that sets the server's heartbeat interval,
  with the heartbeat and watchdog counters.
"""

from __future__ import annotations

import html

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
