"""The hand-off between whoever publishes an event and the server that sends it.

``publish()`` may be called from any thread (a widget callback runs on the
kernel's thread, a test may use four). It numbers the event under a lock and
then hands it to the server's event loop with ``call_soon_threadsafe``: the
loop's own thread does all socket work, so handlers never need locks.

Each connection that wants a push gets a ``Subscription``: a bounded queue
read on the loop. A subscriber that stops reading cannot make the server's
memory grow without bound; when its queue is full it is marked
``overflowed`` and the transport decides what to tell the client (close the
stream, send a resync notice...).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .events import Event, EventLog


class HubClosedError(RuntimeError):
    """Publishing to a hub whose server is not running."""


class Subscription:
    """One connection's queue of events, read on the server loop.

    ``get()`` returns the next event, or ``None`` once the subscription is
    closed (by the connection going away, by the server stopping, or by the
    queue overflowing: then ``overflowed`` is True and the transport tells
    its client to resync rather than silently skipping events).
    """

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        self._hub = hub
        self.maxsize = maxsize
        # One slot more than the limit, so the closing sentinel always fits.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)
        self.overflowed = False
        self.closed = False

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.maxsize:
            # Do not block the fan-out for everyone else because one client
            # is slow: end this subscription and let the transport say why.
            self.overflowed = True
            self.close()
            return
        self.queue.put_nowait(event)

    async def get(self) -> Event | None:
        return await self.queue.get()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._hub.unsubscribe(self)
        self.queue.put_nowait(None)  # wakes a reader blocked in get()


class EventHub:
    """Numbers events, keeps them for replay and fans them out on one loop."""

    def __init__(self, capacity: int = 1000, queue_size: int = 1000) -> None:
        self.log = EventLog(capacity)
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None

    # -- lifecycle, called by the runtime on the server thread ---------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop = loop
            self._loop_thread = threading.get_ident()  # attach runs on the loop
            self._changed = asyncio.Event()

    def detach(self) -> None:
        with self._lock:
            self._loop = None
        for sub in list(self._subscriptions):
            sub.close()
        # Wake long-poll waiters too, so they end now instead of being
        # cancelled mid-request when the server stops.
        if self._changed is not None:
            self._changed.set()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._loop is not None

    # -- any thread ----------------------------------------------------------
    def publish(self, type: str, payload: dict[str, Any] | None = None) -> Event:
        """Stamp and send one event. Safe to call from any thread."""
        with self._lock:
            if self._loop is None:
                raise HubClosedError(
                    "this server is stopped: start it again before publishing "
                    "(events published now would reach no one)"
                )
            event = self.log.append(type, payload)
            # Still under the lock, so two threads' events reach the loop in
            # sequence order. From the loop's own thread (a handler
            # publishing) plain call_soon queues to the same FIFO without
            # the self-pipe write that wakes a sleeping loop from outside.
            if self._loop_thread == threading.get_ident():
                self._loop.call_soon(self._fan_out, event)
            else:
                self._loop.call_soon_threadsafe(self._fan_out, event)
        return event

    # -- server loop only ----------------------------------------------------
    def subscribe(self, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, maxsize or self.queue_size)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def _fan_out(self, event: Event) -> None:
        for sub in list(self._subscriptions):
            sub.offer(event)
        # Wake every long-poll waiter, then arm a fresh Event for the next one.
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_since(self, seq: int, timeout: float) -> tuple[list[Event], bool]:
        """Events after ``seq``; if there are none yet, wait up to ``timeout`` s."""
        events, truncated = self.log.since(seq)
        if events or self._changed is None:
            return events, truncated
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return [], False
        return self.log.since(seq)
