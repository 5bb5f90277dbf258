"""The hand-off between whoever publishes an event and the server that sends it.

``publish()`` may be called from any thread (a widget callback runs on the
kernel's thread, a test may use four). It numbers the event under a lock and
puts it in a FIFO that only the server's loop thread empties: the loop's own
thread does all socket work, so handlers never need locks. From another
thread, ``call_soon_threadsafe`` wakes the loop to empty it; a handler that
publishes on the loop itself (a chat message arriving on a WebSocket) empties
it at once, without waiting a loop turn, which is most of what a room adds to
a bare echo's round trip.

A connection that wants a push subscribes in one of two ways, both on the
loop. ``subscribe()`` gives a ``Subscription``: a bounded queue a reader
task awaits. A subscriber that stops reading cannot make the server's memory
grow without bound; when its queue is full it is marked ``overflowed`` and
the transport decides what to tell the client (close the stream, send a
resync notice...). ``subscribe_callback(on_event)`` gives a
``CallbackSubscription``: the hub calls ``on_event(event)`` on the loop as
it fans out, with no queue and no reader task (the WebSocket room writes the
frame from there and bounds its own outbox).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .events import Event, EventLog

log = logging.getLogger(__name__)

# The replay log's bound in bytes of encoded events, on top of its count:
# 1,000 chat lines are a few hundred KiB, but 1,000 one-megabyte events
# would be a gigabyte. Past this, the oldest events go (a resume from before
# them gets a resync).
LOG_MAX_BYTES = 8 * 1024 * 1024


class HubClosedError(RuntimeError):
    """Publishing to a hub whose server is not running."""


class CallbackSubscription:
    """A subscriber that is a function: the hub calls ``on_event(event)`` on
    the server loop for each event, in seq order, until ``close()``.

    No queue: the callback does the work (or bounds its own backlog). An idle
    connection holds this small object and nothing else.
    """

    __slots__ = ("_hub", "offer", "closed")

    def __init__(self, hub: EventHub, on_event: Callable[[Event], None]) -> None:
        self._hub = hub
        # The hub's fan-out calls ``sub.offer(event)`` on every subscriber:
        # here that is the callback itself, no extra call in between.
        self.offer = on_event
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._hub.unsubscribe(self)


class Subscription(CallbackSubscription):
    """One connection's queue of events, read on the server loop.

    ``get()`` returns the next event, or ``None`` once the subscription is
    closed (by the connection going away, by the server stopping, or by the
    queue overflowing: then ``overflowed`` is True and the transport tells
    its client to resync rather than silently skipping events).
    """

    __slots__ = ("maxsize", "queue", "overflowed")

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        super().__init__(hub, self._put)
        self.maxsize = maxsize
        # One slot more than the limit, so the closing sentinel always fits.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)
        self.overflowed = False

    def _put(self, event: Event) -> None:
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
        super().close()
        self.queue.put_nowait(None)  # wakes a reader blocked in get()


class EventHub:
    """Numbers events, keeps them for replay and fans them out on one loop.

    The replay log keeps the last ``capacity`` events and at most
    ``max_bytes`` of them encoded (``None``: no byte bound).
    """

    def __init__(
        self, capacity: int = 1000, queue_size: int = 1000, max_bytes: int | None = LOG_MAX_BYTES
    ) -> None:
        self.log = EventLog(capacity, max_bytes)
        self.queue_size = queue_size
        self._subscriptions: set[CallbackSubscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        # Numbered, not yet fanned out; appended under the lock, in seq order.
        self._pending: deque[Event] = deque()
        self._wake_scheduled = False  # a _drain is queued on the loop already
        self._draining = False  # the loop thread is inside _drain
        self._long_polls = 0  # wait_since calls waiting on _changed (loop thread only)

    # -- lifecycle, called by the runtime on the server thread ---------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop = loop
            self._loop_thread = threading.get_ident()  # attach runs on the loop
            self._changed = asyncio.Event()
            # A restart begins clean: what the last loop never sent had no
            # subscribers left to send it to (it is still in the log).
            self._pending.clear()
            self._wake_scheduled = False
            self._draining = False
            self._long_polls = 0

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
            # Still under the lock, so events enter the FIFO in seq order
            # whichever threads publish them.
            self._pending.append(event)
            on_loop = self._loop_thread == threading.get_ident()
            if not on_loop and not self._wake_scheduled:
                self._wake_scheduled = True
                self._loop.call_soon_threadsafe(self._drain)
        if on_loop:
            # Outside the lock: a subscriber's write may run arbitrary code.
            self._drain()
        return event

    # -- server loop only ----------------------------------------------------
    def subscribe(self, maxsize: int | None = None) -> Subscription:
        """A bounded queue of the events from now on, for a reader task."""
        sub = Subscription(self, maxsize or self.queue_size)
        self._subscriptions.add(sub)
        return sub

    def subscribe_callback(self, on_event: Callable[[Event], None]) -> CallbackSubscription:
        """``on_event(event)`` called on this loop for every event from now on."""
        sub = CallbackSubscription(self, on_event)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: CallbackSubscription) -> None:
        self._subscriptions.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def _drain(self) -> None:
        """Fan out everything pending, oldest first. Loop thread only.

        Events published by other threads may be waiting in the FIFO when a
        handler publishes on the loop; they go first, so every subscriber
        sees seq order. A publish made *during* a fan-out (by code a
        subscriber runs) is only appended: the running drain reaches it after
        the current event has gone to every subscriber.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while True:
                with self._lock:
                    self._wake_scheduled = False
                    if not self._pending:
                        return
                    batch = list(self._pending)
                    self._pending.clear()
                for event in batch:
                    self._fan_out(event)
        finally:
            self._draining = False

    def _fan_out(self, event: Event) -> None:
        for sub in list(self._subscriptions):
            try:
                sub.offer(event)
            except Exception:
                # One broken subscriber must not cost everyone else the event.
                log.exception("subscriber %r failed on event %d", sub, event.seq)
        # Wake every long-poll waiter, then arm a fresh Event for the next
        # one. With nobody waiting (a WebSocket room, a stream) the Event is
        # still clear and stays armed: no new object per event.
        if self._changed is not None and self._long_polls:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_since(self, seq: int, timeout: float) -> tuple[list[Event], bool]:
        """Events after ``seq``; if there are none yet, wait up to ``timeout`` s."""
        events, truncated = self.log.since(seq)
        if events or self._changed is None:
            return events, truncated
        self._long_polls += 1
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return [], False
        finally:
            self._long_polls -= 1
        return self.log.since(seq)
