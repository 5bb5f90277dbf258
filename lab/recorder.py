"""Where every client reports what arrived: latency, gaps and duplicates.

All transports hand their events to an ``ArrivalRecorder``. Because the
clients run in the same process as the server that stamped ``sent_ns``, and
both read ``time.monotonic_ns()``, ``latency = received_ns - sent_ns`` is
exact. Sequence numbers make loss and duplication visible: a seq seen twice is
a duplicate, a seq never seen below the highest one seen is lost.

``ExpectedRecorder`` is for a consumer that gets only some event types (a
webhook receiver gets the types it subscribed to): it counts as lost only
the events it was told to expect.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lab.waiting import wait_until
from servers.events import Event


@dataclass(frozen=True)
class Arrival:
    seq: int
    type: str
    latency_ms: float
    received_ns: int
    duplicate: bool


Listener = Callable[[Arrival], None]


class ArrivalRecorder:
    """Thread-safe record of the events one client received.

    ``first_seq`` is the first sequence number this client is expected to
    see (a client that joins late starts higher), so events from before it
    joined are not counted as lost.
    """

    def __init__(self, name: str = "client", first_seq: int = 1) -> None:
        self.name = name
        self.first_seq = first_seq
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._arrivals: list[Arrival] = []
        self._listeners: list[Listener] = []

    def record(self, event: Event, received_ns: int | None = None) -> Arrival:
        received_ns = time.monotonic_ns() if received_ns is None else received_ns
        with self._lock:
            duplicate = event.seq in self._seen
            self._seen.add(event.seq)
            arrival = Arrival(
                event.seq,
                event.type,
                (received_ns - event.sent_ns) / 1e6,
                received_ns,
                duplicate,
            )
            self._arrivals.append(arrival)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(arrival)
        return arrival

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- what the counters show ------------------------------------------------
    @property
    def received(self) -> int:
        """Every arrival, duplicates included."""
        with self._lock:
            return len(self._arrivals)

    @property
    def unique(self) -> int:
        with self._lock:
            return len(self._seen)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return len(self._arrivals) - len(self._seen)

    @property
    def highest_seq(self) -> int:
        with self._lock:
            return max(self._seen, default=self.first_seq - 1)

    def missing(self, up_to: int | None = None) -> list[int]:
        """Sequence numbers never received, from ``first_seq`` to ``up_to``
        (default: the highest received, i.e. the gaps)."""
        with self._lock:
            top = max(self._seen, default=self.first_seq - 1) if up_to is None else up_to
            return [s for s in range(self.first_seq, top + 1) if s not in self._seen]

    def lost(self, sent: int | None = None) -> int:
        """How many events never arrived. Pass ``sent`` (the last seq sent)
        to count the tail too, not only gaps below the highest seen."""
        return len(self.missing(sent))

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def latencies_ms(self) -> list[float]:
        """Latency of each event's first arrival (duplicates left out)."""
        return [a.latency_ms for a in self.arrivals if not a.duplicate]

    def median_latency_ms(self) -> float | None:
        values = self.latencies_ms()
        return statistics.median(values) if values else None

    def wait_for(self, seq: int, timeout: float = 5.0) -> bool:
        """Block until ``seq`` (and every seq before it) has arrived."""
        return wait_until(
            lambda: self.highest_seq >= seq and not self.missing(seq), timeout, interval=0.005
        )

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self._arrivals.clear()

    def summary(self) -> dict:
        lat = self.latencies_ms()
        return {
            "client": self.name,
            "received": self.received,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "lost": self.lost(),
            "median_latency_ms": statistics.median(lat) if lat else None,
        }


class ExpectedRecorder(ArrivalRecorder):
    """Counts as lost only the events that were expected and never came.

    A webhook receiver gets only the types it subscribed to, so the gaps in
    ``seq`` left by other types are not losses. Call ``expect(event)`` for
    each event that should arrive, or ``follow(trigger, types)``.
    """

    def __init__(self, name: str = "receiver") -> None:
        super().__init__(name)
        self._expected: set[int] = set()

    def expect(self, event: Event | int) -> None:
        seq = event if isinstance(event, int) else event.seq
        with self._lock:
            self._expected.add(seq)

    def follow(self, trigger: Any, event_types: Iterable[str]) -> None:
        wanted = set(event_types)
        trigger.on_fire(lambda e: self.expect(e) if e.type in wanted else None)

    @property
    def last_expected(self) -> int:
        with self._lock:
            return max(self._expected, default=0)

    @property
    def expected_count(self) -> int:
        with self._lock:
            return len(self._expected)

    def missing(self, up_to: int | None = None) -> list[int]:
        with self._lock:
            top = max(self._seen, default=0) if up_to is None else up_to
            return sorted(s for s in self._expected if s <= top and s not in self._seen)

    def out_of_order(self) -> int:
        """Arrivals whose seq is lower than one that arrived before them."""
        count, highest = 0, 0
        for a in self.arrivals:
            if a.seq < highest:
                count += 1
            highest = max(highest, a.seq)
        return count
