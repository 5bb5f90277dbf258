"""The same events over six transports through the same weather, measured alike.

``race = Race(heartbeat_s=0.5)`` starts every lane (``lanes.py``) behind its
own relay, all sharing one ``Weather`` (``race.weather``: turn a dial and
every lane feels it). ``race.run(events, spacing_s, quiet_s)`` publishes the
same sequence to every lane (a quiet pause in the middle, if asked: long
enough for a NAT to forget idle connections), waits until every lane has
everything or ``settle_s`` passes, and returns one row per transport:

* ``delivered`` / ``lost``: events of this run that arrived / did not;
* ``arrived_twice``: redeliveries (at-least-once); ``processed_twice``: what
  got past the dedupe by seq (the receiver's inbox for webhooks): must be 0;
* ``p50_ms`` / ``max_ms``: latency, publish to arrival, one clock;
* ``connections``, ``resets``, ``silent_drops``, ``bytes``: from the relay;
* ``retries``: failed requests or connections made again (webhooks: failed
  delivery attempts the provider retried); ``watchdog``: connections a
  watchdog gave up;
* ``notice_s``: after a silent drop, seconds until the client had a new
  connection (None: it never noticed, it is stuck).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import fields

from lab.waiting import wait_until

from .lanes import LANES, Lane, start_all
from .presets import preset
from .relay import Weather


class Race:
    def __init__(self, weather: Weather | None = None, heartbeat_s: float | None = 0.5) -> None:
        self.weather = Weather()
        self.set_weather(weather or Weather())
        self.heartbeat_s = heartbeat_s
        self.lanes: dict[str, Lane] = start_all(self.weather, heartbeat_s)
        self.processed: dict[str, Counter] = {}
        for key, lane in self.lanes.items():
            counter = self.processed[key] = Counter()
            # The application's handler: process each seq once (dedupe by seq).
            lane.recorder.add_listener(
                lambda a, c=counter: None if a.duplicate else c.update([a.seq])
            )
        self.rows: list[dict] = []

    # -- the dials -------------------------------------------------------------
    def set_weather(self, weather: Weather | str, new_network: bool = True) -> Weather:
        """Copy a preset's (demo) dials or a ``Weather`` into the shared one.

        ``new_network``: every connection is reset, as when a phone moves from
        one network to another, and the race waits until every lane is back."""
        if isinstance(weather, str):
            weather = preset(weather).demo()
        for f in fields(Weather):
            setattr(self.weather, f.name, getattr(weather, f.name))
        if new_network and hasattr(self, "lanes"):
            before = self._connection_counts()
            for lane in self.lanes.values():
                lane.relay.reset_all()
            self._wait_reconnected(before)
        return self.weather

    def _connection_counts(self) -> dict:
        return {k: getattr(lane.client, "connections", None) for k, lane in self.lanes.items()}

    def _wait_reconnected(self, before: dict, timeout: float = 5.0) -> bool:
        """Every streaming client has a newer connection than ``before``, and is
        ready. Behind a buffering middlebox a stream's answer never comes, so
        there it is enough that the client dialled again."""
        dialled = {k: lane.relay.stats().connections for k, lane in self.lanes.items()}

        def back() -> bool:
            now = self._connection_counts()
            for k, lane in self.lanes.items():
                if before[k] is None:
                    continue
                if self.weather.buffer_bytes:
                    if lane.relay.stats().connections <= dialled[k]:
                        return False
                elif not (now[k] > before[k] and lane.ready()):
                    return False
            return True

        return wait_until(back, timeout, interval=0.01)

    def wait_ready(self, timeout: float = 5.0) -> bool:
        return wait_until(
            lambda: all(lane.ready() for lane in self.lanes.values()), timeout, interval=0.01
        )

    def set_heartbeats(self, heartbeat_s: float | None) -> None:
        """Heartbeats (and watchdogs) on at this interval, or off (None)."""
        self.heartbeat_s = heartbeat_s
        before = self._connection_counts()
        for lane in self.lanes.values():
            lane.set_heartbeat(heartbeat_s)
        self._wait_reconnected(before)

    # -- one run ---------------------------------------------------------------
    def publish_all(self) -> int:
        """One event on every lane; returns its seq on the first lane."""
        seqs = [lane.publish().seq for lane in self.lanes.values()]
        return seqs[0]

    def last_published(self, key: str) -> int:
        return self.lanes[key].server.hub.log.last_seq

    def run(
        self,
        events: int = 6,
        spacing_s: float = 0.1,
        quiet_s: float = 0.0,
        settle_s: float = 3.0,
        label: str = "",
    ) -> list[dict]:
        t0 = time.monotonic()
        marks = {k: self._mark(lane) for k, lane in self.lanes.items()}
        first = {k: lane.server.hub.log.last_seq + 1 for k, lane in self.lanes.items()}
        quiet: dict = {}
        for i in range(events):
            if quiet_s and i == events // 2:
                # Every connection idles (heartbeats aside): a NAT may forget it.
                quiet = {k: self._mark(lane) for k, lane in self.lanes.items()}
                time.sleep(quiet_s)
                quiet = {k: (self._mark(lane), quiet[k]) for k, lane in self.lanes.items()}
            self.publish_all()
            time.sleep(spacing_s)
        last = {k: lane.server.hub.log.last_seq for k, lane in self.lanes.items()}
        wait_until(
            lambda: all(lane.recorder.highest_seq >= last[k] and not
                        lane.recorder.missing(last[k]) for k, lane in self.lanes.items()),
            settle_s, interval=0.02,
        )  # fmt: skip
        rows = [
            self._row(k, lane, marks[k], first[k], last[k], t0, label)
            for k, lane in self.lanes.items()
        ]
        for row in rows:
            if quiet:  # what the quiet pause cost: heartbeats and their bytes
                after, before = quiet[row["transport"]]
                row["quiet_bytes"] = after["bytes"] - before["bytes"]
                row["quiet_heartbeats"] = after["beats"] - before["beats"]
        self.rows.extend(rows)
        return rows

    def _mark(self, lane: Lane) -> dict:
        s = lane.relay.stats()
        return {
            "bytes": s.up + s.down,
            "connections": s.connections,
            "resets": s.resets,
            "silent_drops": s.silent_drops,
            "twice": lane.arrived_twice(),
            "watchdog": lane.reconnects(),
            "retries": lane.retries(),
            "beats": lane.heartbeats(),
        }

    def _row(self, key, lane, mark, first, last, t0, label) -> dict:
        arrivals = [a for a in lane.recorder.arrivals if first <= a.seq <= last]
        unique = {a.seq: a for a in arrivals if not a.duplicate}
        lat = sorted(a.latency_ms for a in unique.values())
        now = self._mark(lane)
        notices = notice_times(lane.relay.log, since=t0)
        processed = self.processed[key]
        return {
            "run": label,
            "transport": key,
            "label": lane.label,
            "events": last - first + 1,
            "delivered": len(unique),
            "lost": (last - first + 1) - len(unique),
            "arrived_twice": now["twice"] - mark["twice"],
            "processed_twice": sum(1 for s in range(first, last + 1) if processed[s] > 1),
            "p50_ms": statistics.median(lat) if lat else None,
            "mean_ms": statistics.fmean(lat) if lat else None,
            "max_ms": lat[-1] if lat else None,
            "connections": now["connections"] - mark["connections"],
            "resets": now["resets"] - mark["resets"],
            "silent_drops": now["silent_drops"] - mark["silent_drops"],
            "watchdog": now["watchdog"] - mark["watchdog"],
            "retries": now["retries"] - mark["retries"],
            "bytes": now["bytes"] - mark["bytes"],
            # After a silent drop: the slowest time to notice (None: never, stuck).
            "notice_s": max([n for n in notices if n is not None], default=None),
            "stuck": bool(notices) and lost_now(unique, first, last) and notices[-1] is None,
        }

    def close(self) -> None:
        threads = [threading.Thread(target=lane.stop) for lane in self.lanes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

    def __enter__(self) -> Race:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def notice_times(log: list[tuple[float, str]], since: float = 0.0) -> list[float | None]:
    """For each silent drop in a relay's ``log`` after ``since``: seconds until
    the client opened a new connection (it noticed), or None (it has not:
    stuck, or it had nothing to send yet)."""
    log = list(log)
    out: list[float | None] = []
    for t, what in log:
        if what == "silent_drop" and t >= since:
            later = [t2 for t2, w2 in log if w2 == "connect" and t2 > t]
            out.append(later[0] - t if later else None)
    return out


def lost_now(unique: dict, first: int, last: int) -> bool:
    return len(unique) < last - first + 1


def by_transport(rows: list[dict]) -> dict[str, dict]:
    return {r["transport"]: r for r in rows}


TRANSPORTS = list(LANES)
