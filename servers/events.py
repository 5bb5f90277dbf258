"""The one event every transport carries, and the bounded log that replays it.

An event is stamped once, when it is published: a sequence number (1, 2, 3...
per server) and ``sent_ns`` from ``time.monotonic_ns()``. The clients run in
the same process, so they read the same monotonic clock and the latency they
compute (``received_ns - sent_ns``) is exact, not an estimate across machines.
"""

from __future__ import annotations

import json
import json.encoder
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


def _compact_json_encoder() -> Callable[[Any], str]:
    """``json.dumps(obj, separators=(",", ":"))``, built once.

    Every transport encodes every event, so this is on the hot path: from a
    chat line arriving to its broadcast leaving, ``json.dumps`` was the
    largest single cost in the WebSocket room. Each call builds a new encoder,
    a dict for detecting circular references and a closure, then runs the C
    encoder once. Here the C encoder is built a single time and reused (it
    keeps no state between calls, so any thread may use it): three times
    faster. Without the circular-reference check, a payload that contains
    itself fails with RecursionError instead of ValueError; events are plain
    trees of dicts, lists, strings and numbers.
    """
    plain = json.JSONEncoder(separators=(",", ":"))
    if json.encoder.c_make_encoder is None:  # a Python without the _json accelerator
        return plain.encode
    encode = json.encoder.c_make_encoder(
        None,  # no circular-reference markers
        plain.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )
    return lambda obj: "".join(encode(obj, 0))


compact_json = _compact_json_encoder()

# One rule for every transport, checked where events are made: an event type
# is 1 to 64 ASCII letters, digits, ".", "_", ":" or "-". It ends up in SSE's
# ``event:`` field and in HTTP headers, where a CR or LF would end the field
# and let the rest forge a new one (``"x\nid: 999"``).
EVENT_TYPE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_event_type(type: Any) -> str:
    """``type`` if it is a valid event type, else ``ValueError`` saying why."""
    if not isinstance(type, str) or EVENT_TYPE.fullmatch(type) is None:
        shown = repr(type) if len(repr(type)) <= 60 else repr(type)[:60] + "..."
        raise ValueError(f"event type {shown} is not 1-64 characters of A-Z a-z 0-9 . _ : -")
    return type


