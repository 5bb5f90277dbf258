"""From the hub into the outbox: every event, for every endpoint that wants it.

Hardening beside the delivery loop (``provider.py``): the write side of the
*transactional outbox*. The provider's delivery loop starts from rows in the
outbox; this is what puts them there. It reads the hub on the provider's
loop, writes one row per (event, endpoint) and commits before any attempt
(``Outbox.enqueue``): from then on the delivery survives a restart. Events
already queued are written in one transaction; a subscription that fell
behind the hub's queue catches up from the hub's log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone

from ..events import Event
from ..hub import EventHub
from .endpoints import Endpoints
from .outbox import Message, Outbox

QUEUE_SIZE = 100_000


def webhook_body(event: Event) -> bytes:
    """The JSON a receiver gets. ``type``/``timestamp``/``data`` follow the
    Standard Webhooks payload recommendation; ``seq`` and ``sent_ns`` are this
    lab's instrumentation, so the receiver can measure exact latency."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc = {
        "type": event.type,
        "timestamp": stamp,
        "data": event.payload,
        "seq": event.seq,
        "sent_ns": event.sent_ns,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class Intake:
    """Reads ``hub`` and calls ``on_enqueued(messages)`` after each commit."""

    def __init__(
        self,
        hub: EventHub,
        outbox: Outbox,
        endpoints: Endpoints,
        on_enqueued: Callable[[list[Message]], None],
    ) -> None:
        self.hub, self.outbox, self.endpoints = hub, outbox, endpoints
        self.on_enqueued = on_enqueued
        # Endpoints disabled for failing, and where their deliveries are kept
        # (``health`` sets both): written as held, not attempted, not lost.
        self.holding: Callable[[str], list] = lambda event_type: []
        self.keep: Callable[[list], None] | None = None
        self.enqueued = 0
        self.last_seq = hub.log.last_seq  # events before the start are not delivered
        self._closing = False
        self._subscription = hub.subscribe(maxsize=QUEUE_SIZE)
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        while True:
            event = await self._subscription.get()
            if event is None:  # closed; or overflowed: catch up from the hub's log
                if not self._subscription.overflowed or self._closing:
                    return
                self._subscription = self.hub.subscribe(maxsize=QUEUE_SIZE)
                self.enqueue(self.hub.log.since(self.last_seq)[0])
            else:  # with everything already queued: one transaction
                self.enqueue([event, *_drain(self._subscription.queue)])

    def enqueue(self, events: list[Event]) -> None:
        items, held = [], []
        for event in (e for e in events if e.seq > self.last_seq):
            self.last_seq = event.seq
            wanting = self.endpoints.wanting(event.type)
            holding = self.holding(event.type)
            if wanting or holding:
                body = webhook_body(event)  # the same bytes for every endpoint
                items += [(e.id, event.type, event.seq, body) for e in wanting]
                held += [(e.id, event.type, event.seq, body) for e in holding]
        if held and self.keep is not None:
            self.keep(held)
        if items:
            messages = self.outbox.enqueue(items)  # committed before any attempt: durable
            self.enqueued += len(items)
            self.on_enqueued(messages)

    async def close(self, timeout: float = 1.0) -> None:
        """Write what the hub already handed us, then stop reading."""
        self._subscription.close()  # wakes the consumer after the queued events
        try:
            await asyncio.wait_for(self._task, timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        self._closing = True


def _drain(queue: asyncio.Queue) -> list[Event]:
    """What is already queued, without waiting (a closing ``None`` stays queued)."""
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        if event is None:
            queue.put_nowait(None)
            break
        events.append(event)
    return events
