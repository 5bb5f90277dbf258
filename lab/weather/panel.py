"""The dials a learner turns, and a live table of what each transport got.

``WeatherDials(race)`` shows a preset menu, one slider per dial of the
shared ``Weather`` (turned live: the next byte through any relay feels it),
the heartbeat interval of every stream, a **Fire event** button that
publishes one event on every lane, and a table refreshed a few times a
second: received, missing, arrived twice, latency, connections, bytes.

Like ``lab.widgets.TriggerPanel`` it has ``sent``, ``last_seq`` and
``fire()``, so ``lab.turn.top_up(dials, 3, recorders=...)`` works on it.
"""

from __future__ import annotations

import html
import statistics
import threading

import ipywidgets as w

from .presets import PRESETS
from .race import Race

REFRESH_S = 0.3


class WeatherDials:
    def __init__(self, race: Race) -> None:
        self.race = race
        self.sent = 0
        self.last_seq = 0
        self._quiet = False  # True while the code moves the sliders to a preset
        self.preset = w.Dropdown(options=["(custom)", *PRESETS], description="network")
        self.latency = w.IntSlider(0, 0, 300, 5, description="latency ms")
        self.jitter = w.IntSlider(0, 0, 200, 5, description="jitter ms")
        self.bandwidth = w.IntSlider(0, 0, 5000, 100, description="kbit/s (0: ∞)")
        self.idle = w.FloatSlider(0, min=0, max=3, step=0.1, description="NAT idle s")
        self.flap = w.FloatSlider(0, min=0, max=3, step=0.1, description="flap every s")
        self.buffering = w.Checkbox(False, description="buffering proxy")
        self.heartbeat = w.FloatSlider(
            race.heartbeat_s or 0, min=0, max=2, step=0.1, description="heartbeat s"
        )
        self.fire_button = w.Button(description="Fire event", button_style="primary", icon="bolt")
        self.table = w.HTML()
        self.preset.observe(lambda c: self._on_preset(c["new"]), names="value")
        for dial in (self.latency, self.jitter, self.bandwidth, self.idle, self.flap):
            dial.observe(lambda _: self._apply(), names="value")
        self.buffering.observe(lambda _: self._apply(), names="value")
        self.heartbeat.observe(lambda c: race.set_heartbeats(c["new"] or None), names="value")
        self.fire_button.on_click(lambda _: self.fire())
        self._show(race.weather)
        self.widget = w.VBox(
            [
                w.HBox([self.preset, self.fire_button]),
                w.HBox([self.latency, self.jitter, self.bandwidth]),
                w.HBox([self.idle, self.flap, self.buffering]),
                w.HBox([self.heartbeat]),
                self.table,
            ]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._refresh_loop, name="weather-panel", daemon=True
        )
        self._thread.start()

    # -- what a learner (or a cell acting for one) does --------------------------
    def fire(self) -> int:
        self.last_seq = self.race.publish_all()
        self.sent += 1
        self.refresh()
        return self.last_seq

    def choose(self, name: str) -> None:
        """Switch to a preset: every dial moves to its (compressed) values."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {list(PRESETS)}")
        if self.preset.value != name:
            self.preset.value = name  # observed: _on_preset applies it
        else:
            self._on_preset(name)  # the same preset again: back to its own dials

    def _on_preset(self, name: str) -> None:
        if name in PRESETS:
            self._show(self.race.set_weather(name))

    def set(self, **dials: float | str) -> None:
        """Move dials by name (``preset="busy 4G"``, ``heartbeat=0``), as a learner would."""
        for name, value in dials.items():
            getattr(self, name).value = value

    def shows(self, **dials: float | str) -> bool:
        """True when every named dial is at that value (a learner turned it)."""
        for name, value in dials.items():
            now = getattr(self, name).value
            if isinstance(value, str) and now != value:
                return False
            if not isinstance(value, str) and abs(now - value) > 0.05:
                return False
        return True

    # -- plumbing -----------------------------------------------------------------
    def _show(self, weather) -> None:
        self._quiet = True
        try:
            self.latency.value = int(weather.latency_ms)
            self.jitter.value = int(weather.jitter_ms)
            self.bandwidth.value = int(weather.bandwidth_kbps or 0)
            self.idle.value = weather.idle_timeout_s or 0
            self.flap.value = weather.flap_every_s or 0
            self.buffering.value = bool(weather.buffer_bytes)
        finally:
            self._quiet = False

    def _apply(self) -> None:
        if self._quiet:
            return
        weather = self.race.weather
        weather.latency_ms = self.latency.value
        weather.jitter_ms = self.jitter.value
        weather.bandwidth_kbps = self.bandwidth.value or None
        weather.idle_timeout_s = self.idle.value or None
        weather.flap_every_s = self.flap.value or None
        weather.buffer_bytes = 256 * 1024 if self.buffering.value else None

    def rows(self) -> list[list[str]]:
        out = []
        for lane in self.race.lanes.values():
            rec, stats = lane.recorder, lane.relay.stats()
            recent = rec.latencies_ms()[-10:]
            p50 = f"{statistics.median(recent):.0f}" if recent else "-"
            missing = len(rec.missing(self.race.last_published(lane.key)))
            out.append(
                [lane.label, f"received {rec.received}", str(missing), str(lane.arrived_twice()),
                 p50, str(stats.connections), f"{stats.up + stats.down:,}"]
            )  # fmt: skip
        return out

    def refresh(self) -> None:
        head = ["transport", "received", "missing", "twice", "p50 ms (last 10)", "connections",
                "bytes"]  # fmt: skip
        cells = "".join(f"<th>{h}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows()
        )
        self.table.value = f"<table><tr>{cells}</tr>{body}</table>"

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # a lane stopping under us: the next turn shows it
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self.refresh()
        display(self.widget)