@dataclass(frozen=True)
class Event:
    """One event, as every transport sends it (JSON on the wire)."""

    seq: int
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    sent_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy of the payload was the main
        # per-event cost on the streaming hot path. The payload is shared.
        return {
            "seq": self.seq,
            "type": self.type,
            "payload": self.payload,
            "sent_ns": self.sent_ns,
        }

    # The compact JSON, once encoded (not a dataclass field: no annotation).
    _json = None

    def to_json(self) -> str:
        """The event as compact JSON, encoded once and kept: the log sizes it,
        the WebSocket room frames it and NDJSON sends it, one encode for all.
        Compact separators, so bytes-on-the-wire figures are not inflated by
        pretty-printing; ASCII only, so its length is its size in bytes."""
        text = self._json
        if text is None:
            text = compact_json(self.to_dict())
            # Frozen dataclass: set the cache past __setattr__. Equality,
            # hashing and repr still use the fields only.
            object.__setattr__(self, "_json", text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        try:
            return cls(
                seq=int(data["seq"]),
                type=check_event_type(data["type"]),
                payload=dict(data.get("payload") or {}),
                sent_ns=int(data.get("sent_ns", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an event: {data!r} ({exc})") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.from_dict(json.loads(text))


class EventLog:
    """Numbers events and keeps the last ``capacity`` of them for replay.

    With ``max_bytes`` it also keeps at most that many bytes of encoded
    events (``Event.to_json()``), evicting the oldest first: a count alone does
    not bound memory when one event may be a megabyte. An evicted event is
    gone like one that fell out by count: ``since()`` reports it as missed.

    Thread-safe: a widget callback on the kernel thread may append while the
    server thread reads. ``since(seq)`` is what long polling, SSE
    ``Last-Event-ID`` and WebSocket resume all use: it says whether the
    caller missed events that have already fallen out of the buffer.
    """

    def __init__(
        self, capacity: int = 1000, max_bytes: int | None = None, start_at: int = 0
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1 (or None: no byte limit)")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._events: deque[Event] = deque()
        self._bytes = 0  # encoded size of what _events holds (kept when max_bytes is set)
        # Events up to start_at were never this log's (fan-out: the global
        # counter when this process joined): resuming from there is not "the future".
        self._last_seq = start_at
        self._lock = threading.Lock()

    # Properties read under the lock; webhooks/receipts.py has the same shape
    # for other counters (duplicates pairs them): a pattern, not shared logic.
    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    @property
    def bytes(self) -> int:
        """Encoded size of the events held (0 when there is no byte limit)."""
        with self._lock:
            return self._bytes

    def append(self, type: str, payload: dict[str, Any] | None = None) -> Event:
        check_event_type(type)
        with self._lock:
            self._last_seq += 1
            event = Event(self._last_seq, type, dict(payload or {}), time.monotonic_ns())
            self._keep(event)
            return event

    def add(self, event: Event) -> bool:
        """Keep an event numbered elsewhere (fan-out's Redis counter): False,
        and not kept, unless its seq is past the last one (a copy already
        seen). A jump in the numbers is kept as is: what lies between was
        never this log's to hold."""
        check_event_type(event.type)
        with self._lock:
            if event.seq <= self._last_seq:
                return False
            self._last_seq = event.seq
            self._keep(event)
            return True

    def _keep(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > self.capacity:
            self._evict_oldest()
        if self.max_bytes is not None:
            # Encoded here, under the lock, once: every later to_json()
            # (the room's frame, polling) reuses it.
            self._bytes += len(event.to_json())
            while self._bytes > self.max_bytes and self._events:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        gone = self._events.popleft()
        if self.max_bytes is not None:
            self._bytes -= len(gone.to_json())

    def since(self, seq: int) -> tuple[list[Event], bool]:
        """Events after ``seq``, and whether some of them are already gone.

        Raises ``ValueError`` for a negative ``seq`` or one from the future:
        a cursor the server never handed out is a client bug to report, not
        something to paper over.
        """
        with self._lock:
            if seq < 0:
                raise ValueError(f"sequence number {seq} is negative")
            if seq > self._last_seq:
                raise ValueError(
                    f"sequence number {seq} is in the future (last is {self._last_seq})"
                )
            oldest = self._events[0].seq if self._events else self._last_seq + 1
            truncated = seq + 1 < oldest
            return [e for e in self._events if e.seq > seq], truncated

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


class EncodedCache:
    """Each event encoded once per format, however many subscribers it goes
    to: with 1,000 subscribers, encoding per subscriber would cost 1,000
    ``json.dumps`` per event. One per server, used on its loop thread only
    (the streaming formats and the WebSocket room's frames).

    Bounded by count (``size``) and by bytes (``max_bytes``): 4,096 cached
    one-megabyte frames would be 4 GiB, and each entry keeps its event
    alive. An entry that falls out is simply encoded again if needed.
    """

    def __init__(self, size: int = 4096, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple, tuple[Event, bytes]] = OrderedDict()

    def get(self, event: Event, fmt: Hashable, encode: Callable[[Event], bytes]) -> bytes:
        key = (id(event), fmt)
        hit = self._items.get(key)
        if hit is not None and hit[0] is event:  # the event itself is kept: ids are not reused
            return hit[1]
        data = encode(event)
        if hit is not None:  # a dead event's entry under a reused id
            self.bytes -= len(hit[1])
        self._items[key] = (event, data)
        self.bytes += len(data)
        while len(self._items) > self.size or self.bytes > self.max_bytes:
            self.bytes -= len(self._items.popitem(last=False)[1][1])
        return data
